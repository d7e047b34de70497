"""The self-contained HTML eval report (eval/report_html.py).

Checked with html.parser: nothing is loaded from outside the file, report strings are
escaped everywhere (HTML and SVG), and the charts and summary are there. A synthetic
151-label report checks that a large label set stays fast and small.
"""

from __future__ import annotations

import copy
import os
import random
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from eval.report_html import render_html, write_html

DANGER = '<script>alert(1)</script> & "quotes"'
NASTY_LABEL = 'x"><img src=x onerror=alert(2)>'


class Page(HTMLParser):
    """Every start tag with its attributes, the text inside <script>/<style>, and all text by section id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.script_bodies: list[str] = []
        self._stack: list[str] = []
        self.section_text: dict[str, list[str]] = {}
        self._section: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        self._stack.append(tag)
        if tag == "section":
            self._section = a.get("id")

    def handle_endtag(self, tag: str) -> None:
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()
        if tag == "section":
            self._section = None

    def handle_data(self, data: str) -> None:
        if self._stack and self._stack[-1] == "script":
            self.script_bodies.append(data)
        self.text.append(data)
        if self._section:
            self.section_text.setdefault(self._section, []).append(data)


def parse(page: str) -> Page:
    p = Page()
    p.feed(page)
    p.close()
    return p


def small_report() -> dict[str, Any]:
    labels = ["billing", "shipping", NASTY_LABEL]
    return {
        "task": "intent",
        "data": {"path": "data/<odd> & 'file'.jsonl", "sha256": "0123456789abcdef" * 4},
        "model": "trained on the train split",
        "n_train": 800,
        "n_val": 100,
        "n_test": 200,
        "labels": labels,
        "action_labels": labels,
        "oos_label": None,
        "accuracy": 0.91,
        "macro_f1": 0.905,
        "ece": 0.031,
        "target_precision": 0.95,
        "threshold": 0.87,
        "per_label_thresholds": {},
        "coverage": 0.615,
        "achieved_precision": 0.9593,
        "auto_errors": 5,
        "train_seconds": 1.25,
        "predict_per_second": 5321.0,
        "per_label": {
            "billing": {
                "precision": 0.93,
                "recall": 0.9,
                "f1": 0.915,
                "support": 70,
                "threshold": 0.87,
                "auto_precision": 0.97,
                "auto_recall": 0.6,
            },
            "shipping": {
                "precision": 0.9,
                "recall": 0.92,
                "f1": 0.91,
                "support": 70,
                "threshold": 0.87,
                "auto_precision": 0.95,
                "auto_recall": 0.62,
            },
            NASTY_LABEL: {
                "precision": 0.89,
                "recall": 0.9,
                "f1": 0.895,
                "support": 60,
                "threshold": 0.87,
                "auto_precision": 0.94,
                "auto_recall": 0.55,
            },
        },
        "curve": [
            {"threshold": 0.999, "coverage": 0.1, "precision": 1.0, "n_auto": 20},
            {"threshold": 0.97, "coverage": 0.3, "precision": 0.983, "n_auto": 60},
            {"threshold": 0.87, "coverage": 0.615, "precision": 0.9593, "n_auto": 123},
            {"threshold": 0.7, "coverage": 0.8, "precision": 0.94, "n_auto": 160},
            {"threshold": 0.4, "coverage": 1.0, "precision": 0.91, "n_auto": 200},
        ],
        "val_curve": [
            {"threshold": 0.99, "coverage": 0.12, "precision": 1.0, "n_auto": 12},
            {"threshold": 0.87, "coverage": 0.6, "precision": 0.96, "n_auto": 60},
            {"threshold": 0.4, "coverage": 1.0, "precision": 0.92, "n_auto": 100},
        ],
        "reliability": [
            {
                "lower": i / 15,
                "upper": (i + 1) / 15,
                "count": c,
                "confidence": (i + 0.5) / 15 if c else 0.0,
                "accuracy": min(1.0, (i + 0.4) / 15) if c else 0.0,
            }
            for i, c in enumerate([0] * 5 + [3, 4, 6, 8, 10, 14, 20, 30, 45, 60])
        ],
        "confusion": [[63, 4, 3], [3, 64, 3], [2, 3, 55]],
        "worst_errors": [
            {
                "text": DANGER,
                "true": "billing",
                "predicted": NASTY_LABEL,
                "confidence": 0.93,
                "top": [
                    {"label": NASTY_LABEL, "p": 0.93},
                    {"label": "billing", "p": 0.05},
                    {"label": "shipping", "p": 0.02},
                ],
            },
            {
                "text": "配送はいつですか？ 🚚📦 <b>not bold</b>",
                "true": "shipping",
                "predicted": "billing",
                "confidence": 0.71,
                "top": [{"label": "billing", "p": 0.71}, {"label": "shipping", "p": 0.29}],
            },
        ],
        "policy_comparison": {
            "policy": "policies/<new>.yaml",
            "rows": [
                {"name": "auto-resolve rate", "before": 0.52, "after": 0.615, "unit": "percent"},
                {"name": "errors among auto-resolved", "before": 0.03, "after": 0.041, "unit": "percent"},
                {"name": "escalations per 1,000 messages", "before": 480.0, "after": 385.0, "unit": "count"},
            ],
            "text": ["The new policy answers more messages & makes a few more mistakes <sometimes>."],
        },
    }


def synthetic_report(n_labels: int = 151, per_label: int = 30, seed: int = 7) -> dict[str, Any]:
    """A plausible report for ``n_labels`` labels (the last one out-of-scope), from simulated predictions."""
    rng = random.Random(seed)
    labels = [
        f"intent_{i:03d}_{rng.choice(['balance', 'transfer', 'card', 'travel', 'meeting', 'timer'])}"
        for i in range(n_labels - 1)
    ] + ["oos"]
    rows = []  # (true, predicted, confidence, correct)
    for li, true in enumerate(labels):
        for _ in range(per_label):
            conf = min(0.9999, max(1 / n_labels + 0.05, rng.betavariate(8, 1.2)))
            correct = rng.random() < conf * (0.97 if true != "oos" else 0.8)
            pred = true if correct else labels[(li + rng.choice([1, 2, 3, -1, 7])) % n_labels]
            rows.append((true, pred, conf, correct))
    n = len(rows)
    eligible = sorted((r for r in rows if r[1] != "oos"), key=lambda r: -r[2])
    curve, hits = [], 0
    for k, r in enumerate(eligible, 1):
        hits += r[3]
        if k % max(1, len(eligible) // 200) == 0 or k == len(eligible):
            curve.append({"threshold": r[2], "coverage": k / n, "precision": hits / k, "n_auto": k})
    target = 0.95
    threshold, ok = 1.0, True
    for p in curve:
        ok = ok and p["precision"] >= target
        if ok:
            threshold = p["threshold"]
    auto = [r for r in eligible if r[2] >= threshold]
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * n_labels for _ in labels]
    for t, p, _, _ in rows:
        matrix[index[t]][index[p]] += 1
    table = {}
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        col = sum(matrix[j][i] for j in range(n_labels))
        row = sum(matrix[i])
        prec, rec = (tp / col if col else 0.0), (tp / row if row else 0.0)
        auto_rows = [r for r in auto if r[1] == label]
        table[label] = {
            "precision": prec,
            "recall": rec,
            "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
            "support": row,
            "threshold": None if label == "oos" else threshold,
            "auto_precision": sum(r[3] for r in auto_rows) / len(auto_rows) if auto_rows else None,
            "auto_recall": sum(1 for r in auto_rows if r[3]) / row if row else None,
        }
    bins = []
    for b in range(15):
        inside = [r for r in rows if min(int(r[2] * 15), 14) == b]
        bins.append(
            {
                "lower": b / 15,
                "upper": (b + 1) / 15,
                "count": len(inside),
                "confidence": sum(r[2] for r in inside) / len(inside) if inside else 0.0,
                "accuracy": sum(r[3] for r in inside) / len(inside) if inside else 0.0,
            }
        )
    wrong = sorted((r for r in rows if not r[3]), key=lambda r: -r[2])[:25]
    accuracy = sum(r[3] for r in rows) / n
    return {
        "task": "intent",
        "data": {"path": "synthetic", "sha256": "f" * 64},
        "model": "synthetic",
        "n_train": 15000,
        "n_val": 3000,
        "n_test": n,
        "labels": labels,
        "action_labels": labels[:-1],
        "oos_label": "oos",
        "accuracy": accuracy,
        "per_label": table,
        "macro_f1": sum(v["f1"] for v in table.values()) / n_labels,
        "ece": sum(b["count"] * abs(b["confidence"] - b["accuracy"]) for b in bins) / n,
        "target_precision": target,
        "threshold": threshold,
        "per_label_thresholds": {},
        "coverage": len(auto) / n,
        "achieved_precision": sum(r[3] for r in auto) / len(auto) if auto else 1.0,
        "auto_errors": sum(1 for r in auto if not r[3]),
        "train_seconds": 42.0,
        "predict_per_second": 2500.0,
        "in_scope_accuracy": sum(r[3] for r in rows if r[0] != "oos") / sum(1 for r in rows if r[0] != "oos"),
        "oos_recall": 0.8,
        "curve": curve,
        "val_curve": [dict(p, precision=min(1.0, p["precision"] + 0.01)) for p in curve[::2]],
        "reliability": bins,
        "confusion": matrix,
        "worst_errors": [
            {
                "text": f"message {i} about {t} — 本当に？ <i>",
                "true": t,
                "predicted": p,
                "confidence": c,
                "top": [{"label": p, "p": c}, {"label": t, "p": (1 - c) * 0.7}, {"label": "oos", "p": (1 - c) * 0.3}],
            }
            for i, (t, p, c, _) in enumerate(wrong)
        ],
    }


# --------------------------------------------------------------------------- tests


def test_self_contained_no_external_resources() -> None:
    page = render_html(small_report())
    parsed = parse(page)
    for tag, attrs in parsed.tags:
        for name in ("src", "href", "xlink:href", "action", "data", "poster"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, name, value)
        if tag == "link":
            assert "stylesheet" not in (attrs.get("rel") or "").lower(), attrs
        if tag == "script":
            assert "src" not in attrs, attrs
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    assert "@import" not in page and "url(http" not in page
    assert sum(1 for tag, _ in parsed.tags if tag == "svg") >= 3


def test_report_strings_are_escaped() -> None:
    page = render_html(small_report())
    parsed = parse(page)
    # never as markup: no script element, no img element injected via a label
    assert not any(tag == "script" for tag, _ in parsed.tags)
    assert not any(tag == "img" for tag, _ in parsed.tags)
    assert "<script>" not in page and "<img" not in page and "<b>not bold</b>" not in page
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page
    assert html_escaped(DANGER) in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    # but readable as text, in the worst-errors table
    assert DANGER in "".join(parsed.section_text["worst-errors"])
    assert NASTY_LABEL in "".join(parsed.text)
    # attributes (title=...) never break out: every attribute value parsed back equals a clean string
    for _, attrs in parsed.tags:
        assert "onerror" not in attrs
    # unicode is kept as is
    assert "配送はいつですか？ 🚚📦" in page
    assert "policies/&lt;new&gt;.yaml" in page


def test_the_reports_notes_are_shown_escaped_in_the_summary() -> None:
    """The text and JSON reports carry notes (labels as read, calibration folds reduced for a rare label);
    the page shows them too. A note quotes the data's labels: it is text, never markup."""
    rare = (
        "label(s) <script>alert(1)</script> (4) have fewer than 5 training rows: calibrated over 4 folds instead of 5"
    )
    report = {**small_report(), "notes": [rare, "labels '1' read as spam, '0' read as ham"]}
    page = render_html(report)
    parsed = parse(page)
    assert not any(tag == "script" for tag, _ in parsed.tags) and "<script>" not in page
    assert "label(s) &lt;script&gt;alert(1)&lt;/script&gt; (4) have fewer than 5 training rows" in page
    summary = "".join(parsed.section_text["summary"])
    assert rare in summary and "labels '1' read as spam, '0' read as ham" in summary
    assert summary.index(rare) < summary.index("Coverage")  # above the figures they qualify
    assert 'id="notes"' not in render_html(small_report())  # no notes, no box
    assert 'id="notes"' not in render_html({**small_report(), "notes": []})


