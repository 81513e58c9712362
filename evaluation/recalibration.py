"""Rule thresholds recalibrated from what users did: propose on earlier time, validate on later time.

A *threshold* is a named parameter of the rules (``hesitant_min_views``) and the segment that judges it.
One replay of the events through the job's own per-user step (``operators.segmenter.Segmenter``) scores
every candidate value at once: the rules get one copy of the judged segment per candidate, each with its
own copy of the parameter. An entry into a copy is *right* when its user does not buy within the outcome
window (the shoppers a nudge is for); an *at-risk* cart add (no purchase within the window) is *caught*
when its user is in the copy at some instant within ``act_within`` of it. The F-beta score of the two (precision
weighed more by default) ranks the candidates.

The span is split in time: the candidate with the best score on the earlier part is compared with the value
in force on the later, held-out part, and proposed only if it wins there by the margin. Choosing on the
same events that validate would reward overfitting; the held-out part is never used to choose.

>>> plan = RecalibrationPlan.from_dict({"outcome_window": "1h", "act_within": "10m", "thresholds": [
...     {"parameter": "min_views", "segment": "hesitant", "candidates": [2, 4]}]})
>>> rules = SegmentRules.from_dict({"parameters": {"min_views": 3}, "segments": [
...     {"name": "hesitant", "when": "session.product_views > min_views and session.cart_adds >= 1"}]})
>>> [r.name for r in candidate_rules(rules, plan).rules]
['hesitant', 'hesitant__0', 'hesitant__1', 'hesitant__2']
>>> score = Score(entries=10, right=8, at_risk=5, caught=4)
>>> round(score.f(1.0), 3), round(score.f(0.5), 3)
(0.8, 0.8)
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from operators.normalize import InvalidEvent, normalize
from operators.recommender import RecommenderConfig, RecommenderConfigError
from operators.rules_updates import RULES_UPDATED, read_models, read_update
from operators.segment_rules import RuleError, SegmentRules, parse_duration
from operators.segmenter import Segmenter
from settings.config_files import read_yaml_file
from settings.errors import TailorError
from state_schemas.events import CanonicalEvent

DAY_MS = 86_400_000
PURCHASE, CART_ADD = "order_completed", "product_added"


class RecalibrationError(TailorError):
    """The recalibration plan, the rules or the data cannot support a recalibration; the message says why."""


@dataclass(frozen=True)
class Threshold:
    parameter: str
    segment: str
    candidates: tuple[Any, ...]  # as written in the plan: 5, "30m"


@dataclass(frozen=True)
class RecalibrationPlan:
    thresholds: tuple[Threshold, ...]
    days: float = 14.0
    holdout: float = 0.3
    margin: float = 0.02
    beta: float = 0.5
    min_entries: int = 30
    outcome_window_ms: int = DAY_MS
    act_within_ms: int = 3_600_000
    # the recommendation blend (evaluation.blend_recalibration): partial overrides to try, relative margin
    blend_candidates: tuple[dict[str, Any], ...] = ()
    blend_margin: float = 0.02

    @classmethod
    def from_yaml(cls, path: Path | str) -> RecalibrationPlan:
        data = read_yaml_file(path, "recalibration plan", RecalibrationError)
        try:
            return cls.from_dict(data)
        except (RecalibrationError, RuleError) as exc:
            raise RecalibrationError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Any) -> RecalibrationPlan:
        if not isinstance(data, dict) or not isinstance(data.get("thresholds"), list) or not data["thresholds"]:
            raise RecalibrationError("expected a mapping with a non-empty 'thresholds' list")
        thresholds = []
        for i, entry in enumerate(data["thresholds"]):
            candidates = entry.get("candidates") if isinstance(entry, dict) else None
            if not isinstance(candidates, list) or not candidates or not all(
                isinstance(entry.get(k), str) for k in ("parameter", "segment")
            ):
                raise RecalibrationError(f"threshold #{i + 1} needs 'parameter', 'segment' and a 'candidates' list")
            thresholds.append(Threshold(entry["parameter"], entry["segment"], tuple(candidates)))
        blend = data.get("blend") or {}
        candidates = blend.get("candidates", []) if isinstance(blend, dict) else None
        if not isinstance(candidates, list):
            raise RecalibrationError("blend must be a mapping with a 'candidates' list")
        for candidate in candidates:
            try:
                RecommenderConfig().with_live_settings({"blend": candidate})
            except RecommenderConfigError as exc:
                raise RecalibrationError(f"blend candidate {candidate!r}: {exc}") from None
        plan = cls(
            tuple(thresholds), float(data.get("days", 14)), float(data.get("holdout", 0.3)),
            float(data.get("margin", 0.02)), float(data.get("beta", 0.5)), int(data.get("min_entries", 30)),
            parse_duration(data.get("outcome_window", "24h"), "outcome_window"),
            parse_duration(data.get("act_within", "1h"), "act_within"),
            tuple(dict(c) for c in candidates), float(blend.get("margin", 0.02)),
        )
        if not (0 < plan.holdout < 1 and plan.days > 0 and plan.margin >= 0 and plan.beta > 0
                and plan.min_entries >= 1):
            raise RecalibrationError("need 0 < holdout < 1, days > 0, margin >= 0, beta > 0 and min_entries >= 1")
        return plan


@dataclass(frozen=True)
class Score:
    """How well entering a segment picked the shoppers who would not buy by themselves."""

    entries: int
    right: int  # entries not followed by a purchase within the outcome window
    at_risk: int  # cart adds not followed by a purchase within the outcome window
    caught: int  # ... whose user entered the segment within act_within of them

    @property
    def precision(self) -> float:
        return self.right / self.entries if self.entries else 0.0

    @property
    def recall(self) -> float:
        return self.caught / self.at_risk if self.at_risk else 0.0

    def f(self, beta: float) -> float:
        """F-beta: beta < 1 weighs precision more (a nudge shown to a shopper who would have bought anyway
        costs money), beta = 1 is F1."""
        p, r = self.precision, self.recall
        return (1 + beta**2) * p * r / (beta**2 * p + r) if p + r else 0.0


@dataclass
class Observed:
    """What one replay saw: per user, purchase and cart-add times; per segment copy and user, the spans of
    time the user was in it (``[enter, exit]``, exit ``None`` while still in at the end)."""

    purchases: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    cart_adds: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    spans: dict[str, dict[str, list[list[Any]]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    first_ms: int = 0
    last_ms: int = 0
    events: int = 0

    def flag(self, copy: str, user: str, change: str, at: int) -> None:
        spans = self.spans[copy][user]
        if change == "enter":
            spans.append([at, None])
        elif spans and spans[-1][1] is None:
            spans[-1][1] = at

    def score(self, copy: str, start: int, end: int, plan: RecalibrationPlan) -> Score:
        """The score of ``copy``'s entries and of the cart adds in [start, end)."""
        window, act = plan.outcome_window_ms, plan.act_within_ms
        entries = right = at_risk = caught = 0
        by_user = self.spans.get(copy, {})
        for user, spans in by_user.items():
            for entered, _exited in spans:
                if start <= entered < end:
                    entries += 1
                    right += not self._buys_within(user, entered, window)
        for user, times in self.cart_adds.items():
            spans = by_user.get(user, [])
            starts = [entered for entered, _ in spans]
            for t in times:
                if start <= t < end and not self._buys_within(user, t, window):
                    at_risk += 1
                    # in the segment at some instant of [t, t + act]: the last span entered by t + act is
                    # the only one that can still be open at t (spans do not overlap)
                    i = bisect.bisect_right(starts, t + act) - 1
                    caught += i >= 0 and (spans[i][1] is None or spans[i][1] > t)
        return Score(entries, right, at_risk, caught)

    def _buys_within(self, user: str, t: int, window: int) -> bool:
        purchases = self.purchases.get(user, ())
        i = bisect.bisect_right(purchases, t)
        return i < len(purchases) and purchases[i] <= t + window


