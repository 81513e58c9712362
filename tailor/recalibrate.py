"""``tailor recalibrate``: rule thresholds from what users did, validated on held-out time, applied live.

Reads the events topic, replays its last days through the job's per-user step with every candidate value
of the plan's thresholds (``evaluation.recalibration``), chooses on the earlier part, validates on the later
part, and, with ``--apply``, publishes the recalibrated rules as a rules update (``tailor rules apply``):
the running job puts them in force without a restart, and every segment change records the rules version
that made it. The rules in force are the newest rules update in the topic, else the job's rules file.

Every run is logged with its before and after figures: one JSON line appended to
``evaluation-results/recalibrations.jsonl``, and the proposal as a rules file next to it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import yaml

from connectors.kafka_events import read_topic
from evaluation import RESULTS_DIR
from evaluation.recalibration import Proposal, RecalibrationPlan, Score, propose, recalibrated, replay
from evaluation.replay_metrics import markdown_table, print_table, write_results
from operators.segment_rules import SegmentRules
from settings import Settings
from settings.progress import progress_bar
from tailor.rules import publish

LOG = "recalibrations.jsonl"
PROPOSED_RULES = "recalibrated-segments.yaml"
HEADERS = ["value", "", "entries", "precision", "recall", "F", "held-out entries", "held-out F"]


@dataclasses.dataclass(frozen=True)
class Recalibration:
    rules_before: str  # version of the rules in force
    rules_after: str | None  # version of the recalibrated rules; None: nothing to change
    applied: bool
    proposals: list[Proposal]


def recalibrate(
    settings: Settings, plan_path: Path, rules_path: Path, apply: bool = False, days: float | None = None,
    out: Callable[[str], None] = print, results_dir: Path = RESULTS_DIR,
) -> Recalibration:
    """``results_dir``: where the log and the proposed rules file go (``evaluation-results/``)."""
    plan = RecalibrationPlan.from_yaml(plan_path)
    if days is not None:
        plan = dataclasses.replace(plan, days=days)
    records = read_topic(settings, settings.events_topic, timeout_s=600)
    with progress_bar(len(records), "replaying the events topic", "events") as bar:
        def values() -> Iterator[bytes]:
            for record in records:
                bar.update()
                yield record.value

        observed, in_force = replay(values(), SegmentRules.from_yaml(rules_path), plan)
    out(f"replayed {observed.events:,} events of {settings.events_topic} from {_when(observed.first_ms)} to "
        f"{_when(observed.last_ms)} UTC; rules in force {in_force.version}; score F-beta, beta {plan.beta:g}")
    proposals = propose(observed, in_force, plan)
    markdown = []
    for p in proposals:
        out(f"\n{p.threshold.parameter} (judged by {p.threshold.segment}): {p.current} -> {p.best}: {p.decision}")
        rows = [_row(p, value) for value in p.train]
        print_table(HEADERS, rows)
        markdown.append(f"## {p.threshold.parameter}\n\n{p.current} -> {p.best}: {p.decision}\n\n"
                        + markdown_table(HEADERS, rows))
    after = recalibrated(in_force, proposals)
    results_dir.mkdir(parents=True, exist_ok=True)
    proposed, log_path = results_dir / PROPOSED_RULES, results_dir / LOG
    if after is not None:
        proposed.write_text(f"# tailor recalibrate, {_when(int(time.time() * 1000))} UTC, from rules "
                                  f"{in_force.version}\n" + yaml.safe_dump(dict(after.source), sort_keys=False))
        out(f"\nrecalibrated rules {after.version} written to {proposed}")
        if apply:
            out(publish(settings, after).summary(proposed, settings.events_topic))
        else:
            out(f"not applied (no --apply): `tailor rules apply {proposed}` puts them in force")
    else:
        out("\nnothing to change: the rules in force stay")
    result = Recalibration(in_force.version, after.version if after else None, apply and after is not None, proposals)
    entry = _log_entry(result, observed.events, observed.first_ms, observed.last_ms)
    with log_path.open("ab") as log:
        log.write(orjson.dumps(entry) + b"\n")
    write_results("recalibration", entry, "\n\n".join(markdown), results_dir)
    out(f"logged to {log_path}")
    return result


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
    }


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))
