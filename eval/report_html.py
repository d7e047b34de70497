"""Self-contained HTML rendering of a ``replyguard eval`` report (DIR/report.html).

The page is written for someone who has to pick the confidence threshold at which
replyguard acts on its own (a support lead, not a data scientist): it opens with a
plain-language summary, then shows the trade-off between how much is handled
automatically and how often that is right, and only then the detailed tables.

One file, no network: inline CSS, charts as inline SVG drawn here (no plotting
library, no scripts). Every string that comes from the report (labels, message texts,
paths) is escaped with ``html.escape(..., quote=True)``, in HTML and in SVG alike.

Only ``task``, ``labels``, ``threshold``, ``coverage``, ``achieved_precision``,
``target_precision``, ``per_label``, ``curve``, ``reliability``, ``confusion`` and
``worst_errors`` are required; every other key is rendered when present.
"""

from __future__ import annotations

import html
import itertools
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifiers.atomic import new_file
from worker.ages import duration_text

#: Thresholds listed in the trade-off table (the chosen one is added).
TABLE_THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
#: Above this many labels, the confusion heat map shows only the labels with the most errors.
CONFUSION_MAX_LABELS = 25
CONFUSION_FULL_UP_TO = 30
TOP_CONFUSIONS = 15
TEXT_CHARS = 160

# What "auto-resolved" means for each task, in words a support lead uses.
_TASK_WORDS: dict[str, dict[str, str]] = {
    "intent": {
        "verb": "answered",
        "done": "answered automatically",
        "rest": "go to people",
        "title": "auto-reply",
    },
    "spam": {
        "verb": "hidden as spam",
        "done": "hidden automatically as spam",
        "rest": "stay in the inbox for people",
        "title": "spam hiding",
    },
    "abuse": {
        "verb": "hidden or escalated as abusive",
        "done": "hidden or escalated automatically",
        "rest": "are left for people",
        "title": "abuse moderation",
    },
}
_DEFAULT_WORDS = {"verb": "handled", "done": "handled automatically", "rest": "go to people", "title": "automation"}

# Colours (colour-blind friendly pairs: blue / orange, red for errors).
_BLUE = "#1f5fa8"
_LIGHT_BLUE = "#9fc3e8"
_ORANGE = "#e07b00"
_RED = "#c0392b"
_GREY = "#6b7280"
_GRID = "#e5e7eb"


# --------------------------------------------------------------------------- formatting