def copy_name(segment: str, i: int) -> str:
    return f"{segment}__{i}"


def candidate_values(rules: SegmentRules, threshold: Threshold) -> tuple[Any, ...]:
    """The plan's candidates, and the value in force first if the plan does not list it."""
    parameters = rules.source.get("parameters") or {}
    if threshold.parameter not in parameters:
        raise RecalibrationError(f"the rules in force have no parameter {threshold.parameter!r} "
                                 f"(they declare: {', '.join(parameters) or 'none'})")
    if threshold.segment not in rules.names:
        raise RecalibrationError(f"the rules in force have no segment {threshold.segment!r}")
    current = parameters[threshold.parameter]
    known = {_value(c, threshold.parameter) for c in threshold.candidates}
    return threshold.candidates if _value(current, threshold.parameter) in known else (current, *threshold.candidates)


def candidate_rules(rules: SegmentRules, plan: RecalibrationPlan) -> SegmentRules:
    """``rules`` plus, for every threshold, one copy of its segment per candidate value."""
    source = dict(rules.source)
    parameters = dict(source.get("parameters") or {})
    segments = list(source["segments"])
    by_name = {s["name"]: s for s in segments}
    for threshold in plan.thresholds:
        word = re.compile(rf"(?<![\w.]){re.escape(threshold.parameter)}(?!\w)")
        for i, value in enumerate(candidate_values(rules, threshold)):
            alias = f"{threshold.parameter}__{i}"
            parameters[alias] = value
            judged = by_name[threshold.segment]
            segments.append({**judged, "name": copy_name(threshold.segment, i),
                             "when": word.sub(alias, judged["when"])})
    return SegmentRules.from_dict({**source, "parameters": parameters, "segments": segments})


