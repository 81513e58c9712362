"""The one exception the local stack raises.

Provisioning fails for reasons a developer can fix (a missing tool, a busy port, a refused download).
Every ``StackError`` message therefore names what is wrong *and* what to do about it, so the CLI can
print it as-is instead of a traceback.
"""

from __future__ import annotations

from settings.errors import TailorError


class StackError(TailorError):
    """The local stack cannot be provisioned, started or stopped; the message says how to fix it."""
