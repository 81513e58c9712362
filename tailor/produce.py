"""``tailor produce FILE``: publish a file of events to the events topic.

Two formats (``fmt="auto"`` picks by extension, then by the first line):

- **jsonl** — one Segment-Spec JSON object per line, sent byte for byte: the job validates. The producer
  parses each line only to find the record key (userId / anonymousId) and the event time for the
  record timestamp; a line that is not a JSON object cannot be keyed and goes straight to the
  dead-letter topic. Blank lines are skipped.
- **taobao** — the Taobao UserBehavior CSV, mapped by :mod:`connectors.taobao_csv`; rejected rows go to
  the dead-letter topic.

Bad input is counted, sent to ``settings.dead_letters_topic`` with the reason and the original line, and
named in the closing summary; it never stops the run. A record Kafka fails to store does
(:class:`connectors.kafka_events.KafkaUnavailable`). Records go through the fast
:class:`connectors.kafka_bulk.BulkPublisher`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from connectors import kafka_bulk, kafka_events
from connectors.taobao_csv import TaobaoEvent, read_taobao
from settings import Settings
from settings.errors import TailorError
from settings.progress import progress_bar

FORMATS = ("jsonl", "taobao")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "taobao"}
MAX_EXAMPLES = 3
_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


class ProduceError(TailorError):
    """The input file, format or topics are unusable; the message says what to do."""


@dataclass(frozen=True)
class ProduceReport:
    sent: int
    rejected: int
    rejected_examples: list[str] = field(default_factory=list)  # the first few, "line N: reason"
    topic: str = ""
    dead_letters_topic: str = ""
    elapsed_s: float = 0.0

    @property
    def events_per_s(self) -> float:
        return (self.sent + self.rejected) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        """
        >>> report = ProduceReport(96_168, 1, ["line 96169: cut"], "tailor.events", "tailor.dead-letters")
        >>> report.summary()
        'sent 96,168 events to tailor.events, rejected 1 (sent to tailor.dead-letters): line 96169: cut'
        """
        line = f"sent {self.sent:,} events to {self.topic}, rejected {self.rejected:,}"
        if self.rejected:
            more = self.rejected - len(self.rejected_examples)
            line += f" (sent to {self.dead_letters_topic}): " + "; ".join(self.rejected_examples)
            line += f"; and {more:,} more" if more > 0 else ""
        return line


class _JsonLine(NamedTuple):
    """A JSONL line holding a JSON object: sent as it is."""

    line: int
    raw: bytes
    key: bytes | None
    timestamp_ms: int | None


class _BadLine(NamedTuple):
    """A JSONL line that is not a JSON object: sent to the dead-letter topic (same fields as RejectedRow)."""

    line: int
    raw: bytes
    error: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def produce_file(
    settings: Settings,
    path: str | Path,
    fmt: str = "auto",
    rate: float | None = None,
    limit: int | None = None,
    progress: bool | None = None,
    echo: Callable[[str], Any] | None = print,
) -> ProduceReport:
    """Publish the records of ``path`` (the first ``limit`` records) to ``settings.events_topic``.

    ``rate`` throttles to that many records per second; ``progress`` draws a progress bar on stderr
    (:mod:`settings.progress`; default: only when stderr is a terminal); ``echo`` receives the closing summary line.
    """
    path = Path(path)
    if not path.is_file():
        raise ProduceError(f"input file {path} does not exist")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise ProduceError(f"format must be one of auto, {', '.join(FORMATS)}; got {fmt!r}")
    if rate is not None and rate <= 0:
        raise ProduceError(f"rate must be a positive number of events per second; got {rate}")
    _check_topics(settings)

    rows = read_taobao(path) if fmt == "taobao" else _read_jsonl(path)
    total = count_lines(path) if limit is None else min(limit, count_lines(path))
    bar = progress_bar(total, enabled=progress)
    sent = rejected = 0
    examples: list[str] = []
    t0 = time.monotonic()
    with kafka_bulk.bulk_publisher(settings) as publisher:
        try:
            for done, row in enumerate(rows):
                if limit is not None and done >= limit:
                    break
                if rate is not None:
                    _throttle(t0, done, rate)
                if isinstance(row, TaobaoEvent):
                    kafka_events.publish_event(publisher, settings.events_topic, row.event)
                    sent += 1
                elif isinstance(row, _JsonLine):
                    kafka_events.publish_raw(
                        publisher, settings.events_topic, row.raw, row.key, row.timestamp_ms
                    )
                    sent += 1
                else:  # RejectedRow or _BadLine
                    source = f"{path}:{row.line}"
                    kafka_events.publish_dead_letter(
                        publisher, settings.dead_letters_topic, row.error, row.reason, row.raw, source
                    )
                    rejected += 1
                    if len(examples) < MAX_EXAMPLES:
                        examples.append(str(row))
                bar.update()
            publisher.flush()  # raises KafkaUnavailable if Kafka did not store every record
        finally:
            bar.close()
    report = ProduceReport(
        sent, rejected, examples, settings.events_topic, settings.dead_letters_topic, time.monotonic() - t0
    )
    if echo is not None:
        echo(report.summary())
    return report


def detect_format(path: Path) -> str:
    """``jsonl`` or ``taobao``, by extension, else by whether the first non-blank line starts with ``{``."""
    by_extension = _EXTENSIONS.get(path.suffix.lower())
    if by_extension:
        return by_extension
    with open(path, "rb") as lines:
        for line in lines:
            if line.strip():
                return "jsonl" if line.lstrip().startswith(b"{") else "taobao"
    return "jsonl"


def count_lines(path: Path) -> int:
    """Number of lines, counting a last line without its newline (for the progress bar's ETA)."""
    count, last = 0, b"\n"
    with open(path, "rb") as data:
        while chunk := data.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def _read_jsonl(path: Path) -> Iterator[_JsonLine | _BadLine]:
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield _BadLine(number, raw, "invalid_json", f"not valid JSON ({exc})")
                continue
            if not isinstance(event, dict):
                kind = _JSON_KINDS.get(type(event), "null")
                reason = f"a line must hold one JSON object, got a JSON {kind}"
                yield _BadLine(number, raw, "not_an_object", reason)
                continue
            yield _JsonLine(number, raw, kafka_events.event_key(event), kafka_events.event_time_ms(event))


def _check_topics(settings: Settings) -> None:
    from connectors import kafka_topics as topics

    wanted = [settings.events_topic, settings.dead_letters_topic]
    try:
        present = topics.partition_counts(settings, wanted)
    except kafka_events.KafkaUnavailable as exc:
        raise ProduceError(str(exc)) from None
    missing = [t for t in wanted if t not in present]
    if missing:
        raise ProduceError(
            f"topic(s) {', '.join(missing)} do not exist on {settings.kafka_bootstrap} (the broker does not "
            "auto-create topics): run `tailor topics create` or `tailor stack up`"
        )


def _throttle(t0: float, done: int, rate: float) -> None:
    ahead = t0 + done / rate - time.monotonic()
    if ahead > 0.001:
        time.sleep(ahead)