@dataclass(frozen=True)
class History:
    """The last days of the events topic, as a recalibration replays them, and what was in force."""

    events: list[tuple[int, bytes, CanonicalEvent]]  # (event time, raw, normalized), in event-time order
    rules: SegmentRules  # the newest rules update's, else the rules file's
    models: dict[str, Any] | None  # the live model settings of the newest update that carried some
    first_ms: int
    last_ms: int


def read_history(records: Iterable[bytes], rules: SegmentRules, days: float) -> History:
    """The last ``days`` of ``records`` (raw events, any order), sorted by event time, and what is in force:
    the newest ``tailor rules apply`` update's rules (else ``rules``) and model settings. Control and
    invalid records are not replayed (the job dead-letters the latter)."""
    timed, applied_at, models_at, models = [], 0, 0, None
    for raw in records:
        try:
            event = normalize(raw)
        except InvalidEvent:
            continue
        if event.name == RULES_UPDATED:
            try:
                at, updated = read_update(_properties(raw), event.user_id)
                carried = read_models(_properties(raw))
            except RuleError:
                continue  # the job refused it too
            if at > applied_at:
                applied_at, rules = at, updated
            if carried is not None and at > models_at:
                models_at, models = at, carried
            continue
        timed.append((event.timestamp, raw, event))
    if not timed:
        raise RecalibrationError("no valid event to replay: the events topic holds none (is it the job's topic?)")
    timed.sort(key=lambda t: t[0])  # event time: the per-partition order the job sees merges into this
    last = timed[-1][0]
    first = max(timed[0][0], last - int(days * DAY_MS))
    window = timed[bisect.bisect_left(timed, first, key=lambda t: t[0]):]
    return History(window, rules, models, first, last)


def replay(history: History, plan: RecalibrationPlan) -> Observed:
    """Replay ``history`` through the job's per-user step with every candidate of the plan's thresholds."""
    rules = history.rules
    observed = Observed(first_ms=history.first_ms, last_ms=history.last_ms)
    copies = {copy_name(t.segment, i) for t in plan.thresholds for i in range(len(candidate_values(rules, t)))}
    segmenter = Segmenter(candidate_rules(rules, plan))
    for ts, raw, event in history.events:
        observed.events += 1
        if event.name == PURCHASE:
            observed.purchases[event.user_key].append(ts)
        elif event.name == CART_ADD:
            observed.cart_adds[event.user_key].append(ts)
        _observe(segmenter.process(raw), copies, observed)
    _observe(segmenter.advance_watermark(history.last_ms), copies, observed)
    for times in (*observed.purchases.values(), *observed.cart_adds.values()):
        times.sort()
    return observed


