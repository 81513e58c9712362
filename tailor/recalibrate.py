"""``tailor recalibrate``: rule thresholds from what users did, validated on held-out time, applied live.

Reads the events topic, replays its last days through the job's per-user step with every candidate value
of the plan's thresholds (``evaluation.recalibration``) and, when the job runs the models, through the
job's recommender with every candidate blend (``evaluation.blend_recalibration``); chooses on the earlier
part, validates on the later part, and, with ``--apply``, publishes what won as one rules update
(``tailor rules apply``) carrying the blend as live model settings: the running job puts both in force
without a restart; every segment change records the rules version, every recommendation list the model
version (``.../tuned-<hash>``) that made it. What is in force is the newest update in the topic, else the
job's files.

Every run is logged with its before and after figures: one JSON line appended to
``evaluation-results/recalibrations.jsonl``, and the proposal as a rules file next to it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from connectors import recalibration_log
from connectors.kafka_events import read_topic
from connectors.recalibration_log import RecalibrationLogUnavailable
from evaluation import RESULTS_DIR
from evaluation.blend_recalibration import IN_FORCE, BlendProposal, propose_blend
from evaluation.recalibration import (
    DAY_MS,
    History,
    Proposal,
    RecalibrationPlan,
    Score,
    propose,
    read_history,
    recalibrated,
    replay,
)
from evaluation.replay_metrics import markdown_table, print_table, write_results
from operators.models_config import ModelsConfig
from operators.rules_updates import BROADCAST_USER
from operators.segment_rules import SegmentRules
from settings import Settings
from settings.progress import progress_bar
from state_schemas import recalibration
from tailor.rules import publish

TAIL = 16  # records per partition that find the newest event stamp
LOG = "recalibrations.jsonl"
PROPOSED_RULES = "recalibrated-segments.yaml"
HEADERS = ["value", "", "entries", "precision", "recall", "F", "held-out entries", "held-out F"]
BLEND_HEADERS = ["blend", "", "weights", "Recall@10", "held-out Recall@10"]


@dataclasses.dataclass(frozen=True)
class Recalibration:
    rules_before: str  # version of the rules in force
    rules_after: str | None  # version of the recalibrated rules; None: nothing to change
    applied: bool
    proposals: list[Proposal]
    blend: BlendProposal | None = None  # None: not recalibrated (models off, no candidates, --skip-blend)


def recalibrate(
    settings: Settings, plan_path: Path, rules_path: Path, apply: bool = False, days: float | None = None,
    out: Callable[[str], None] = print, results_dir: Path = RESULTS_DIR, skip_blend: bool = False,
    tables: bool = True,
) -> Recalibration:
    """``results_dir``: where the log and the proposed rules file go (``evaluation-results/``); ``tables``:
    print each candidate's figures (the demo, printing live changes meanwhile, prints the decisions only)."""
    plan = RecalibrationPlan.from_yaml(plan_path)
    if days is not None:
        plan = dataclasses.replace(plan, days=days)
    records = read_topic(settings, settings.events_topic, timeout_s=600, since_ms=_since(settings, plan.days))
    history = read_history((r.value for r in records), SegmentRules.from_yaml(rules_path), plan.days)
    in_force = history.rules
    out(f"replaying {len(history.events):,} events of {settings.events_topic} from {_when(history.first_ms)} to "
        f"{_when(history.last_ms)} UTC; rules in force {in_force.version}; thresholds scored by F-beta, "
        f"beta {plan.beta:g}")
    proposals = propose(replay(history, plan), in_force, plan)
    markdown = []
    for p in proposals:
        out(f"\n{p.threshold.parameter} (judged by {p.threshold.segment}): {p.current} -> {p.best}: {p.decision}")
        rows = [_row(p, value) for value in p.train]
        if tables:
            print_table(HEADERS, rows)
        markdown.append(f"## {p.threshold.parameter}\n\n{p.current} -> {p.best}: {p.decision}\n\n"
                        + markdown_table(HEADERS, rows))
    blend = None
    if settings.models_enabled and plan.blend_candidates and not skip_blend:
        blend = _blend(settings, history, plan, out, tables)
        markdown.append(f"## blend\n\n{blend.decision}\n\n" + markdown_table(BLEND_HEADERS, _blend_rows(blend)))
    models = blend.settings() if blend is not None and blend.decision == "apply" else None
    after = recalibrated(in_force, proposals)
    if after is None and models is not None:
        after = in_force  # the rules stay; the update carries the blend
    results_dir.mkdir(parents=True, exist_ok=True)
    proposed, log_path = results_dir / PROPOSED_RULES, results_dir / LOG
    if after is not None:
        proposed.write_text(f"# tailor recalibrate, {_when(int(time.time() * 1000))} UTC, from rules "
                            f"{in_force.version}\n" + yaml.safe_dump(dict(after.source), sort_keys=False))
        out(f"\nrecalibrated rules {after.version} written to {proposed}"
            + (f" (the blend {blend.best} is applied with --apply only: it is not part of the file)" if models else ""))
        if apply:
            out(publish(settings, after, models).summary(proposed, settings.events_topic)
                + (f"; with the blend {blend.best}" if models and blend else ""))
        else:
            out(f"not applied (no --apply): `tailor rules apply {proposed}` puts them in force")
    else:
        out("\nnothing to change: the rules in force stay")
    result = Recalibration(in_force.version, after.version if after else None, apply and after is not None, proposals,
                           blend)
    entry = _log_entry(result, len(history.events), history.first_ms, history.last_ms)
    record = recalibration.encode(entry)
    with log_path.open("ab") as log:
        log.write(record + b"\n")
    write_results("recalibration", entry, "\n\n".join(markdown), results_dir)
    try:
        out(f"logged to {log_path} and Redis {recalibration_log.append(settings, record)}")
    except RecalibrationLogUnavailable as exc:  # the file has it; what was applied stays applied
        out(f"logged to {log_path}; not to Redis: {exc}")
    return result