def html_escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_summary_states_threshold_and_coverage() -> None:
    parsed = parse(render_html(small_report()))
    summary = " ".join("".join(parsed.section_text["summary"]).split())
    assert "0.87" in summary
    assert "61.5 %" in summary
    assert "95.9 %" in summary and "95.0 %" in summary
    assert "answered" in summary
    assert "Target met" in summary
    # policy comparison rendered when present
    assert "escalations per 1,000 messages" in summary and "385" in summary and "+9.5 pts" in summary


def test_missed_target_is_said_plainly() -> None:
    report = small_report()
    report["task"] = "spam"
    report["achieved_precision"] = 0.93
    report["val_at_threshold"] = {"precision": 0.97}
    summary = " ".join("".join(parse(render_html(report)).section_text["summary"]).split())
    assert "Target missed" in summary and "hidden as spam" in summary and "97.0 %" in summary


def test_optional_fields_may_be_missing() -> None:
    report = small_report()
    for key in (
        "data",
        "model",
        "n_train",
        "n_val",
        "n_test",
        "action_labels",
        "oos_label",
        "accuracy",
        "macro_f1",
        "ece",
        "per_label_thresholds",
        "auto_errors",
        "train_seconds",
        "predict_per_second",
        "val_curve",
        "policy_comparison",
    ):
        report.pop(key)
    page = " ".join(render_html(report).split())
    assert "61.5 %" in page and "of the 200 test messages" in page  # n_test from the confusion matrix
    empty = copy.deepcopy(report)
    empty.update(curve=[], reliability=[], confusion=[], worst_errors=[], coverage=0.0, threshold=1.0)
    assert "none" in render_html(empty)