@dataclass(frozen=True)
class Proposal:
    """One threshold's recalibration: every candidate's scores, the choice and the decision."""

    threshold: Threshold
    current: Any
    best: Any
    train: dict[Any, Score]  # candidate -> its score on the earlier part
    test: dict[Any, Score]  # candidate -> its score on the held-out part (shown, never used to choose)
    decision: str  # "apply", "keep" or "keep: <why>"
    beta: float  # of the F-beta that ranks them

    @property
    def gain(self) -> float:
        return self.test[self.best].f(self.beta) - self.test[self.current].f(self.beta)


def propose(observed: Observed, rules: SegmentRules, plan: RecalibrationPlan) -> list[Proposal]:
    """Choose each threshold's value on the earlier part, validate it on the held-out later part."""
    observable_end = observed.last_ms - plan.outcome_window_ms  # later entries' outcomes are not known yet
    if observable_end <= observed.first_ms:
        hours = (observed.last_ms - observed.first_ms) / 3_600_000
        raise RecalibrationError(
            f"the events span {hours:.1f} h; an outcome window of {plan.outcome_window_ms / 3_600_000:g} h "
            "needs a longer span (more data, or a shorter outcome_window in the plan)"
        )
    split = observed.first_ms + int((1 - plan.holdout) * (observable_end - observed.first_ms))
    proposals = []
    for threshold in plan.thresholds:
        values = candidate_values(rules, threshold)
        in_force = _value(rules.source["parameters"][threshold.parameter], threshold.parameter)
        current = next(v for v in values if _value(v, threshold.parameter) == in_force)  # as the plan writes it
        train = {v: observed.score(copy_name(threshold.segment, i), observed.first_ms, split, plan)
                 for i, v in enumerate(values)}
        test = {v: observed.score(copy_name(threshold.segment, i), split, observable_end, plan)
                for i, v in enumerate(values)}
        top = max(s.f(plan.beta) for s in train.values())
        # ties keep the value in force: a change must earn its place
        best = current if train[current].f(plan.beta) == top else next(
            v for v in values if train[v].f(plan.beta) == top)
        proposal = Proposal(threshold, current, best, train, test, "", plan.beta)
        gain = proposal.gain
        if best == current:
            decision = "keep: the value in force scores best on the earlier part"
        elif test[best].entries < plan.min_entries:
            decision = f"keep: fewer than {plan.min_entries} held-out entries of {best} to validate on"
        elif gain < plan.margin:
            decision = f"keep: held-out F-score gain {gain:+.3f} is below the margin {plan.margin:g}"
        else:
            decision = "apply"
        proposals.append(dataclasses.replace(proposal, decision=decision))
    return proposals


def recalibrated(rules: SegmentRules, proposals: Iterable[Proposal]) -> SegmentRules | None:
    """The rules with every applied proposal's value, or None if nothing is to be applied."""
    changes = {p.threshold.parameter: p.best for p in proposals if p.decision == "apply"}
    if not changes:
        return None
    source = dict(rules.source)
    return SegmentRules.from_dict({**source, "parameters": {**source["parameters"], **changes}})


def _observe(emitted: Iterable[Any], copies: set[str], observed: Observed) -> None:
    for out in emitted:
        change = out.change
        if change.segment in copies:
            observed.flag(change.segment, out.user_id, change.change, change.event_time)


def _value(written: Any, parameter: str) -> float:
    return written if isinstance(written, int | float) else parse_duration(written, f"parameter {parameter!r}")


def _properties(raw: bytes) -> Mapping[str, Any]:
    properties = orjson.loads(raw).get("properties")
    return properties if isinstance(properties, dict) else {}
