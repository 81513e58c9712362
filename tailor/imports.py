"""``tailor import FILE --mapping MAPPING``: CRM and third-party records as ``identify`` events.

Each row becomes one Segment ``identify`` message (:mod:`operators.crm_import`: the mapping, the message,
its checks) on the events topic, keyed by user like every event. The job links a mapped anonymous id to
the master id (identity stitching) and applies mapped consent; the messages say ``context.active: false``,
so an import is not activity. Rows it cannot use are not sent: they go to a CSV report (line, reason) and
the first few are named in the summary. Importing the same file again sends the same message ids, which
the job drops as duplicates.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors import kafka_bulk, kafka_events
from connectors.import_files import FORMATS, BadRow, csv_header, detect_format, read_rows
from operators.crm_import import MAPPING_SCHEMA, ImportMapping, RowError
from settings import Settings
from settings.config_files import validated_yaml
from settings.errors import ConfigError, TailorError
from settings.progress import progress_bar
from tailor.produce import count_lines

MAX_EXAMPLES = 3


class ImportFileError(TailorError):
    """The file, its format or the mapping is unusable; the message says what to do."""


@dataclass(frozen=True)
class ImportReport:
    sent: int
    linked: int  # of them, messages that link an anonymous id to the master id
    rejected: int
    rejected_examples: list[str] = field(default_factory=list)
    report_path: Path | None = None
    topic: str = ""
    elapsed_s: float = 0.0

    def summary(self) -> str:
        """
        >>> ImportReport(10, 4, 1, ["line 3: column 'id' (user_id) is empty"], Path("r.csv"), "t").summary()
        "imported 10 rows to t as identify events (4 link an anonymous id), rejected 1 (all in r.csv): line 3: column 'id' (user_id) is empty"
        """  # noqa: E501 (a doctest's expected output cannot wrap)
        line = f"imported {self.sent:,} rows to {self.topic} as identify events ({self.linked:,} link an anonymous id)"
        line += f", rejected {self.rejected:,}"
        if self.rejected:
            more = self.rejected - len(self.rejected_examples)
            line += f" (all in {self.report_path}): " + "; ".join(self.rejected_examples)
            line += f"; and {more:,} more" if more > 0 else ""
        return line


def load_mapping(path: str | Path) -> ImportMapping:
    """The mapping file, checked; ConfigError names the file and the line of the first problem."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"import mapping {path}: cannot read it ({exc.strerror})") from None
    data, _ = validated_yaml(text, MAPPING_SCHEMA, str(path))
    return ImportMapping.from_dict(data)


def import_file(
    settings: Settings,
    path: str | Path,
    mapping: ImportMapping,
    fmt: str = "auto",
    report_path: str | Path | None = None,
    progress: bool | None = None,
    echo: Callable[[str], Any] | None = print,
) -> ImportReport:
    """Publish one identify message per usable row of ``path`` to ``settings.events_topic``; unusable rows
    go to ``report_path`` (default: ``<file name>.import-report.csv`` in the working directory)."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"input file {path} does not exist")
    fmt = (detect_format(path) or "") if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise ImportFileError(f"cannot tell the format of {path.name}; pass --format {' or --format '.join(FORMATS)}")
    if fmt == "csv":
        header = set(csv_header(path))
        missing = sorted(mapping.columns() - header)
        if missing:
            raise ImportFileError(f"the mapping names columns {missing} that the header of {path} lacks; "
                               f"it has {sorted(header)}")
    report_path = Path(report_path) if report_path else Path(f"{path.name}.import-report.csv")

    now_ms = int(time.time() * 1000)
    sent = linked = 0
    rejects: list[BadRow] = []
    bar = progress_bar(count_lines(path), enabled=progress)
    t0 = time.monotonic()
    with kafka_bulk.bulk_publisher(settings) as publisher:
        try:
            for row in read_rows(path, fmt):
                bar.update()
                if isinstance(row, BadRow):
                    rejects.append(row)
                    continue
                line, values = row
                try:
                    message = mapping.message(values, now_ms)
                except RowError as exc:
                    rejects.append(BadRow(line, str(exc)))
                    continue
                kafka_events.publish_event(publisher, settings.events_topic, message)
                sent += 1
                linked += "anonymousId" in message
            publisher.flush()  # raises KafkaUnavailable if Kafka did not store every record
        finally:
            bar.close()
    if rejects:
        with open(report_path, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "reason"])
            writer.writerows(rejects)
    report = ImportReport(sent, linked, len(rejects), [f"line {r.line}: {r.reason}" for r in rejects[:MAX_EXAMPLES]],
                          report_path if rejects else None, settings.events_topic, time.monotonic() - t0)
    if echo is not None:
        echo(report.summary())
    return report
