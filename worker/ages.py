"""How long something has waited, as people read it in the review queue: ``42s``, ``12m``, ``3.5h``, ``2.0d``
(the terminal's ``replyguard review`` list and the review app's queue show the same text); and how long
some work took, as the command line and the eval report show it: ``340 ms``, ``1.6 s``, ``2.5 min``."""

from __future__ import annotations

__all__ = ["age_text", "duration_text"]


def age_text(seconds: float) -> str:
    """Seconds as whole seconds under 90 s, whole minutes under 90 min, tenths of hours under 2 days, else days."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def duration_text(seconds: float) -> str:
    """Milliseconds under 1 s (a fast training run is ``40 ms``, not ``0.0s``), tenths of seconds under
    2 min, else tenths of minutes."""
    if round(seconds * 1000) < 1:
        return "<1 ms"
    if round(seconds * 1000) < 1000:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 119.95:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"