def _e(value: Any) -> str:
    """Escape any report value for HTML text and attribute values (SVG too)."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _pct(value: Any, digits: int = 1) -> str:
    f = _num(value)
    return "—" if f is None else f"{f * 100:.{digits}f}\u00a0%"


def _int(value: Any) -> str:
    f = _num(value)
    return "—" if f is None else f"{int(round(f)):,}"


def threshold_text(value: Any) -> str:
    """A threshold with as many decimals as it needs: 0.5 -> 0.50, 0.96504 -> 0.965, 0.99993 -> 0.9999; never
    rounded up to 1 (a threshold of 1 handles nothing automatically). The text report and ``eval --compare``
    show thresholds this way too."""
    f = _num(value)
    if f is None:
        return "—"
    if f >= 1.0:
        return "1.00"
    digits = 3
    while digits < 8 and float(f"{f:.{digits}f}") >= 1.0:
        digits += 1
    text = f"{f:.{digits}f}"
    if float(text) >= 1.0:  # closer to 1 than 8 decimals show: round down, never up to 1
        text = f"{math.floor(f * 10**digits) / 10**digits:.{digits}f}"
    whole, _, frac = text.rstrip("0").partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def _seconds(value: Any) -> str:
    f = _num(value)
    return "—" if f is None else duration_text(f).replace(" ", "\u00a0")


def _f(value: float) -> str:
    """An SVG coordinate."""
    return f"{value:.1f}"


def _clip_text(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _words(task: object) -> dict[str, str]:
    return _TASK_WORDS.get(str(task), _DEFAULT_WORDS)


def _n_test(report: dict[str, Any]) -> int | None:
    n = _num(report.get("n_test"))
    if n is not None:
        return int(n)
    matrix = report.get("confusion") or []
    try:
        total = sum(sum(int(c) for c in row) for row in matrix)
    except (TypeError, ValueError):
        return None
    return total or None


# --------------------------------------------------------------------------- small SVG helpers


def _nice_step(span: float, max_ticks: int = 8) -> float:
    if span <= 0:
        return 1.0
    raw = span / max_ticks
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power


def _ticks(lo: float, hi: float, max_ticks: int = 8) -> list[float]:
    step = _nice_step(hi - lo, max_ticks)
    start = math.ceil(lo / step - 1e-9) * step
    out, v = [], start
    while v <= hi + step * 1e-6:
        out.append(round(v, 10))
        v += step
    return out


def _tick_pct(v: float, step: float) -> str:
    digits = 0 if step * 100 >= 1 - 1e-9 and abs(v * 100 - round(v * 100)) < 1e-6 else 1
    return f"{v * 100:.{digits}f}%"


class _Plot:
    """A rectangular plot area mapping data coordinates to SVG pixels."""

    def __init__(
        self, x0: float, x1: float, y0: float, y1: float, left: float, top: float, width: float, height: float
    ) -> None:
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1
        self.left, self.top, self.width, self.height = left, top, width, height

    def x(self, v: float) -> float:
        return self.left + (v - self.x0) / (self.x1 - self.x0 or 1) * self.width

    def y(self, v: float) -> float:
        return self.top + self.height - (v - self.y0) / (self.y1 - self.y0 or 1) * self.height

    def axes(
        self,
        x_ticks: Sequence[float],
        y_ticks: Sequence[float],
        x_fmt,
        y_fmt,
        x_title: str,
        y_title: str,
        grid: bool = True,
    ) -> list[str]:
        out = []
        bottom, right = self.top + self.height, self.left + self.width
        for t in y_ticks:
            y = self.y(t)
            if grid:
                out.append(f'<line x1="{_f(self.left)}" x2="{_f(right)}" y1="{_f(y)}" y2="{_f(y)}" stroke="{_GRID}"/>')
            out.append(
                f'<text x="{_f(self.left - 8)}" y="{_f(y + 4)}" text-anchor="end" class="tick">{_e(y_fmt(t))}</text>'
            )
        for t in x_ticks:
            x = self.x(t)
            if grid:
                out.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(self.top)}" y2="{_f(bottom)}" stroke="{_GRID}"/>')
            out.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(bottom)}" y2="{_f(bottom + 5)}" stroke="#333"/>')
            out.append(
                f'<text x="{_f(x)}" y="{_f(bottom + 19)}" text-anchor="middle" class="tick">{_e(x_fmt(t))}</text>'
            )
        out.append(
            f'<rect x="{_f(self.left)}" y="{_f(self.top)}" width="{_f(self.width)}" height="{_f(self.height)}" '
            f'fill="none" stroke="#333"/>'
        )
        out.append(
            f'<text x="{_f(self.left + self.width / 2)}" y="{_f(bottom + 40)}" text-anchor="middle" '
            f'class="axis">{_e(x_title)}</text>'
        )
        cy = self.top + self.height / 2
        out.append(
            f'<text transform="translate({_f(self.left - 52)},{_f(cy)}) rotate(-90)" text-anchor="middle" '
            f'class="axis">{_e(y_title)}</text>'
        )
        return out


def _svg(width: int, height: int, body: Iterable[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{_e(label)}" class="chart">' + "".join(body) + "</svg>"
    )


def _halo_text(x: float, y: float, text: str, anchor: str = "start", cls: str = "note", fill: str = "#111") -> str:
    """Text with a white outline, readable on top of lines."""
    return f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" class="{cls} halo" fill="{fill}">{_e(text)}</text>'


# --------------------------------------------------------------------------- curve helpers


def _points(curve: Any) -> list[dict[str, Any]]:
    """Curve points with a coverage and a precision (threshold and n_auto may be None)."""
    out: list[dict[str, Any]] = []
    for p in curve or []:
        if not isinstance(p, dict):
            continue
        cov, prec, t = _num(p.get("coverage")), _num(p.get("precision")), _num(p.get("threshold"))
        if cov is None or prec is None:
            continue
        n_auto = _num(p.get("n_auto"))
        out.append({"threshold": t, "coverage": cov, "precision": prec, "n_auto": n_auto})
    return out


def _read_curve(points: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """The most lenient point of a (strict -> lenient) curve whose threshold is still >= ``threshold``."""
    best = None
    for p in points:
        if p["threshold"] is not None and p["threshold"] >= threshold - 1e-12:
            if best is None or p["threshold"] <= best["threshold"]:
                best = p
    if best is None:
        return {"threshold": threshold, "coverage": 0.0, "precision": None, "n_auto": 0}
    return best


# --------------------------------------------------------------------------- sections


def _summary(r: dict[str, Any]) -> str:
    words = _words(r.get("task"))
    n_test = _n_test(r)
    t, cov, prec, target = (_num(r.get(k)) for k in ("threshold", "coverage", "achieved_precision", "target_precision"))
    n_auto = round(cov * n_test) if cov is not None and n_test else None
    errors = _num(r.get("auto_errors"))
    if errors is None and n_auto is not None and prec is not None:
        errors = round(n_auto * (1 - prec))
    per_label_t = r.get("per_label_thresholds") or {}
    of_n = f" of the {n_test:,} test messages" if n_test else " of the test messages"
    parts = []
    if not cov:
        parts.append(
            f'<p class="lead">No confidence threshold reached the {_e(_pct(target))} target on the validation data, '
            f"so at the chosen threshold of <b>{_e(threshold_text(t))}</b> replyguard would have {_e(words['verb'])} "
            f"<b>none</b>{_e(of_n)} automatically (coverage <b>{_e(_pct(0))}</b>). "
            f"All of them {_e(words['rest'])}.</p>"
        )
    else:
        mistakes = ""
        if errors is not None and n_auto is not None:
            mistakes = f" ({int(errors):,} mistake{'s' if int(errors) != 1 else ''} out of {n_auto:,})"
        rest = 1 - cov
        parts.append(
            f'<p class="lead">At a confidence threshold of <b>{_e(threshold_text(t))}</b>, replyguard would have '
            f"{_e(words['verb'])} <b>{_e(_pct(cov))}</b>{_e(of_n)} automatically, and <b>{_e(_pct(prec))}</b> of "
            f"those would have been right{_e(mistakes)} (target {_e(_pct(target))}). "
            f"The other {_e(_pct(rest))} {_e(words['rest'])}.</p>"
        )
    if per_label_t:
        parts.append(
            f"<p>{len(per_label_t):,} label(s) use their own, lower threshold where validation data showed "
            "they stay precise enough; see the per-label table.</p>"
        )
    if cov and prec is not None and target is not None:
        if prec + 1e-12 >= target:
            parts.append(
                f'<p class="ok"><b>Target met on test data:</b> {_e(_pct(prec))} right, against a target of '
                f"{_e(_pct(target))}.</p>"
            )
        else:
            val = r.get("val_at_threshold") or {}
            val_prec = _num(val.get("precision")) if isinstance(val, dict) else None
            on_val = (
                f" On the validation data used to choose it, the same threshold gave {_e(_pct(val_prec))}."
                if val_prec is not None
                else ""
            )
            parts.append(
                f'<p class="warn"><b>Target missed on test data:</b> {_e(_pct(prec))} right, below the '
                f"{_e(_pct(target))} target ({(target - prec) * 100:.1f} percentage points short).{on_val} "
                "Expect real-world precision closer to the test figure; a stricter threshold (fewer messages "
                "handled automatically) is the safer choice.</p>"
            )
    return "".join(parts)


def _notes(r: dict[str, Any]) -> str:
    """The report's notes (the labels as read, calibration folds reduced for rare labels ...), as the text and
    JSON reports carry them, under the summary: they qualify the figures. A note may quote the data's
    labels, so each is escaped."""
    notes = r.get("notes")
    items = [str(n) for n in notes if str(n).strip()] if isinstance(notes, list) else []
    if not items:
        return ""
    listed = "".join(f"<li>{_e(n)}</li>" for n in items)
    return f'<div class="notes" id="notes"><b>Notes on this evaluation</b> (they qualify the figures below):<ul>{listed}</ul></div>'


def _tiles(r: dict[str, Any]) -> str:
    tiles: list[tuple[str, str, str]] = []

    def add(key: str, name: str, fmt, note: str) -> None:
        if _num(r.get(key)) is not None:
            tiles.append((name, fmt(r.get(key)), note))

    words = _words(r.get("task"))
    add("coverage", "Coverage", _pct, f"share of test messages {words['done']}")
    add("achieved_precision", "Precision when automatic", _pct, "share of those automatic decisions that were right")
    add("accuracy", "Accuracy", _pct, "share of all test messages whose top label was right")
    add("macro_f1", "Macro-F1", _pct, "average quality per label, every label counting equally")
    add("ece", "Calibration error (ECE)", _pct, "how far confidence is from real accuracy; 0 is perfect")
    add("in_scope_accuracy", "In-scope accuracy", _pct, "accuracy on messages that have a real label")
    add("oos_recall", "Out-of-scope caught", _pct, "out-of-scope messages kept away from automatic handling")
    if r.get("oos_label"):
        if _num(r.get("reject_threshold")) is not None:
            tiles.append(
                (
                    "Out-of-scope reject threshold",
                    threshold_text(r.get("reject_threshold")),
                    "below it a message counts as out of scope; chosen on val",
                )
            )
        else:
            why = str(r.get("reject_threshold_not_chosen") or "no reason recorded")
            tiles.append(("Out-of-scope reject threshold", "not chosen", why))
    add("train_seconds", "Training time", _seconds, "to train the model on the train split")
    add("predict_per_second", "Predictions per second", lambda v: f"{_num(v):,.0f}", "one CPU thread")
    body = "".join(
        f'<div class="tile"><div class="tname">{_e(n)}</div><div class="tval">{_e(v)}</div>'
        f'<div class="tnote">{_e(note)}</div></div>'
        for n, v, note in tiles
    )
    return f'<div class="tiles">{body}</div>'


def _policy_comparison(r: dict[str, Any]) -> str:
    pc = r.get("policy_comparison")
    if not isinstance(pc, dict):
        return ""
    rows = [row for row in pc.get("rows") or [] if isinstance(row, dict)]
    texts = [t for t in pc.get("text") or [] if t is not None]
    if not rows and not texts:
        return ""

    def fmt(v: Any, unit: Any) -> str:
        f = _num(v)
        if f is None:
            return "—"
        if unit == "percent":
            return _pct(f)
        if unit == "count":
            return f"{f:,.0f}" if abs(f - round(f)) < 0.05 else f"{f:,.1f}"
        return f"{f:,.3g}"

    def delta(b: Any, a: Any, unit: Any) -> str:
        fb, fa = _num(b), _num(a)
        if fb is None or fa is None:
            return "—"
        d = fa - fb
        sign = "+" if d > 0 else ("−" if d < 0 else "±")
        if unit == "percent":
            return f"{sign}{abs(d) * 100:.1f} pts"
        return f"{sign}{fmt(abs(d), unit)}"

    body = "".join(
        f'<tr><td>{_e(row.get("name"))}</td><td class="num">{_e(fmt(row.get("before"), row.get("unit")))}</td>'
        f'<td class="num">{_e(fmt(row.get("after"), row.get("unit")))}</td>'
        f'<td class="num">{_e(delta(row.get("before"), row.get("after"), row.get("unit")))}</td></tr>'
        for row in rows
    )
    table = (
        f'<table class="data compact"><thead><tr><th>What</th><th class="num">Before</th>'
        f'<th class="num">After</th><th class="num">Change</th></tr></thead><tbody>{body}</tbody></table>'
        if rows
        else ""
    )
    policy = f' <span class="muted">(policy: <code>{_e(pc.get("policy"))}</code>)</span>' if pc.get("policy") else ""
    paras = "".join(f"<p>{_e(t)}</p>" for t in texts)
    return f"<h3>If the policy changes{policy}</h3>{table}{paras}"


def _curve_svg(r: dict[str, Any]) -> str:
    test, val = _points(r.get("curve")), _points(r.get("val_curve"))
    cov, prec, target, t = (_num(r.get(k)) for k in ("coverage", "achieved_precision", "target_precision", "threshold"))
    if not test and not val:
        return '<p class="muted">No curve: no test message was eligible for automatic handling.</p>'
    W, H = 820, 420
    plot_w, plot_h = 820 - 80 - 30, 420 - 24 - 60
    max_cov = max([p["coverage"] for p in test + val] + [cov or 0.0])
    x1 = 1.0
    for c in (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        if c >= max_cov * 1.03:
            x1 = c
            break

    # the y range ignores the first few, very noisy points (a handful of messages)
    def steady(points: list[dict[str, Any]]) -> list[float]:
        big = [p["precision"] for p in points if (p["n_auto"] or 0) >= 10]
        return big or [p["precision"] for p in points]

    lows = steady(test) + steady(val) + [v for v in (target, prec) if v is not None]
    lowest = max(0.0, min(min(lows) if lows else 0.8, 1.0))
    # zoom on the interesting band: a little below the lowest precision (or the target), never above 0.97
    pad = max(0.01, 0.25 * (1.0 - lowest))
    grain = 0.01 if 1.0 - lowest < 0.05 else 0.05
    y0 = max(0.0, min(0.97, math.floor((lowest - pad) / grain + 1e-9) * grain))
    y_grain = _nice_step(1.0 - y0, 8)
    y0 = max(0.0, math.floor(y0 / y_grain + 1e-9) * y_grain)
    p = _Plot(0.0, x1, y0, 1.0 + (1.0 - y0) * 0.03, 80, 24, plot_w, plot_h)  # headroom: 100 % stays visible
    xt, yt = _ticks(0, x1, 10), _ticks(y0, 1.0, 8)
    x_step, y_step = (xt[1] - xt[0]) if len(xt) > 1 else 0.1, (yt[1] - yt[0]) if len(yt) > 1 else 0.1
    out = [
        f'<defs><clipPath id="rg-curve-clip"><rect x="{_f(p.left)}" y="{_f(p.top - 6)}" '
        f'width="{_f(p.width + 6)}" height="{_f(p.height + 6)}"/></clipPath></defs>'
    ]
    out += p.axes(
        xt,
        yt,
        lambda v: _tick_pct(v, x_step),
        lambda v: _tick_pct(v, y_step),
        "Coverage: share of test messages handled automatically",
        "Precision: share of those that were right",
    )
    if target is not None and y0 <= target <= 1.0:
        yy = p.y(target)
        out.append(
            f'<line x1="{_f(p.left)}" x2="{_f(p.left + p.width)}" y1="{_f(yy)}" y2="{_f(yy)}" '
            f'stroke="{_RED}" stroke-width="1.5" stroke-dasharray="6 4"/>'
        )
        # labelled at the right end, where the curves have usually dropped away from it
        out.append(
            _halo_text(
                p.left + p.width - 6,
                yy - 6 if p.y(target) - p.top > 20 else yy + 15,
                f"target {_pct(target)}",
                anchor="end",
                fill=_RED,
            )
        )

    def line(points: list[dict[str, Any]], colour: str, width: float) -> str:
        pts = " ".join(
            f"{_f(p.x(q['coverage']))},{_f(p.y(q['precision']))}" for q in sorted(points, key=lambda q: q["coverage"])
        )
        return (
            f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="{width}" '
            f'stroke-linejoin="round" clip-path="url(#rg-curve-clip)"/>'
        )

    # what the operating point's label should not cover: the curves, the target line, the legend
    obstacles = []
    for points in (test, val):
        xy = [
            (p.x(q["coverage"]), p.y(max(y0, min(1.0, q["precision"]))))
            for q in sorted(points, key=lambda q: q["coverage"])
        ]
        for (ax, ay), (bx, by) in itertools.pairwise(xy):
            steps = max(1, int(math.hypot(bx - ax, by - ay) / 4))
            obstacles += [(ax + (bx - ax) * k / steps, ay + (by - ay) * k / steps) for k in range(steps)]
        obstacles += xy[-1:]
    target_y = p.y(target) if target is not None and y0 <= target <= 1.0 else None
    legend_box = (p.left + 6, p.top + p.height - (60 if val else 42), p.left + 258, p.top + p.height)
    if val:
        out.append(line(val, _LIGHT_BLUE, 2))
    if test:
        out.append(line(test, _BLUE, 2.5))
    if cov is not None and prec is not None and cov > 0:
        px, py = p.x(cov), p.y(max(y0, min(1.0, prec)))
        bottom = p.top + p.height
        out.append(
            f'<line x1="{_f(px)}" x2="{_f(px)}" y1="{_f(py)}" y2="{_f(bottom)}" stroke="{_ORANGE}" '
            f'stroke-dasharray="2 3"/>'
        )
        out.append(f'<circle cx="{_f(px)}" cy="{_f(py)}" r="7" fill="{_ORANGE}" stroke="#fff" stroke-width="2"/>')
        extra = " + per-label" if r.get("per_label_thresholds") else ""
        lines = [f"chosen: threshold {threshold_text(t)}{extra}", f"{_pct(cov)} automatic, {_pct(prec)} right"]
        anchor, dx, ty = _place_label(p, px, py, lines, obstacles, target_y, legend_box)
        for i, text in enumerate(lines):
            out.append(
                _halo_text(
                    px + dx,
                    ty + i * 17,
                    text,
                    anchor=anchor,
                    cls="note strong" if i == 0 else "note",
                    fill="#7a4300" if i == 0 else "#111",
                )
            )
    # legend
    lx, ly = p.left + 16, p.top + p.height - (44 if val else 26)
    out.append(
        f'<rect x="{_f(lx - 10)}" y="{_f(ly - 16)}" width="252" height="{62 if val else 44}" fill="#fff" '
        f'fill-opacity="0.92" stroke="{_GRID}"/>'
    )
    legend = [(_BLUE, 2.5, "", "test data (all figures)")]
    if val:
        legend.append((_LIGHT_BLUE, 2, "", "validation data (used to choose)"))
    legend.append((_RED, 1.5, "6 4", "target precision"))
    for i, (colour, width, dash, text) in enumerate(legend):
        y = ly + i * 18
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<line x1="{_f(lx)}" x2="{_f(lx + 26)}" y1="{_f(y - 4)}" y2="{_f(y - 4)}" stroke="{colour}" '
            f'stroke-width="{width}"{dash_attr}/>'
        )
        out.append(f'<text x="{_f(lx + 34)}" y="{_f(y)}" class="note">{_e(text)}</text>')
    return _svg(W, H, out, "Coverage versus precision")


def _place_label(
    p: _Plot,
    px: float,
    py: float,
    lines: list[str],
    obstacles: list[tuple[float, float]],
    target_y: float | None,
    legend: tuple[float, float, float, float],
) -> tuple[str, float, float]:
    """Where to write the operating point's two-line label: the candidate spot that covers least."""
    width = max(len(s) for s in lines) * 6.9
    best = None
    candidates = [(dx, dy) for dy in (28, -34, 52, -58, 76) for dx in (12, -12)]
    for order, (dx, dy) in enumerate(candidates):
        x0 = px + dx if dx > 0 else px + dx - width
        x1, top, bottom = x0 + width, py + dy - 13, py + dy + 21
        score = order * 0.5
        if x0 < p.left + 2 or x1 > p.left + p.width - 2 or top < p.top + 2 or bottom > p.top + p.height - 2:
            score += 1000
        score += 3 * sum(1 for ox, oy in obstacles if x0 - 3 <= ox <= x1 + 3 and top - 3 <= oy <= bottom + 3)
        if target_y is not None and top - 3 <= target_y <= bottom + 3:
            score += 40
        lx0, ly0, lx1, ly1 = legend
        if x0 < lx1 and x1 > lx0 and top < ly1 and bottom > ly0:
            score += 200
        if best is None or score < best[0]:
            best = (score, "start" if dx > 0 else "end", dx, py + dy)
    assert best is not None
    return best[1], best[2], best[3]


