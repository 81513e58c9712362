"""The segmentation job's dataflow in one Python process: raw events in, segment changes out.

``Segmenter`` drives :class:`operators.segmentation_step.SegmentationStep` the way Flink drives it, for
the runners that have no Flink: the plain-Python and Faust baselines, the profiler and the contract
suite. It adds what Flink would provide around the step:

* normalize (invalid input -> a ``tailor.dead_letter/1`` record for ``on_dead_letter``);
* event-time timers: a heap of (deadline, user) fired when the watermark (highest event time seen
  minus the out-of-orderness bound) passes them, every registered timer once, as Flink's timer service
  does (a stale one fires too; the step ignores it);
* per-user state in a :class:`ProfileStore` (objects in a dict by default; :class:`EncodedProfileStore`
  keeps the encoded form, as Flink's state and a Faust table do);
* identity stitching (``operators.identity``): the control events the job writes back to its own input
  go to ``on_feedback`` as (Kafka key, JSON); without it they are processed here at once.

The watermark advances with every well-formed event, duplicates included, like Flink's watermarks, which
come from the source before any operator sees the record.

>>> seg = Segmenter(_demo_rules())
>>> raw = b'{"type":"track","event":"Product Viewed","messageId":"m%d","userId":"u1","timestamp":%d}'
>>> outs = [seg.process(raw % (i, 1_700_000_000_000 + i)) for i in range(3)]
>>> [[(e.user_id, e.change.segment, e.change.change) for e in o] for o in outs]
[[], [('u1', 'browsing', 'enter')], []]
>>> seg.process(raw % (1, 1_700_000_000_005))   # a duplicate messageId counts once
[]
>>> [(e.change.segment, e.change.change) for e in seg.advance_watermark(1_700_003_000_000)]
[('browsing', 'exit')]
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, Protocol

import orjson

from operators import identity
from operators.experiment_outcomes import EVERYONE, EXPOSURE, OutcomeTotals, learn_user
from operators.normalize import InvalidEvent, normalize
from operators.privacy import Privacy
from operators.rules_updates import BROADCAST_USER, RULES_UPDATED, read_models, read_update
from operators.segment_rules import RuleError, SegmentRules
from operators.segmentation_step import SegmentationStep, StepOutput
from state_schemas import dead_letter, profile_state
from state_schemas.events import ERASED, CanonicalEvent
from state_schemas.experiment_metrics import Outcome
from state_schemas.model_input import ERASE, FORGET, MERGED, RETUNE, ModelInput
from state_schemas.profile_state import ProfileState
from state_schemas.segment_change import SegmentChange


class Emitted(NamedTuple):
    """One segment change as it leaves the job: Kafka key (user id), the change, its JSON record."""

    user_id: str
    change: SegmentChange
    payload: bytes


# Called with (user_id, state, changes, encoded changes) for every step that changed segments: the
# baselines pass ``RedisAudienceWriter.write``.
ChangesSink = Callable[[str, ProfileState, list[SegmentChange], list[bytes]], object]
# Called with (user_id, exit changes, encoded) when a user is forgotten (consent withdrawn): the baselines
# and the job pass ``RedisAudienceWriter.forget``.
ForgetSink = Callable[[str, list[SegmentChange], list[bytes]], object]


class ProfileStore(Protocol):
    def load(self, user: str) -> ProfileState | None: ...

    def store(self, user: str, state: ProfileState) -> None: ...

    def delete(self, user: str) -> None: ...

    def users(self) -> Iterator[str]: ...


class ObjectProfileStore:
    """Profiles as objects in a dict: the cheapest store, what a plain consumer would keep."""

    def __init__(self) -> None:
        self.profiles: dict[str, ProfileState] = {}

    def load(self, user: str) -> ProfileState | None:
        return self.profiles.get(user)

    def store(self, user: str, state: ProfileState) -> None:
        self.profiles[user] = state

    def delete(self, user: str) -> None:
        self.profiles.pop(user, None)

    def users(self) -> Iterator[str]:
        return iter(self.profiles)


class EncodedProfileStore:
    """Profiles in their encoded state form (``state_schemas.profile_state``), decoded on every load and
    encoded on every store: what the Flink job pays per event."""

    def __init__(self, encoded: dict[str, str] | None = None) -> None:
        self.encoded: dict[str, str] = {} if encoded is None else encoded

    def load(self, user: str) -> ProfileState | None:
        raw = self.encoded.get(user)
        return None if raw is None else profile_state.decode(raw)

    def store(self, user: str, state: ProfileState) -> None:
        self.encoded[user] = profile_state.encode(state).decode()

    def delete(self, user: str) -> None:
        self.encoded.pop(user, None)

    def users(self) -> Iterator[str]:
        return iter(self.encoded)


class CachedProfileStore:
    """Profiles decoded in memory in front of a slower store of encoded ones (Flink's ``MapState``, where
    every call crosses from Python into the JVM): reads hit memory after the first, writes go back in one
    call per batch (:meth:`take_dirty`). The least recently used profiles beyond ``max_entries`` leave
    memory (never one not yet written back); they are fetched again when needed.

    >>> backing = {"u1": profile_state.encode(ProfileState(sessions_total=3)).decode()}
    >>> cache = CachedProfileStore(backing.get, lambda: iter(backing), max_entries=10)
    >>> state = cache.load("u1"); state.sessions_total += 1; cache.store("u1", state)
    >>> cache.load("u1").sessions_total, list(cache.take_dirty()), cache.take_dirty()
    (4, ['u1'], {})
    """

    def __init__(
        self, fetch: Callable[[str], str | None], keys: Callable[[], Iterable[str]], max_entries: int = 100_000
    ) -> None:
        self.fetch, self.keys, self.max_entries = fetch, keys, max_entries
        self.profiles: OrderedDict[str, ProfileState] = OrderedDict()
        self.dirty: set[str] = set()
        self.deleted: set[str] = set()

    def load(self, user: str) -> ProfileState | None:
        state = self.profiles.get(user)
        if state is not None:
            self.profiles.move_to_end(user)
            return state
        if user in self.deleted:  # deleted in this batch, still in the backing store until written back
            return None
        raw = self.fetch(user)
        if raw is None:
            return None
        state = self.profiles[user] = profile_state.decode(raw)
        self._bound()
        return state

    def store(self, user: str, state: ProfileState) -> None:
        self.profiles[user] = state
        self.profiles.move_to_end(user)
        self.dirty.add(user)
        self.deleted.discard(user)
        self._bound()

    def delete(self, user: str) -> None:
        """Forget the user here and, at the next :meth:`take_deleted`, in the backing store."""
        self.profiles.pop(user, None)
        self.dirty.discard(user)
        self.deleted.add(user)

    def take_deleted(self) -> set[str]:
        deleted, self.deleted = self.deleted, set()
        return deleted

    def discard(self, user: str) -> None:
        """Forget the in-memory copy (after a failed step half-changed it): the stored one counts."""
        self.profiles.pop(user, None)
        self.dirty.discard(user)

    def users(self) -> Iterator[str]:
        return iter(self.keys())

    def take_dirty(self) -> dict[str, str]:
        """The encoded profiles changed since the last call, to write back; clears them."""
        encoded = {user: profile_state.encode(self.profiles[user]).decode() for user in self.dirty}
        self.dirty.clear()
        return encoded

    def _bound(self) -> None:
        while len(self.profiles) > self.max_entries:
            oldest = next(iter(self.profiles))
            if oldest in self.dirty:
                return  # written back at the end of the batch; evicted later
            del self.profiles[oldest]


class Segmenter:
    def __init__(
        self,
        rules: SegmentRules,
        out_of_orderness_ms: int | None = 5_000,
        source_topic: str = "events",
        on_changes: ChangesSink | None = None,
        on_dead_letter: Callable[[bytes], object] | None = None,
        on_model_input: Callable[[ModelInput], object] | None = None,
        on_forget: ForgetSink | None = None,
        store: ProfileStore | None = None,
        operator: str = "segmenter",
        privacy: Privacy | None = None,
        on_feedback: Callable[[str, bytes], object] | None = None,
        rules_applied_at: int = 0,
        on_rules: Callable[[int, SegmentRules], object] | None = None,
        experiment_totals: dict[tuple[str, str, str], Outcome] | None = None,
        attribution_ms: int = 7 * 86_400_000,
    ) -> None:
        """``out_of_orderness_ms=None``: timers fire only on an explicit ``advance_watermark``. ``operator``
        names the runner in the dead letters of records it raised on. ``privacy``: pseudonymous user ids and
        redacted dead letters (``operators.privacy``; default: dead letters redacted, ids as they came).
        ``rules_applied_at``: when ``rules`` were applied (0: the job's own rules file); ``on_rules`` is told
        of every newer update it takes (``operators.rules_updates``), to keep it. ``experiment_totals``: the
        outcomes of experiments so far (``operators.experiment_outcomes``), summed in ``experiments``."""
        self.operator = operator
        self.privacy = privacy if privacy is not None else Privacy()
        self.step = SegmentationStep(rules, model_inputs=on_model_input is not None)
        self.out_of_orderness_ms = out_of_orderness_ms
        self.source_topic = source_topic
        self.on_changes = on_changes
        self.on_dead_letter = on_dead_letter
        self.on_model_input = on_model_input
        self.on_forget = on_forget
        self.on_feedback = on_feedback
        self.rules_applied_at, self.on_rules = rules_applied_at, on_rules
        self.rules_updates = 0
        self.experiments = OutcomeTotals(experiment_totals)
        self.attribution_ms = attribution_ms
        self.exposures = self.conversions = 0
        self._loopback: deque[bytes] = deque()  # control events, without on_feedback: processed at once
        self.merges = self.forwarded = self.identity_dropped = 0
        self.consent_dropped = 0
        self.erased = 0
        self.erased_dropped = 0
        self.store: ProfileStore = store if store is not None else ObjectProfileStore()
        self.timers: list[tuple[int, str]] = []
        self.watermark = 0
        self.max_event_time = 0
        self.dead_letters = 0
        self.duplicates = 0
        for user in list(self.store.users()):  # restored state: its armed timers come back with it
            state = self.store.load(user)
            if state is not None and state.timer_at:
                heapq.heappush(self.timers, (state.timer_at, user))

    def process(self, raw: bytes | str | None) -> list[Emitted]:
        """One raw Kafka value (None: a tombstone) -> the segment changes it causes (after the timers it made
        due). Like the job, it never raises on input: what it cannot use becomes a dead letter."""
        outputs = self._process_raw(raw)
        while self._loopback:
            outputs += self._process_raw(self._loopback.popleft())
        return outputs

    def _process_raw(self, raw: bytes | str | None) -> list[Emitted]:
        try:
            event = normalize(raw)
            link = identity.link_of(event.user_id, event.anonymous_id, event.previous_id)  # raw ids
            event = self.privacy.event(event)
        except InvalidEvent as exc:
            original = self.privacy.original(_bytes(raw))
            self._dead_letter(dead_letter.encode(exc.code, exc.reason, original, self.source_topic, _now()))
            return []
        try:
            return self.process_event(event, raw, None if link is None else self.privacy.event_id(link))
        except Exception as exc:  # noqa: BLE001 - as in the job: the record is kept, the run goes on
            self._forget(event.user_key)
            self._dead_letter(dead_letter.encode_internal_error(
                exc, self.privacy.original(_bytes(raw)), self.source_topic, _now(), self.operator
            ))
            return []

    def _dead_letter(self, record: bytes) -> None:
        self.dead_letters += 1
        if self.on_dead_letter is not None:
            self.on_dead_letter(record)

    def process_event(
        self, event: CanonicalEvent, raw: bytes | str | None = None, link: str | None = None
    ) -> list[Emitted]:
        """``raw``: the payload as received (control events read it, forwarding re-sends it); ``link``: the
        id the event links to its user (``operators.identity.link_of``, pseudonymised like the event)."""
        if event.name == RULES_UPDATED:  # before time: the update is stamped with the time it was applied
            return self._update_rules(raw)
        outputs: list[Emitted] = []
        if event.timestamp > self.max_event_time:
            self.max_event_time = event.timestamp
            if self.out_of_orderness_ms is not None:
                outputs = self.advance_watermark(event.timestamp - self.out_of_orderness_ms)
        user = event.user_key
        if event.name == ERASED:
            return outputs + self._forget_user(event, "erase", "erased on request (tailor erase)")
        if not self.privacy.consent.allows(event.consent):
            return outputs + self._forget_user(event, "consent", "personalization consent withdrawn")
        state = self.store.load(user)
        if state is not None and state.erased_at:
            self.erased_dropped += 1
            return outputs
        if state is not None and state.merged_into:
            if event.name == identity.MERGE:  # merged already: the first link wins
                self.identity_dropped += 1
                return outputs
            return outputs + self._forward(event, raw, state.merged_into)
        if event.name == identity.MERGE:
            return outputs + self._merge_out(event, state, _properties(raw))
        if event.name == identity.TRANSFER:
            return outputs + self._merge_in(event, state, _properties(raw))
        out = self.step.on_event(state, event, int(time.time() * 1000))
        if out is None:
            self.duplicates += 1
            return outputs
        if out.model_input is not None and self.on_model_input is not None:
            self.on_model_input(out.model_input)
        if event.name == EXPOSURE or out.state.exposures:  # stored with the state by _emit
            self._experiment_outcomes(out.state, event, raw)
        outputs += self._emit(user, out)
        if link is not None and link != user and link not in out.state.linked_ids:
            if len(out.state.linked_ids) < identity.MAX_LINKED_IDS:
                out.state.linked_ids.append(link)
                self.store.store(user, out.state)
                self._feed_back(link, identity.merge_request(link, user, event.message_id, event.timestamp))
            else:
                self.identity_dropped += 1
        return outputs

    def _experiment_outcomes(self, state: ProfileState, event: CanonicalEvent, raw: bytes | str | None) -> None:
        """What this event adds to the outcomes of the experiments the user was exposed to."""
        properties = _properties(raw) if event.name == EXPOSURE else {}
        deltas = learn_user(state.exposures, event.timestamp, event.name, properties, self.attribution_ms,
                            self.step.tracker.gap)
        for (_experiment, _variant, segment), delta in deltas:
            if segment == EVERYONE:
                self.exposures += delta.users
                self.conversions += delta.conversions
        self.experiments.add(deltas)

    def _update_rules(self, raw: bytes | str | None) -> list[Emitted]:
        """Put newer rules in force (``operators.rules_updates``); an older or replayed update is ignored."""
        try:
            applied_at, rules = read_update(_properties(raw), _user_id(raw))
            models = read_models(_properties(raw))
        except RuleError as exc:  # the CLI checks them: a job older than the rules' syntax, say
            self._dead_letter(dead_letter.encode("invalid_rules_update", str(exc), self.privacy.original(_bytes(raw)),
                                                 self.source_topic, _now()))
            return []
        if applied_at > self.rules_applied_at:
            self.step = SegmentationStep(rules, model_inputs=self.on_model_input is not None)
            self.rules_applied_at = applied_at
            self.rules_updates += 1
            if self.on_rules is not None:
                self.on_rules(applied_at, rules)
            if models is not None and self.on_model_input is not None:
                settings = orjson.dumps(models).decode()
                self.on_model_input(ModelInput(BROADCAST_USER, settings, RETUNE, applied_at, None, (), (), None))
        return []

    # -- identity stitching (operators.identity) -------------------------------------------------------
    def _merge_out(self, event: CanonicalEvent, state: ProfileState | None, props: dict[str, Any]) -> list[Emitted]:
        """This id is linked to ``into``: it exits every segment, its state goes to ``into``, and a marker
        stays to forward what still comes for it. A second request (a replay, another known id) is dropped."""
        user, into = event.user_key, props.get("into")
        into = self.privacy.event_id(into) if isinstance(into, str) else None
        if into is None or into == user or (state is not None and into in state.linked_ids):
            self.identity_dropped += 1  # malformed, or a cycle: ``into`` was merged into this id before
            return []
        self.merges += 1
        self.store.store(user, ProfileState(merged_into=into))
        if state is None:
            return []
        out = self.step.forget(state, event, _now(), f"merged into {into} (identity stitching)", "merge")
        self._feed_back(into, identity.profile_transfer(user, into, state, event.message_id, event.timestamp))
        if self.on_model_input is not None:
            self.on_model_input(ModelInput(user, None, MERGED, event.timestamp, None, (), (), event.message_id))
        if self.on_forget is not None:
            self.on_forget(user, out.changes, out.encoded)
        return [Emitted(user, c, p) for c, p in zip(out.changes, out.encoded, strict=True)]

    def _merge_in(self, event: CanonicalEvent, state: ProfileState | None, props: dict[str, Any]) -> list[Emitted]:
        """A linked id's state arrived: fold it into this user's. A user with no state any more (they withdrew
        consent after the link) takes nothing: the linked history must not bring them back."""
        row = props.get("profile")
        if state is None or not isinstance(row, list):
            self.identity_dropped += 1
            return []
        out = self.step.absorb(state, profile_state.decode(orjson.dumps(row)), event, _now())
        if out is None:
            self.duplicates += 1
            return []
        return self._emit(event.user_key, out)

    def _forward(self, event: CanonicalEvent, raw: bytes | str | None, into: str) -> list[Emitted]:
        message = orjson.loads(raw) if raw is not None else None
        hops = message.get(identity.HOPS_FIELD) if isinstance(message, dict) else None
        sent = identity.forwarded(event, into, hops)
        if sent is None:  # hopped too often: ids aliased to each other
            self.identity_dropped += 1
        else:
            self.forwarded += 1
            self._feed_back(into, sent)
        return []

    def _feed_back(self, key: str, message: dict[str, Any]) -> None:
        payload = orjson.dumps(message)
        if self.on_feedback is None:
            self._loopback.append(payload)
        else:
            self.on_feedback(key, payload)

    def _forget_user(self, event: CanonicalEvent, trigger: str, reason: str) -> list[Emitted]:
        """No personalization consent (``trigger`` "consent"), or an erase request ("erase"): the event is
        dropped; a user we kept state for exits every segment, their state is deleted, and the models are
        told to forget them too. An erase keeps a marker instead of the state: the id's later events are
        dropped."""
        user = event.user_key
        state = self.store.load(user)
        erase = trigger == "erase"
        if erase:
            if state is not None and state.erased_at:
                return []  # erased before: nothing left
            self.erased += 1
            self.store.store(user, ProfileState(erased_at=event.timestamp))
        else:
            self.consent_dropped += 1
            if state is None:
                return []
            self.store.delete(user)
        out = self.step.forget(state or ProfileState(), event, _now(), reason, trigger)
        if self.on_model_input is not None:
            kind = ERASE if erase else FORGET
            self.on_model_input(ModelInput(user, None, kind, event.timestamp, None, (), (), event.message_id))
        if self.on_forget is not None:
            self.on_forget(user, out.changes, out.encoded)
        return [Emitted(user, c, p) for c, p in zip(out.changes, out.encoded, strict=True)]

    def advance_watermark(self, watermark: int) -> list[Emitted]:
        """Fire every timer at or before ``watermark`` (Flink fires a timer when the watermark passes it)."""
        self.watermark = max(self.watermark, watermark)
        outputs: list[Emitted] = []
        timers = self.timers
        while timers and timers[0][0] <= self.watermark:
            at, user = heapq.heappop(timers)
            while timers and timers[0] == (at, user):
                heapq.heappop(timers)  # Flink keeps one timer per key and timestamp
            try:
                state = self.store.load(user)
                out = None if state is None else self.step.on_timer(state, user, at, _now())
                if out is not None:
                    outputs += self._emit(user, out)
            except Exception as exc:  # noqa: BLE001 - a timer must not stop the run either; the user stays as stored
                self._forget(user)
                original = orjson.dumps({"user_id": user, "timer": at})
                self._dead_letter(dead_letter.encode_internal_error(
                    exc, original, self.source_topic, _now(), f"{self.operator}.timer"
                ))
        return outputs

    def _forget(self, user: str) -> None:
        discard = getattr(self.store, "discard", None)  # a store that can drop a half-changed copy does
        if discard is not None:
            discard(user)

    def register_timer(self, user: str, at: int) -> None:
        heapq.heappush(self.timers, (at, user))

    def _emit(self, user: str, out: StepOutput) -> list[Emitted]:
        if out.timer_at is not None:
            self.register_timer(user, out.timer_at)
        self.store.store(user, out.state)
        if not out.changes:
            return []
        if self.on_changes is not None:
            self.on_changes(user, out.state, out.changes, out.encoded)
        return [Emitted(user, c, p) for c, p in zip(out.changes, out.encoded, strict=True)]


def _now() -> int:
    return int(time.time() * 1000)


def _properties(raw: bytes | str | None) -> dict[str, Any]:
    message = orjson.loads(raw) if raw is not None else None
    props = message.get("properties") if isinstance(message, dict) else None
    return props if isinstance(props, dict) else {}


def _user_id(raw: bytes | str | None) -> object:
    message = orjson.loads(raw) if raw is not None else None
    return message.get("userId") if isinstance(message, dict) else None


def _bytes(raw: bytes | str | None) -> bytes:
    return b"" if raw is None else raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)


def _demo_rules() -> SegmentRules:
    return SegmentRules.from_dict({"session_gap": "30m", "segments": [
        {"name": "browsing", "when": "session.product_views >= 2"}]})
