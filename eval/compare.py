"""``replyguard eval --compare A B``: two eval reports side by side.

A and B are report directories (or their ``report.json``) written by ``replyguard eval``.
The comparison lists the headline figures, the thresholds and every label's F1 of both,
with B − A, as text and as one self-contained HTML page.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.report_html import threshold_text
from worker.exceptions import ConfigError

#: (report key, name, unit): the headline figures compared.
FIGURES = (
    ("accuracy", "accuracy", "percent"),
    ("macro_f1", "macro-F1", "ratio"),
    ("ece", "ECE (lower is better)", "ratio"),
    ("in_scope_accuracy", "in-scope accuracy", "percent"),
    ("oos_recall", "out-of-scope recall", "percent"),
    ("threshold", "threshold (chosen on val)", "threshold"),
    ("coverage", "coverage at the threshold", "percent"),
    ("achieved_precision", "precision at the threshold", "ratio"),
    ("n_test", "test rows", "count"),
    ("predict_per_second", "messages/s (one thread)", "count"),
)


@dataclass
class Comparison:
    names: tuple[str, str]
    headers: tuple[str, str]
    rows: list[tuple[str, Any, Any, str]]
    labels: list[tuple[str, Any, Any]]
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"A: {self.headers[0]}",
            f"B: {self.headers[1]}",
            *[f"note: {n}" for n in self.notes],
            "",
            f"{'':34} {'A':>10} {'B':>10} {'B - A':>10}",
        ]
        for name, a, b, unit in self.rows:
            out.append(f"{name:34} {_fmt(a, unit):>10} {_fmt(b, unit):>10} {_delta(a, b, unit):>10}")
        if self.labels:
            out += ["", f"{'F1 per label':34} {'A':>10} {'B':>10} {'B - A':>10}"]
            for label, a, b in self.labels:
                out.append(f"{label[:34]:34} {_fmt(a, 'ratio'):>10} {_fmt(b, 'ratio'):>10} {_delta(a, b, 'ratio'):>10}")
        return out


def _fmt(value: Any, unit: str) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    if unit == "threshold":  # 0.999998 is not 1.0000 (which would handle nothing automatically)
        return threshold_text(value)
    if unit == "percent":
        return f"{100 * value:.1f} %"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:.4f}"


def _delta(a: Any, b: Any, unit: str) -> str:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return ""
    d = b - a
    if unit == "percent":
        return f"{100 * d:+.1f} pt"
    if unit == "count":
        return f"{d:+,.0f}"
    return f"{d:+.4f}"


def read_report(path: Path) -> dict[str, Any]:
    file = path / "report.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{file}: no eval report there (run replyguard eval --report DIR first)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{file}: not a readable eval report: {exc}") from exc
    if not isinstance(data, dict) or "task" not in data or "per_label" not in data:
        raise ConfigError(f"{file}: not an eval report (no task / per_label)")
    problem = _malformed(data)
    if problem:
        raise ConfigError(
            f"{file}: not a readable eval report: {problem} (was it edited by hand? run replyguard eval again)"
        )
    return data


def _malformed(report: dict[str, Any]) -> str | None:
    """What is wrong with a report's shape, or None: the comparison reads these keys."""
    if not isinstance(report["task"], str):
        return "'task' is not a string"
    per_label = report["per_label"]
    if not isinstance(per_label, dict) or not all(isinstance(v, dict) for v in per_label.values()):
        return "'per_label' is not an object of one object per label"
    data = report.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("path"), str):
        return "'data.path' is missing"
    if not isinstance(report.get("model"), str):
        return "'model' is missing"
    return None


def compare_reports(first: Path, second: Path) -> Comparison:
    a, b = read_report(first), read_report(second)
    headers = tuple(f"{r['task']} on {Path(r['data']['path']).name} ({r['model']})" for r in (a, b))
    rows = [
        (name, a.get(key), b.get(key), unit)
        for key, name, unit in FIGURES
        if a.get(key) is not None or b.get(key) is not None
    ]
    labels = sorted(set(a["per_label"]) | set(b["per_label"]))
    per_label = [
        (label, (a["per_label"].get(label) or {}).get("f1"), (b["per_label"].get(label) or {}).get("f1"))
        for label in labels
    ]
    notes = []
    if a["task"] != b["task"]:
        notes.append(f"A is a report on {a['task']}, B on {b['task']}: their figures are not comparable")
    for which, report in (("A", a), ("B", b)):  # what each report says qualifies its figures (labels read as ...)
        own = report.get("notes")
        notes += [f"{which}: {n}" for n in own if str(n).strip()] if isinstance(own, list) else []
    return Comparison(
        names=(str(first), str(second)),
        headers=headers,  # type: ignore[arg-type]
        rows=rows,
        labels=per_label,
        notes=notes,
    )


def write_compare_html(table: Comparison, out: Path) -> Path:
    e = html.escape

    def body(rows: list[tuple[str, Any, Any, str]]) -> str:
        return "".join(
            f"<tr><th>{e(n)}</th><td>{e(_fmt(x, u))}</td><td>{e(_fmt(y, u))}</td><td>{e(_delta(x, y, u))}</td></tr>"
            for n, x, y, u in rows
        )

    labels = [(label, x, y, "ratio") for label, x, y in table.labels]
    page = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>replyguard eval: A vs B</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}th{text-align:left}</style>"
        f"<h1>Two evaluations side by side</h1><p>A: {e(table.headers[0])}<br>B: {e(table.headers[1])}</p>"
        + "".join(f"<p><strong>Note:</strong> {e(n)}</p>" for n in table.notes)
        + f"<table><tr><th></th><th>A</th><th>B</th><th>B − A</th></tr>{body(table.rows)}</table>"
        f"<h2>F1 per label</h2><table><tr><th>label</th><th>A</th><th>B</th><th>B − A</th></tr>{body(labels)}</table>"
        "</html>\n"
    )
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