def _threshold_table(r: dict[str, Any]) -> str:
    points = _points(r.get("curve"))
    if not points:
        return ""
    n_test = _n_test(r)
    t = _num(r.get("threshold"))
    target = _num(r.get("target_precision"))
    per_label_t = r.get("per_label_thresholds") or {}
    rows: list[tuple[float, dict[str, Any], bool]] = []
    # the report's exact figures at the chosen global threshold join the (thinned) curve, so the table
    # stays consistent with the summary and monotone around the chosen row
    exact = (
        r.get("global_threshold_only")
        if per_label_t
        else {"coverage": r.get("coverage"), "precision": r.get("achieved_precision"), "errors": r.get("auto_errors")}
    )
    exact = exact if isinstance(exact, dict) else {}
    exact_coverage, exact_precision = _num(exact.get("coverage")), _num(exact.get("precision"))
    if t is not None and exact_coverage is not None and exact_precision is not None:
        n_auto = _num(exact.get("n_auto"))
        if n_auto is None and n_test:
            n_auto = round(exact_coverage * n_test)
        points = [q for q in points if q["threshold"] is None or abs(q["threshold"] - t) > 1e-12] + [
            {
                "threshold": t,
                "coverage": exact_coverage,
                "precision": exact_precision,
                "n_auto": n_auto,
                "errors": _num(exact.get("errors")),
            }
        ]
    wanted = sorted({*TABLE_THRESHOLDS, *([t] if t is not None else [])}, reverse=True)
    for thr in wanted:
        chosen = t is not None and abs(thr - t) < 1e-12
        read = dict(_read_curve(points, thr))
        rows.append((thr, read, chosen))
    body = []
    for thr, read, chosen in rows:
        n_auto = read.get("n_auto")
        errors = read.get("errors")
        if errors is None and n_auto is not None and read["precision"] is not None:
            errors = round(n_auto * (1 - read["precision"]))
        if not n_auto:
            status = '<span class="muted">nothing automatic</span>'
        elif target is not None and read["precision"] is not None and read["precision"] + 1e-12 >= target:
            status = '<span class="good">meets target</span>'
        else:
            status = '<span class="bad">below target</span>'
        name = f"{threshold_text(thr)} (chosen{' global' if per_label_t else ''})" if chosen else threshold_text(thr)
        body.append(
            f'<tr class="{"chosen" if chosen else ""}"><td>{_e(name)}</td><td class="num">{_e(_pct(read["coverage"]))}'
            f'</td><td class="num">{_e(_int(n_auto))}</td><td class="num">'
            f"{_e(_pct(read['precision']) if n_auto else '—')}</td>"
            f'<td class="num">{_e(_int(errors) if n_auto else "—")}'
            f"</td><td>{status}</td></tr>"
        )
    of_n = f" (of {n_test:,})" if n_test else ""
    note = (
        "Read off the test curve: at each threshold, the messages whose confidence is at or above it are handled "
        "automatically. The curve is sampled, so rows other than the chosen one can be off by a message or two."
    )
    if per_label_t:
        note += (
            " These rows use one threshold for every label; the summary's figures also include the per-label "
            "thresholds."
        )
    return (
        f'<table class="data compact"><thead><tr><th>Threshold</th><th class="num">Coverage</th>'
        f'<th class="num">Messages{_e(of_n)}</th><th class="num">Precision</th><th class="num">Wrong</th>'
        f'<th></th></tr></thead><tbody>{"".join(body)}</tbody></table><p class="caption">{_e(note)}</p>'
    )


