"""Small charts as inline SVG, rendered on the server (no JavaScript, no CDN).

Only presentation attributes are used (no ``style``), so the pages' Content-Security-Policy
(``style-src 'self'``) holds. Every text is escaped; a missing value (``None``) leaves a gap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

WIDTH, HEIGHT = 420, 170
LEFT, RIGHT, TOP, BOTTOM = 46, 12, 14, 28
INK, GRID, MUTED = "#1f2937", "#e5e7eb", "#6b7280"


#: Axis tops for durations (seconds), each a round number of units at a third and two thirds
#: (the gridlines): 3 minutes, 15 and 30 minutes, 1.5 hours, ... 30 days.
DURATION_STEPS = (180, 900, 1800, 5400, 10800, 21600, 43200, 86400, 259200, 518400, 1296000, 2592000)


def _nice_max(value: float, steps: Sequence[float] | None = None) -> float:
    if steps:
        return next((s for s in steps if s >= value), max(value, steps[-1]))
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.5, 3, 6, 15):  # thirds of these are round too (the gridlines)
        top = step * 10**exponent
        if top >= value:
            return top
    return 15 * 10**exponent  # pragma: no cover


def chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    kind: str = "line",
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    top: float | None = None,
    color: str = "#2563eb",
    steps: Sequence[float] | None = None,
) -> str:
    """One chart: ``kind`` is ``line`` (gaps for None) or ``bar``. ``top`` fixes the y axis (1.0 for rates);
    ``steps`` are the allowed axis tops (e.g. :data:`DURATION_STEPS`)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    known = [v for v in values if v is not None]
    ymax = top if top is not None else _nice_max(max(known, default=0.0), steps)
    n = max(len(values), 1)
    slot = plot_w / n

    def x(i: int) -> float:
        return LEFT + slot * (i + 0.5)

    def y(v: float) -> float:
        return TOP + plot_h - (min(v, ymax) / ymax) * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for k in range(4):
        gy = TOP + plot_h * k / 3
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}" stroke="{GRID}"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end" font-size="10" fill="{MUTED}">'
            f"{escape(fmt(ymax * (3 - k) / 3))}</text>"
        )
    every = max(1, math.ceil(n / 7))
    for i, label in enumerate(labels):
        if (n - 1 - i) % every == 0:  # counted back from the last day, which is always labelled
            parts.append(
                f'<text x="{x(i):.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="10" '
                f'fill="{MUTED}">{escape(label)}</text>'
            )
    if kind == "bar":
        width = max(2.0, slot * 0.6)
        for i, v in enumerate(values):
            if v is None:
                continue
            parts.append(
                f'<rect x="{x(i) - width / 2:.1f}" y="{y(v):.1f}" width="{width:.1f}" '
                f'height="{TOP + plot_h - y(v):.1f}" fill="{color}" rx="2"><title>{escape(labels[i])}: '
                f"{escape(fmt(v))}</title></rect>"
            )
    else:
        run: list[str] = []
        for i, v in enumerate(list(values) + [None]):
            if v is None:
                if len(run) > 1:
                    parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{color}" stroke-width="2"/>')
                run = []
                continue
            run.append(f"{x(i):.1f},{y(v):.1f}")
        for i, v in enumerate(values):
            if v is not None:
                parts.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"><title>'
                    f"{escape(labels[i])}: {escape(fmt(v))}</title></circle>"
                )
    if not known:
        parts.append(
            f'<text x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
            f'font-size="12" fill="{MUTED}">no data yet</text>'
        )
    parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="{INK}"/>')
    parts.append("</svg>")
    return "".join(parts)


def percent(v: float) -> str:
    return f"{v * 100:.0f}%"


def duration(seconds: float) -> str:
    def short(v: float) -> str:
        return f"{v:.1f}".removesuffix(".0")

    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{short(seconds / 3600)}h"
    return f"{short(seconds / 86400)}d"


def number(v: float) -> str:
    return f"{v:.1f}" if v != int(v) else f"{int(v)}"
