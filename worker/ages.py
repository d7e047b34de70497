"""How long something has waited, as people read it in the review queue: ``42s``, ``12m``, ``3.5h``, ``2.0d``
(the terminal's ``replyguard review`` list and the review app's queue show the same text)."""

from __future__ import annotations

__all__ = ["age_text"]


def age_text(seconds: float) -> str:
    """Seconds as whole seconds under 90 s, whole minutes under 90 min, tenths of hours under 2 days, else days."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
