"""``tailor dead-letters replay``: re-submit fixed dead letters, and say what stays invalid and why."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from connectors.dead_letter_replay import ReplayReport, replay
from settings import Settings
from settings.progress import progress_bar


def replay_dead_letters(
    settings: Settings, codes: Iterable[str], dry_run: bool, out: Callable[[str], None] = print
) -> ReplayReport:
    with progress_bar(None, "judging dead letters", unit="letters") as bar:
        report = replay(settings, codes, dry_run, progress=bar.update)
    verb = "would replay" if dry_run else "replayed"
    out(f"{report.letters:,} dead letters in {settings.dead_letters_topic}: {verb} {report.replayed:,} to "
        f"{settings.events_topic}, {report.already_replayed:,} replayed before (skipped), "
        f"{sum(report.still_invalid.values()):,} still invalid, {report.skipped_by_filter:,} not selected")
    for code, count in report.replayed_by_code.most_common():
        out(f"  {verb:>12}  {count:>7,}  rejected then as {code}")
    for code, count in report.still_invalid.most_common():
        out(f"  still invalid {count:>7,}  {code}: {report.examples[code]}")
    return report