def test_write_html_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")
    write_html(small_report(), target)
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left behind


def test_written_report_gets_the_mode_the_umask_gives(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    previous = os.umask(0o027)
    try:
        write_html(small_report(), target)
    finally:
        os.umask(previous)
    assert target.stat().st_mode & 0o777 == 0o640  # like any file the eval writes (report.json: write_text)


def test_151_labels_fast_and_small() -> None:
    report = synthetic_report(151)
    started = time.perf_counter()
    page = render_html(report)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, elapsed
    assert len(page.encode("utf-8")) < 3 * 1024 * 1024
    parsed = parse(page)
    assert sum(1 for tag, _ in parsed.tags if tag == "svg") >= 3
    text = "".join(parsed.text)
    assert "Showing the 25 labels involved in the most errors, out of 151" in text
    assert "In-scope accuracy" in text and "Out-of-scope caught" in text
    per_label_rows = page.split('class="data perlabel"', 1)[1].split("</table>", 1)[0].count("<tr>")
    assert per_label_rows == 1 + 151  # header + one row per label


@pytest.mark.parametrize("threshold", [0.5, 0.9999999998, 1.0])
def test_threshold_formatting_never_rounds_up_to_one(threshold: float) -> None:
    report = small_report()
    report["threshold"] = threshold
    summary = "".join(parse(render_html(report)).section_text["summary"])
    expected = {0.5: "0.50", 0.9999999998: "0.99999999", 1.0: "1.00"}[threshold]
    assert expected in summary
