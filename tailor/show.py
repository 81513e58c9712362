"""``tailor show``: what the job currently knows about a user, and the current ML segments.

Both read what the job already writes; nothing here keeps state of its own.

* ``show user <id>``: the Redis profile hash (rule segments, ``cluster``, counters), the user's
  audience memberships, and the latest ``tailor.recommendation/2`` under ``{prefix}recs:<id>``.
* ``show clusters``: the ML segments. The model hub writes no cluster catalog, so the list comes from
  the tail of the segment-changes topic (the last ``--tail`` records of each partition, committed ones
  only): every segment of kind ``cluster`` seen there, with the ``reason`` of its most recent ``enter``
  as the explanation -- the cluster's description *as of that change* (centers drift slowly; a cluster
  renamed at a relabel shows up under its new name). Audience sizes are the live Redis set sizes
  (``SCARD {prefix}segment:<name>``). A cluster nobody entered within the tail is not listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.kafka_events import KafkaUnavailable, read_topic
from connectors.redis_clients import RedisAuth
from connectors.redis_reader import RedisReader, RedisUnavailable
from settings import Settings
from settings.errors import TailorError
from state_schemas import segment_change
from tailor.watch import cluster_explanation


class ShowError(TailorError, LookupError):
    """Nothing to show, or a store out of reach; the message says what to do."""


@dataclass(frozen=True)
class UserView:
    user_id: str
    profile: dict[str, str]  # the Redis profile hash, as stored
    recommendation: dict[str, Any] | None  # the latest tailor.recommendation/2, if any

    @property
    def rule_segments(self) -> list[str]:
        return [s for s in self.profile.get("segments", "").split(",") if s]

    @property
    def cluster(self) -> str | None:
        return self.profile.get("cluster") or None


@dataclass(frozen=True)
class ClusterRow:
    name: str
    size: int  # users in the audience set now
    explanation: str  # from the most recent enter in the topic tail
    as_of_ms: int  # event time of that enter


def _reader(settings: Settings) -> RedisReader:
    return RedisReader(settings.redis_host, settings.redis_port, settings.redis_prefix, RedisAuth.of(settings))


def _unreachable(exc: RedisUnavailable) -> ShowError:
    return ShowError(f"{exc}: start the local stack with `bin/tailor stack up`")


def user_view(settings: Settings, user_id: str) -> UserView:
    """The user's profile hash and latest recommendations; ``ShowError`` if Redis has neither."""
    try:
        with _reader(settings) as reader:
            profile, recommendation = reader.profile(user_id), reader.recommendations(user_id)
    except RedisUnavailable as exc:
        raise _unreachable(exc) from None
    if not profile and recommendation is None:
        raise ShowError(
            f"no profile or recommendations for user {user_id!r} under Redis prefix {settings.redis_prefix!r}; "
            "user ids are userId, else anonymousId"
            + ("" if settings.redis_prefix == "tailor-demo:" else " (the demo's: TAILOR_REDIS_PREFIX=tailor-demo:)")
        )
    return UserView(user_id, profile, recommendation)


def _iso(ms: str | int | None) -> str:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"


def format_user(view: UserView) -> list[str]:
    """
    >>> view = UserView("u1", {"segments": "active,vip", "cluster": "Cart Fillers", "last_seen": "0",
    ...     "sessions_total": "2", "purchases_total": "1"}, {"items": [{"item_id": "p1", "score": 0.91,
    ...     "source": "mf"}], "model_version": "mf-biased/x", "event_time": 0})
    >>> print("\\n".join(format_user(view)))
    user             u1
    rule segments    active, vip
    ML segment       Cart Fillers
    last seen        1970-01-01 00:00:00 UTC
    sessions         2
    purchases        1
    recommendations  1 items, mf-biased/x, as of 1970-01-01 00:00:00 UTC
       1. p1                0.910  mf
    """
    p = view.profile
    lines = [
        f"{'user':<16} {view.user_id}",
        f"{'rule segments':<16} {', '.join(view.rule_segments) or '-'}",
        f"{'ML segment':<16} {view.cluster or '- (none yet: the clustering may still be warming up)'}",
        f"{'last seen':<16} {_iso(p.get('last_seen'))}",
        f"{'sessions':<16} {p.get('sessions_total', '-')}",
        f"{'purchases':<16} {p.get('purchases_total', '-')}",
    ]
    rec = view.recommendation
    if rec is None:
        lines.append(f"{'recommendations':<16} - (none yet)")
        return lines
    lines.append(
        f"{'recommendations':<16} {len(rec['items'])} items, {rec.get('model_version')}, "
        f"as of {_iso(rec.get('event_time'))}"
    )
    lines += [
        f"{rank:>4}. {i['item_id']:<16} {i['score']:>6.3f}  {i['source']}" for rank, i in enumerate(rec["items"], 1)
    ]
    return lines


def cluster_rows(settings: Settings, tail: int = 5000, timeout_s: float = 15.0) -> list[ClusterRow]:
    """The ML segments seen in the last ``tail`` segment changes per partition, largest audience first."""
    latest: dict[str, dict[str, Any]] = {}
    try:
        records = read_topic(settings, settings.segment_changes_topic, timeout_s=timeout_s,
                             tail=tail)
    except KafkaUnavailable as exc:
        raise ShowError(str(exc)) from None
    for value in (r.value for r in records if r.value is not None):
        try:
            change = segment_change.decode(value)
        except ValueError:
            continue  # a record of another schema version: not ours to explain
        if change.get("kind") != "cluster" or change.get("change") != segment_change.ENTER:
            continue
        name = change["segment"]
        if name not in latest or change["event_time"] >= latest[name]["event_time"]:
            latest[name] = change
    try:
        with _reader(settings) as reader:
            sizes = reader.audience_sizes(latest)
    except RedisUnavailable as exc:
        raise _unreachable(exc) from None
    rows = [ClusterRow(n, sizes[n], cluster_explanation(c), c["event_time"]) for n, c in latest.items()]
    return sorted(rows, key=lambda r: (-r.size, r.name))


def format_clusters(rows: list[ClusterRow]) -> list[str]:
    """
    >>> print("\\n".join(format_clusters([ClusterRow("Cart Fillers", 12, "cart rate +2.3σ", 0)])))
    ML segment                  users  explanation (as of its latest enter, event time)
    Cart Fillers                   12  cart rate +2.3σ  (1970-01-01 00:00:00 UTC)
    """
    lines = [f"{'ML segment':<25} {'users':>7}  explanation (as of its latest enter, event time)"]
    lines += [f"{r.name:<25} {r.size:>7}  {r.explanation}  ({_iso(r.as_of_ms)})" for r in rows]
    return lines
