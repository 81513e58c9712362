"""The operations dashboard ``tailor serve`` answers at ``/dashboard``: audiences over time, each
experiment's status with conversion, click-through, bounce and engagement per segment and variant, and
the latest recalibrations (``tailor recalibrate``) with their before and after figures.

Audience sizes are sampled from Redis by the serving process (``AudienceHistory``, one sample every
``SAMPLE_S`` seconds, the last hour kept): the history starts when ``tailor serve`` does. Experiment results
are the reports ``tailor experiments report`` stores (``tailor.experiment_report/1``). The page is a Jinja2
template with autoescape (``connectors/web/dashboard.html``) and draws its charts as inline SVG: no script.

>>> history = AudienceHistory(keep=3)
>>> for t, size in ((0, 1), (5, 4), (10, 2), (15, 3)):
...     history.record(t, {"active": size})
>>> history.series("active")
[4, 2, 3]
>>> sparkline([4, 2, 3], width=20, height=10)
'0.0,0.0 10.0,5.0 20.0,2.5'
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import jinja2

SAMPLE_S: Final = 5.0
KEEP_SAMPLES: Final = 720  # an hour at one sample every 5 s
TEMPLATE: Final = Path(__file__).parent / "web" / "dashboard.html"


class AudienceHistory:
    """Audience sizes per segment over time, the last ``keep`` samples."""

    def __init__(self, keep: int = KEEP_SAMPLES) -> None:
        self.samples: deque[tuple[float, dict[str, int]]] = deque(maxlen=keep)

    def record(self, at: float, sizes: Mapping[str, int]) -> None:
        self.samples.append((at, dict(sizes)))

    def segments(self) -> list[str]:
        """Every segment of the newest sample, largest first."""
        if not self.samples:
            return []
        latest = self.samples[-1][1]
        return sorted(latest, key=lambda s: (-latest[s], s))

    def series(self, segment: str) -> list[int]:
        return [sizes.get(segment, 0) for _, sizes in self.samples]

    def as_dict(self) -> dict[str, Any]:
        return {"sampled_at": [round(t, 3) for t, _ in self.samples],
                "segments": {s: self.series(s) for s in self.segments()}}


def sparkline(values: Sequence[float], width: int = 160, height: int = 28) -> str:
    """SVG polyline points for ``values``, scaled into the box (the top is the maximum)."""
    if not values:
        return ""
    top = max(*values, 1)
    step = width / max(len(values) - 1, 1)
    return " ".join(f"{i * step:.1f},{height - v / top * height:.1f}" for i, v in enumerate(values))


def render(
    history: AudienceHistory, experiments: Sequence[Mapping[str, Any]], now_s: float,
    recalibrations: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The page. ``experiments``: per experiment ``name``, ``variants``, ``audience`` and its ``report``
    (a decoded ``tailor.experiment_report/1``, or None before the first report); ``recalibrations``: the
    newest ``tailor recalibrate`` log entries (``connectors.recalibration_log``)."""
    audiences = [{"segment": s, "size": history.series(s)[-1], "points": sparkline(history.series(s))}
                 for s in history.segments()]
    span_s = history.samples[-1][0] - history.samples[0][0] if len(history.samples) > 1 else 0.0
    runs = [{**r, "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["at"] / 1000))} for r in recalibrations]
    return _template().render(audiences=audiences, experiments=experiments, span_min=span_s / 60,
                              samples=len(history.samples), now_s=now_s, recalibrations=runs)


_ENVIRONMENT = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                  lstrip_blocks=True)


def _template() -> jinja2.Template:
    return _ENVIRONMENT.from_string(TEMPLATE.read_text())
