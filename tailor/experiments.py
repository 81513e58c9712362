"""``tailor experiments report``: every experiment's result from what is in the events topic.

Exposures are the ``Experiment Viewed`` events the snippet (or a server) sends; outcomes are what each
exposed user did afterwards in event time (``operators.experiment_outcomes``): conversion and
click-through within the attribution window, bounce and engagement in the exposure's session. The
statistics, the Holm correction and the fixed-horizon rule are ``evaluation.experiment_report``'s. One
table per experiment (everyone, then each segment the users were in when exposed), a plot per experiment,
a JSON/Markdown copy in ``evaluation-results/``, and each result in Redis (``tailor.experiment_report/1``)
for ``GET /v1/experiments/{name}`` of ``tailor serve``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from connectors import experiment_results
from connectors.kafka_events import read_topic
from evaluation import RESULTS_DIR
from evaluation.experiment_report import HEADERS, plot, stream_rows, table
from evaluation.replay_metrics import markdown_table, print_table, write_results
from operators.experiment_outcomes import EXPOSURE, ExperimentOutcomes
from operators.experiments import load_experiments
from operators.normalize import InvalidEvent, normalize
from settings import Settings
from settings.progress import progress_bar
from state_schemas import experiment_report

DAY_MS = 86_400_000


def report(
    settings: Settings, experiments_file: Path, attribution_days: float = 7.0, out: Callable[[str], None] = print,
    live: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """``live``: from the running job's totals in Redis (its attribution window: 7 days), not the topic."""
    experiments = load_experiments(experiments_file)
    if live:
        summed, events_read = experiment_results.live_outcomes(settings, [e.name for e in experiments]), 0
    else:
        summed, events_read = _from_topic(settings, attribution_days)
    results, markdown = {}, []
    for experiment in experiments:
        rows = stream_rows(experiment, summed)
        results[experiment.name] = rows
        out(f"\n{experiment.name} ({experiment.primary_metric}; attribution {attribution_days:g} days; "
            f"{rows[0]['designed_users']:,} users per arm designed)" if rows else
            f"\n{experiment.name}: no exposure in {settings.events_topic} yet")
        if not rows:
            continue
        print_table(HEADERS, table(rows))
        extra = [[r["segment"], r["variant"], f"{r['control_click_through']:.3f} / {r['variant_click_through']:.3f}",
                  f"{r['control_bounce_rate']:.3f} / {r['variant_bounce_rate']:.3f}",
                  f"{r['control_engagement_s']:.0f} / {r['variant_engagement_s']:.0f}"] for r in rows]
        print_table(["segment", "variant", "click-through c/v", "bounce c/v", "engagement s c/v"], extra)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out(f"plot: {plot(experiment, rows, RESULTS_DIR / f'experiment-{experiment.name}.png')}")
        markdown.append(f"## {experiment.name}\n\n" + markdown_table(HEADERS, table(rows)))
        payload = experiment_report.encode(experiment.name, rows, int(time.time() * 1000), events_read)
        out(f"stored in Redis {experiment_results.store(settings, experiment.name, payload)}")
    write_results("experiments-report", results, "\n\n".join(markdown))
    return results


def _from_topic(settings: Settings, attribution_days: float) -> tuple[dict, int]:  # type: ignore[type-arg]
    """Every exposure and outcome in the events topic, in one pass: (summed outcomes, events read)."""
    outcomes = ExperimentOutcomes(attribution_ms=int(attribution_days * DAY_MS))
    records = read_topic(settings, settings.events_topic, timeout_s=600)
    with progress_bar(len(records), "reading the events topic", "events") as bar:
        for record in records:  # (partition, offset) order: each user's events in their order
            bar.update()
            try:
                event = normalize(record.value)
            except InvalidEvent:
                continue  # the job dead-lettered it: not an exposure nor an outcome
            properties = orjson.loads(record.value).get("properties") if event.name == EXPOSURE else None
            outcomes.learn_one(event.user_key, event.timestamp, event.name,
                               properties if isinstance(properties, dict) else {})
    return outcomes.outcomes(), len(records)
