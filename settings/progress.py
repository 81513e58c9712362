"""The one look of every long run's progress bar: ``tailor produce``, ``simulate``, ``catalog load`` and the
evaluations all draw a tqdm bar made here.

The look: tqdm's standard bar (percent, count/total, elapsed<remaining, rate; count and rate only when the
total is unknown) in the run's unit, on stderr, redrawn at most 5 times a second (so ``update`` can be
called for every event), left in place when the run ends. By default it is drawn only when stderr is a
terminal: piped or captured output (CI, tests) stays free of ``\\r`` lines. What a command prints at the
end (its summary) is the command's own output, on stdout; the bar never replaces it.

It lives in ``settings``, the bottom package, so that every layer that shows progress imports it without
importing upward.

>>> with progress_bar(3, desc="replay", unit="ratings", enabled=True) as bar:  # drawn on stderr
...     _ = bar.update(2)
>>> bar.n, bar.total, bar.unit
(2, 3, ' ratings')
>>> progress_bar(3, enabled=False).disable  # a disabled bar draws and counts nothing
True
"""

from __future__ import annotations

import sys
from typing import NoReturn, TypeAlias

from tqdm import tqdm

__all__ = ["REFRESH_S", "Bar", "progress_bar"]

# A bar made by progress_bar (no wrapped iterable: callers count with update(n) and end with close()).
Bar: TypeAlias = "tqdm[NoReturn]"

REFRESH_S = 0.2  # at most 5 redraws a second


def progress_bar(
    total: int | None, desc: str | None = None, unit: str = "events", enabled: bool | None = None
) -> Bar:
    """A bar counting ``total`` ``unit`` (``None``: unknown), labelled ``desc``.

    ``enabled=None`` draws it only when stderr is a terminal; ``True`` / ``False`` force it on / off.
    Count with ``bar.update(n)`` (a delta; ``bar.update(done - bar.n)`` for an absolute count), add a live
    note with ``bar.set_postfix_str(text, refresh=False)``, and end with ``bar.close()`` or a ``with`` block.
    """
    return tqdm(
        total=total,
        desc=desc,
        unit=f" {unit}",  # "... 998.01 events/s]" rather than "998.01events/s]"
        file=sys.stderr,  # looked up now, so a redirected or captured stderr is honoured
        disable=None if enabled is None else not enabled,  # tqdm: None = off unless the stream is a TTY
        mininterval=REFRESH_S,
        dynamic_ncols=True,
        leave=True,
    )