def _bar(value: Any, *, warn_below: float | None = None) -> str:
    f = _num(value)
    if f is None:
        return '<td class="num muted">—</td>'
    bad = warn_below is not None and f + 1e-12 < warn_below
    width = max(0.0, min(1.0, f)) * 100
    text = f'<span class="pv{" bad" if bad else ""}">{_e(_pct(f))}</span>'
    return (
        f'<td class="num"><span class="bar{" bad" if bad else ""}"><i style="width:{width:.1f}%"></i></span>{text}</td>'
    )


def _per_label(r: dict[str, Any]) -> str:
    per_label = r.get("per_label") or {}
    labels = [str(x) for x in r.get("labels") or []]
    order = labels + [k for k in per_label if k not in labels]
    target = _num(r.get("target_precision"))
    rows = []
    for label in order:
        row = per_label.get(label)
        if not isinstance(row, dict):
            continue
        rows.append((label, row))
    rows.sort(key=lambda lr: (_num(lr[1].get("f1")) if _num(lr[1].get("f1")) is not None else 2.0, lr[0]))
    body = []
    for label, row in rows:
        t = _num(row.get("threshold"))
        thr = (
            f'<td class="num">{_e(threshold_text(t))}</td>'
            if t is not None
            else '<td class="num muted" title="never handled automatically">never</td>'
        )
        body.append(
            f'<tr><td class="label" title="{_e(label)}">{_e(label)}</td><td class="num">{_e(_int(row.get("support")))}'
            f"</td>{_bar(row.get('precision'))}{_bar(row.get('recall'))}{_bar(row.get('f1'))}{thr}"
            f"{_bar(row.get('auto_precision'), warn_below=target)}"
            f"{_bar(row.get('auto_recall') if t is not None else None)}</tr>"
        )
    scroll = " scroll" if len(rows) > 30 else ""
    return (
        f'<div class="tablewrap{scroll}"><table class="data perlabel"><thead><tr><th>Label</th>'
        '<th class="num">Test<br>messages</th><th class="num">Precision</th><th class="num">Recall</th>'
        '<th class="num">F1</th><th class="num">Thres&shy;hold</th><th class="num">Auto<br>precision</th>'
        f'<th class="num">Auto<br>recall</th></tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def _reliability_svg(r: dict[str, Any]) -> str:
    bins = []
    for b in r.get("reliability") or []:
        if not isinstance(b, dict):
            continue
        lo, hi, n = _num(b.get("lower")), _num(b.get("upper")), _num(b.get("count"))
        if lo is None or hi is None:
            continue
        bins.append(_Bin(lo, hi, int(n or 0), _num(b.get("confidence")), _num(b.get("accuracy"))))
    filled = [(b, b.accuracy) for b in bins if b.count > 0 and b.accuracy is not None]
    if not filled:
        return '<p class="muted">No reliability data.</p>'
    x0 = max(0.0, math.floor(min(b.lower for b, _ in filled) * 10 + 1e-9) / 10)
    W, H = 820, 480
    p = _Plot(x0, 1.0, 0.0, 1.0, 80, 20, 820 - 80 - 30, 300)
    hist_top, hist_h = p.top + p.height + 62, 70
    xt, yt = _ticks(x0, 1.0, 10), _ticks(0, 1.0, 5)
    xs = (xt[1] - xt[0]) if len(xt) > 1 else 0.1
    out = p.axes(
        xt,
        yt,
        lambda v: _tick_pct(v, xs),
        lambda v: _tick_pct(v, 0.2),
        "Confidence of the top label (mean per bin)",
        "Share that was right",
    )
    max_count = max(b.count for b, _ in filled)
    for b, accuracy in filled:
        strength = math.log1p(b.count) / math.log1p(max_count) if max_count else 1.0
        bx, bw = p.x(max(b.lower, x0)), p.x(b.upper) - p.x(max(b.lower, x0))
        by = p.y(accuracy)
        tip = (
            f"confidence {_pct(b.lower, 0)}–{_pct(b.upper, 0)}: {b.count:,} messages, mean confidence "
            f"{_pct(b.confidence)}, right {_pct(accuracy)}"
        )
        out.append(
            f'<rect x="{_f(bx + 1)}" y="{_f(by)}" width="{_f(max(1.0, bw - 2))}" '
            f'height="{_f(p.top + p.height - by)}" fill="{_BLUE}" fill-opacity="{0.15 + 0.6 * strength:.2f}">'
            f"<title>{_e(tip)}</title></rect>"
        )
    out.append(
        f'<line x1="{_f(p.x(x0))}" y1="{_f(p.y(x0))}" x2="{_f(p.x(1))}" y2="{_f(p.y(1))}" stroke="#333" '
        f'stroke-dasharray="5 4"/>'
    )
    for b, accuracy in filled:
        if b.confidence is None:
            continue
        out.append(
            f'<circle cx="{_f(p.x(b.confidence))}" cy="{_f(p.y(accuracy))}" r="4.5" fill="{_ORANGE}" '
            f'stroke="#fff" stroke-width="1.5"/>'
        )
    out.append(
        _halo_text(p.x(x0) + 8, p.top + 16, "dashed line: confidence = share right (perfect calibration)", cls="note")
    )
    # count histogram underneath (log scale)
    out.append(f'<text x="{_f(p.left)}" y="{_f(hist_top - 8)}" class="note">Messages per bin (log scale)</text>')
    base = hist_top + hist_h
    out.append(f'<line x1="{_f(p.left)}" x2="{_f(p.left + p.width)}" y1="{_f(base)}" y2="{_f(base)}" stroke="#333"/>')
    for b in bins:
        if b.upper <= x0 + 1e-9:
            continue
        bx, bw = p.x(max(b.lower, x0)), p.x(b.upper) - p.x(max(b.lower, x0))
        if b.count:
            h = max(2.0, (hist_h - 16) * math.log1p(b.count) / math.log1p(max_count))
            out.append(
                f'<rect x="{_f(bx + 1)}" y="{_f(base - h)}" width="{_f(max(1.0, bw - 2))}" height="{_f(h)}" '
                f'fill="{_GREY}" fill-opacity="0.55"/>'
            )
            out.append(
                f'<text x="{_f(bx + bw / 2)}" y="{_f(base - h - 3)}" text-anchor="middle" class="tiny">'
                f"{b.count:,}</text>"
            )
    return _svg(W, H, out, "Reliability diagram")


def _mix(colour_hi: tuple[int, int, int], strength: float) -> str:
    strength = max(0.0, min(1.0, strength))
    lo = (247, 248, 250)
    rgb = tuple(round(lo[i] + (colour_hi[i] - lo[i]) * strength) for i in range(3))
    return "#%02x%02x%02x" % rgb


_DIAG_RGB = (31, 95, 168)
_ERR_RGB = (192, 57, 43)


def _confusion(r: dict[str, Any]) -> str:
    labels = [str(x) for x in r.get("labels") or []]
    raw = r.get("confusion") or []
    n = len(labels)
    try:
        matrix = [[int(c) for c in row] for row in raw]
    except (TypeError, ValueError):
        matrix = []
    if not n or len(matrix) != n or any(len(row) != n for row in matrix):
        return '<p class="muted">No confusion matrix in this report.</p>'
    errors = [sum(matrix[i]) - matrix[i][i] + sum(matrix[j][i] for j in range(n)) - matrix[i][i] for i in range(n)]
    if n > CONFUSION_FULL_UP_TO:
        keep = sorted(sorted(range(n), key=lambda i: (-errors[i], labels[i]))[:CONFUSION_MAX_LABELS])
        note = (
            f"Showing the {len(keep)} labels involved in the most errors, out of {n:,}; the other labels and "
            "their cells are left out."
        )
    else:
        keep, note = list(range(n)), ""
    k = len(keep)
    max_label = max(len(_clip_text(labels[i], 28)) for i in keep)
    label_px = min(200, 12 + 7.0 * max_label)
    cell = max(12.0, min(80.0, (820 - 40 - label_px) / k))
    font = 11 if cell >= 16 else 9
    left, top = label_px + 36, label_px + 30
    grid = cell * k
    W = int(max(820, left + grid + 20))
    H = int(top + grid + 90)
    max_err = max([matrix[i][j] for i in keep for j in keep if i != j] + [0])
    out = []
    for a, i in enumerate(keep):
        row_total = sum(matrix[i]) or 1
        y = top + a * cell
        short = _clip_text(labels[i], 28)
        out.append(
            f'<text x="{_f(left - 6)}" y="{_f(y + cell / 2 + 4)}" text-anchor="end" class="lbl" '
            f'font-size="{font}"><title>{_e(labels[i])}</title>{_e(short)}</text>'
        )
        for b, j in enumerate(keep):
            x = left + b * cell
            c = matrix[i][j]
            if i == j:
                fill = _mix(_DIAG_RGB, c / row_total) if c else "#f7f8fa"
                dark = c / row_total > 0.55
            elif c:
                s = 0.25 + 0.75 * math.sqrt(c / max_err) if max_err else 0
                fill, dark = _mix(_ERR_RGB, s), s > 0.6
            else:
                fill, dark = "#f7f8fa", False
            tip = f"true {labels[i]} → predicted {labels[j]}: {c:,}"
            out.append(
                f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(cell)}" height="{_f(cell)}" fill="{fill}" '
                f'stroke="#fff" stroke-width="1"><title>{_e(tip)}</title></rect>'
            )
            if c and cell >= 18:
                size = font if len(str(c)) * font * 0.62 < cell - 2 else max(7, int((cell - 2) / len(str(c)) / 0.62))
                out.append(
                    f'<text x="{_f(x + cell / 2)}" y="{_f(y + cell / 2 + size * 0.36)}" text-anchor="middle" '
                    f'font-size="{size}" fill="{"#fff" if dark else "#111"}">{c:,}</text>'
                )
    for b, j in enumerate(keep):
        x = left + b * cell + cell / 2 + font * 0.35
        out.append(
            f'<text transform="translate({_f(x)},{_f(top - 6)}) rotate(-90)" class="lbl" font-size="{font}">'
            f"<title>{_e(labels[j])}</title>{_e(_clip_text(labels[j], 28))}</text>"
        )
    out.append(f'<text x="{_f(left + grid / 2)}" y="14" text-anchor="middle" class="axis">Predicted label</text>')
    out.append(
        f'<text transform="translate(16,{_f(top + grid / 2)}) rotate(-90)" text-anchor="middle" class="axis">'
        "True label</text>"
    )
    # colour scales
    ly = top + grid + 30
    out.append(
        '<defs><linearGradient id="rg-diag" x1="0" x2="1"><stop offset="0" stop-color="#f7f8fa"/>'
        f'<stop offset="1" stop-color="{_mix(_DIAG_RGB, 1)}"/></linearGradient>'
        f'<linearGradient id="rg-err" x1="0" x2="1"><stop offset="0" stop-color="{_mix(_ERR_RGB, 0.25)}"/>'
        f'<stop offset="1" stop-color="{_mix(_ERR_RGB, 1)}"/></linearGradient></defs>'
    )
    scales = [
        ("rg-diag", "right (diagonal): share of the true label", "0%", "100%"),
        ("rg-err", "mistakes (off-diagonal): number of messages", "1", f"{max(max_err, 1):,}"),
    ]
    for s, (gid, title, lo, hi) in enumerate(scales):
        x = 20 + s * 400
        out.append(f'<text x="{_f(x)}" y="{_f(ly)}" class="note">{_e(title)}</text>')
        out.append(f'<rect x="{_f(x)}" y="{_f(ly + 8)}" width="220" height="12" fill="url(#{gid})" stroke="#ccc"/>')
        out.append(f'<text x="{_f(x)}" y="{_f(ly + 34)}" class="tiny">{_e(lo)}</text>')
        out.append(f'<text x="{_f(x + 220)}" y="{_f(ly + 34)}" text-anchor="end" class="tiny">{_e(hi)}</text>')
    svg = _svg(W, H, out, "Confusion matrix")
    pairs = sorted(
        ((matrix[i][j], labels[i], labels[j]) for i in range(n) for j in range(n) if i != j and matrix[i][j] > 0),
        key=lambda x: (-x[0], x[1], x[2]),
    )[:TOP_CONFUSIONS]
    if pairs:
        items = "".join(
            f'<li><span class="label">{_e(t)}</span> → <span class="label">{_e(p)}</span> '
            f'<span class="muted">({c:,})</span></li>'
            for c, t, p in pairs
        )
        listing = f'<h3>Most often confused (true → predicted)</h3><ol class="pairs">{items}</ol>'
    else:
        listing = "<p>No message was confused with another label.</p>"
    caption = f'<p class="caption">{_e(note)}</p>' if note else ""
    return f'{caption}<div class="svgwrap">{svg}</div>{listing}'