def _since(settings: Settings, days: float) -> int | None:
    """Where to start reading: only the last days are fetched (by the broker's time index), whatever the
    topic's retention. The newest event stamp among the last records bounds them (rules updates are
    stamped with the wall clock, events with their event time), with a day of slack for records stamped out
    of order; None (read everything) if the tail holds no event."""
    tail = read_topic(settings, settings.events_topic, tail=TAIL)
    newest = max((r.timestamp for r in tail if r.key != BROADCAST_USER.encode()), default=None)
    return None if newest is None else max(0, newest - int(days * DAY_MS) - DAY_MS)


def _blend(
    settings: Settings, history: History, plan: RecalibrationPlan, out: Callable[[str], None], tables: bool,
) -> BlendProposal:
    base = ModelsConfig.from_yaml(settings.models_file).recommendations
    with progress_bar(len(plan.blend_candidates) + 1, "replaying the recommender per blend", "blends",
                      enabled=None if tables else False) as bar:
        blend = propose_blend(history, base, list(plan.blend_candidates), plan.holdout, plan.blend_margin,
                              progress=lambda _name: bar.update())
    out(f"\nrecommendation blend (Recall@10, {blend.tests[0]:,} + {blend.tests[1]:,} held-out product events): "
        f"{IN_FORCE} -> {blend.best}: {blend.decision}")
    if tables:
        print_table(BLEND_HEADERS, _blend_rows(blend))
    return blend


def _blend_rows(blend: BlendProposal) -> list[list[Any]]:
    return [[name, "chosen" if name == blend.best else "", " ".join(f"{k}={v:g}" for k, v in weights.items()),
             f"{blend.train[name]:.4f}", f"{blend.test[name]:.4f}"] for name, weights in blend.blends.items()]


def _row(p: Proposal, value: Any) -> list[Any]:
    train, test = p.train[value], p.test[value]
    mark = "in force" if value == p.current else "chosen" if value == p.best else ""
    return [value, mark, train.entries, f"{train.precision:.3f}", f"{train.recall:.3f}", f"{train.f(p.beta):.3f}",
            test.entries, f"{test.f(p.beta):.3f}"]


def _figures(score: Score, beta: float) -> dict[str, Any]:
    return {"entries": score.entries, "precision": round(score.precision, 4), "recall": round(score.recall, 4),
            "f": round(score.f(beta), 4)}


def _log_entry(result: Recalibration, events: int, first_ms: int, last_ms: int) -> dict[str, Any]:
    return {
        "at": int(time.time() * 1000), "events": events, "first_ms": first_ms, "last_ms": last_ms,
        "rules_before": result.rules_before, "rules_after": result.rules_after, "applied": result.applied,
        "thresholds": [{
            "parameter": p.threshold.parameter, "segment": p.threshold.segment, "before": p.current,
            "after": p.best, "decision": p.decision,
            "before_heldout": _figures(p.test[p.current], p.beta), "after_heldout": _figures(p.test[p.best], p.beta),
            "before_train": _figures(p.train[p.current], p.beta), "after_train": _figures(p.train[p.best], p.beta),
        } for p in result.proposals],
        "blend": None if result.blend is None else {
            "before": result.blend.blends[IN_FORCE], "after": result.blend.blends[result.blend.best],
            "decision": result.blend.decision, "before_heldout_recall10": round(result.blend.test[IN_FORCE], 4),
            "after_heldout_recall10": round(result.blend.test[result.blend.best], 4),
            "before_train_recall10": round(result.blend.train[IN_FORCE], 4),
            "after_train_recall10": round(result.blend.train[result.blend.best], 4),
        },
    }


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))