def _worst_errors(r: dict[str, Any]) -> str:
    rows = [w for w in r.get("worst_errors") or [] if isinstance(w, dict)]
    if not rows:
        return "<p>No test message was misclassified.</p>"
    per_label = r.get("per_label") or {}
    action = set(r.get("action_labels") or [])
    global_t = _num(r.get("threshold"))
    words = _words(r.get("task"))
    body = []
    for i, w in enumerate(rows, 1):
        text = str(w.get("text") or "")
        conf = _num(w.get("confidence"))
        pred = w.get("predicted")
        row = per_label.get(pred) if isinstance(per_label, dict) else None
        limit = _num(row.get("threshold")) if isinstance(row, dict) else None
        eligible = (str(pred) in action) if action else isinstance(row, dict) and row.get("threshold") is not None
        if limit is None and eligible:
            limit = global_t
        auto = eligible and conf is not None and limit is not None and conf >= limit
        auto_cell = (
            f'<span class="bad">yes, {_e(words["verb"])} wrongly</span>'
            if auto
            else '<span class="muted">no, to people</span>'
        )
        tops = []
        for tp in (w.get("top") or [])[:3]:
            if isinstance(tp, dict):
                tops.append(f'<div><span class="label">{_e(tp.get("label"))}</span> {_e(_pct(tp.get("p")))}</div>')
        body.append(
            f'<tr><td class="num muted">{i}</td><td class="text" title="{_e(text)}">{_e(_clip_text(text, TEXT_CHARS))}'
            f'</td><td class="labels"><div><span class="k">true</span> <span class="label">{_e(w.get("true"))}</span>'
            f'</div><div><span class="k">said</span> <span class="label bad">{_e(pred)}</span></div></td>'
            f'<td class="num">{_e(_pct(conf))}</td><td class="top3">{"".join(tops)}</td><td class="auto">{auto_cell}'
            "</td></tr>"
        )
    return (
        '<div class="tablewrap"><table class="data errors"><thead><tr><th>#</th><th>Message</th>'
        '<th>True / predicted label</th><th class="num">Confidence</th><th>Top 3 scores</th><th>Automatic?</th>'
        f"</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _footer(r: dict[str, Any]) -> str:
    items = []
    data = r.get("data")
    if isinstance(data, dict):
        if data.get("path"):
            items.append(f"Data: <code>{_e(data.get('path'))}</code>")
        if data.get("sha256"):
            items.append(f"sha256 <code>{_e(str(data.get('sha256'))[:12])}…</code>")
        carved = data.get("carved")
        if isinstance(carved, dict) and carved:
            items.append("split: " + _e("; ".join(f"{k}: {v}" for k, v in carved.items())))
    elif data:
        items.append(f"Data: <code>{_e(data)}</code>")
    if r.get("model"):
        items.append(f"Model: {_e(r.get('model'))}")
    sizes = [
        f"{name} {_int(r.get(key))}"
        for key, name in (("n_train", "train"), ("n_val", "validation"), ("n_test", "test"))
        if _num(r.get(key)) is not None
    ]
    if sizes:
        items.append("Messages: " + _e(", ".join(sizes)))
    margin = _num(r.get("threshold_margin"))
    if margin:
        items.append(f"Safety margin on validation precision: {_e(_pct(margin))}")
    return (
        f"<footer><p>{' · '.join(items)}</p><p>Thresholds were chosen on the validation data only; every figure "
        "and chart in this report is measured on the test data, which played no part in choosing them.</p>"
        "</footer>"
    )


_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6;color:#111827;font:15px/1.5 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",
Arial,"Noto Sans","Noto Sans CJK JP",sans-serif,"Apple Color Emoji","Segoe UI Emoji","Noto Color Emoji"}
main{max-width:940px;margin:0 auto;padding:24px 20px 40px}
h1{font-size:26px;margin:8px 0 4px}
h2{font-size:20px;margin:0 0 8px}
h3{font-size:16px;margin:18px 0 6px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:20px 22px;margin:16px 0}
.sub{color:#4b5563;margin:0 0 8px}
.lead{font-size:18px;line-height:1.55;margin:6px 0 10px}
.ok{background:#ecfdf3;border-left:4px solid #15803d;padding:8px 12px;border-radius:4px}
.warn{background:#fef2f2;border-left:4px solid #c0392b;padding:8px 12px;border-radius:4px}
.notes{background:#fffbeb;border-left:4px solid #b45309;padding:8px 12px;border-radius:4px;margin:6px 0 10px}
.notes ul{margin:4px 0 0;padding-left:20px}
.notes li{overflow-wrap:anywhere}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:10px;margin-top:14px}
.tile{border:1px solid #e5e7eb;border-radius:8px;padding:10px 12px;background:#fafafa}
.tname{font-size:13px;color:#4b5563;font-weight:600}
.tval{font-size:24px;font-weight:700;font-variant-numeric:tabular-nums}
.tnote{font-size:12px;color:#6b7280;line-height:1.3}
.caption{color:#4b5563;font-size:13.5px;margin:6px 0}
.muted{color:#6b7280}
.good{color:#15803d;font-weight:600}
.bad{color:#c0392b;font-weight:600}
code{font-size:12.5px;background:#f3f4f6;padding:1px 4px;border-radius:3px;word-break:break-all}
svg.chart{display:block;max-width:100%;height:auto;font-family:inherit}
svg .tick{font-size:12px;fill:#374151}
svg .axis{font-size:13px;fill:#111827;font-weight:600}
svg .note{font-size:12.5px}
svg .strong{font-weight:700}
svg .tiny{font-size:10.5px;fill:#374151}
svg .lbl{fill:#111827}
svg .halo{paint-order:stroke;stroke:#fff;stroke-width:4px;stroke-linejoin:round}
.svgwrap{overflow-x:auto}
table.data{border-collapse:collapse;width:100%;font-size:13.5px;font-variant-numeric:tabular-nums}
table.data th,table.data td{padding:4px 8px;border-bottom:1px solid #eef0f3;text-align:left;vertical-align:top}
table.data th{background:#f9fafb;font-weight:600;color:#374151;position:sticky;top:0;z-index:1}
table.data td.num,table.data th.num{text-align:right;white-space:nowrap}
table.compact{width:auto}
tr.chosen td{background:#fff4e5;font-weight:600}
.tablewrap{overflow:auto;border:1px solid #eef0f3;border-radius:6px}
.tablewrap.scroll{max-height:560px}
table.perlabel td{padding:2px 6px;font-size:13px}
table.perlabel th{padding:4px 6px;vertical-align:bottom}
table.perlabel td.label{max-width:220px}
td.label,span.label{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
td.label{white-space:nowrap;max-width:260px;overflow:hidden;text-overflow:ellipsis}
ol.pairs span.label{overflow-wrap:anywhere}
.bar{display:inline-block;width:32px;height:8px;background:#e5e7eb;border-radius:4px;margin-right:6px;
vertical-align:middle;overflow:hidden}
.pv{display:inline-block;min-width:4.2em;text-align:right}
.bar i{display:block;height:100%;background:#1f5fa8}
.bar.bad i{background:#c0392b}
td.text{min-width:240px;overflow-wrap:anywhere}
td.labels div,td.top3 div{white-space:nowrap}
td.labels .k{display:inline-block;width:30px;font-size:11px;color:#6b7280}
span.label.bad{font-weight:400}
td.auto{min-width:90px;font-size:12.5px}
table.errors td{font-size:13px}
ol.pairs{columns:2;column-gap:32px;margin:4px 0;padding-left:28px;font-size:13.5px}
footer{color:#4b5563;font-size:13px;padding:4px 4px}
@media (max-width:700px){ol.pairs{columns:1}}
"""


@dataclass
class _Bin:
    """One reliability bin as the report holds it (confidence and accuracy may be missing)."""

    lower: float
    upper: float
    count: int
    confidence: float | None
    accuracy: float | None


def render_html(report: dict[str, Any]) -> str:
    """The whole report as one self-contained HTML page."""
    r = report
    words = _words(r.get("task"))
    task = str(r.get("task") or "")
    n_labels = len(r.get("labels") or [])
    title = f"replyguard eval: {task}"
    target = _num(r.get("target_precision"))
    sections = [
        f'<section id="summary"><h2>Summary</h2>{_summary(r)}{_notes(r)}{_tiles(r)}{_policy_comparison(r)}</section>',
        '<section id="tradeoff"><h2>How much is automatic, and how often it is right</h2>'
        '<p class="sub">A stricter (higher) threshold handles fewer messages automatically but gets more of them '
        "right; moving left along the curve is moving to a stricter threshold. Pick a point on or above the "
        f"dashed target line{' (' + _e(_pct(target)) + ')' if target is not None else ''}.</p>"
        f'<div class="svgwrap">{_curve_svg(r)}</div><h3>The trade-off in numbers (test data)</h3>'
        f"{_threshold_table(r)}</section>",
        '<section id="per-label"><h2>Per label, at the chosen threshold</h2>'
        '<p class="sub">Weakest labels (lowest F1) first. <b>Precision</b>: when replyguard says this label, how often '
        "it is right. <b>Recall</b>: of the messages that really have this label, how many it finds. "
        "<b>Auto precision / recall</b>: the same, counting only messages handled automatically "
        f"(red when below the target). “never” = this label is never {_e(words['done'])}.</p>"
        f"{_per_label(r)}</section>",
        '<section id="reliability"><h2>Can the confidence be trusted?</h2>'
        f'<div class="svgwrap">{_reliability_svg(r)}</div>'
        f'<p class="caption">Expected calibration error (ECE): <b>{_e(_pct(r.get("ece"), 1))}</b>. '
        "It is the average gap between how confident replyguard is and how often it is actually right; a small value "
        "means a confidence of, say, 95 % really is right about 95 % of the time, so the threshold means what it "
        "says. Bars: share right per confidence bin (darker = more messages); dots: mean confidence in that bin.</p>"
        "</section>",
        '<section id="confusion"><h2>Which labels get mixed up</h2>'
        '<p class="sub">Rows: the true label; columns: what replyguard predicted. Blue diagonal cells are right, '
        f"red cells are mistakes (all test messages, before any threshold).</p>{_confusion(r)}</section>",
        '<section id="worst-errors"><h2>The most confident mistakes</h2>'
        '<p class="sub">Test messages replyguard got wrong while being most sure of itself. Hover over a message to '
        f"read it in full.</p>{_worst_errors(r)}</section>",
    ]
    sub = f"{task} classifier · {n_labels:,} labels · {words['title']} threshold report"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        f'<h1>{_e(title)}</h1><p class="sub">{_e(sub)}</p>' + "".join(sections) + _footer(r) + "</main></body></html>\n"
    )


def write_html(report: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Render ``report`` and write it to ``path`` atomically (temporary file in the same folder + os.replace)."""
    target = Path(path)
    text = render_html(report)
    fd, tmp = new_file(target.parent, prefix=f".{target.name}.")  # mode 0666 less the umask, like any file
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
