"""Metric and threshold code against small cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from eval import metrics
from eval.thresholds import Scored, auto_mask, choose_thresholds, curve, lowest_threshold, outcome


def test_per_label_precision_recall_f1() -> None:
    # true:  a a a b b c
    # pred:  a a b b c c
    # a: tp2 fp0 fn1 -> P 1, R 2/3, F1 0.8
    # b: tp1 fp1 fn1 -> P .5, R .5, F1 .5
    # c: tp1 fp1 fn0 -> P .5, R 1, F1 2/3
    table = metrics.per_label(list("aaabbc"), list("aabbcc"), ["a", "b", "c"])
    assert table["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert table["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert table["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert metrics.macro_f1(table) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert metrics.accuracy(list("aaabbc"), list("aabbcc")) == pytest.approx(4 / 6)


def test_labels_never_predicted_or_absent() -> None:
    table = metrics.per_label(["a", "a"], ["a", "a"], ["a", "z"])
    assert table["z"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert metrics.macro_f1(table) == 1.0  # z has no support, so it does not count


def test_expected_calibration_error_by_hand() -> None:
    # 2 bins: [0, .5) and [.5, 1]
    # bin 0: conf .2, .4 (mean .3), correct 0, 1 (acc .5) -> |.5-.3| = .2, weight 2/5
    # bin 1: conf .6, .8, 1.0 (mean .8), correct 1, 1, 0 (acc 2/3) -> |2/3-.8| = 2/15, weight 3/5
    conf = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    correct = np.array([0, 1, 1, 1, 0])
    assert metrics.expected_calibration_error(conf, correct, bins=2) == pytest.approx(0.4 * 0.2 + 0.6 * 2 / 15)
    bins = metrics.reliability_bins(conf, correct, bins=2)
    assert [b["count"] for b in bins] == [2, 3]
    assert bins[1]["accuracy"] == pytest.approx(2 / 3) and bins[1]["confidence"] == pytest.approx(0.8)
    assert metrics.expected_calibration_error(np.array([0.9] * 10), np.array([1] * 9 + [0])) == pytest.approx(0.0)


def test_confusion_matrix() -> None:
    m = metrics.confusion(list("aab"), list("abb"), ["a", "b"])
    assert m.tolist() == [[1, 1], [0, 1]]


def scored(conf: list[float], pred: list[str], true: list[str], labels: list[str]) -> Scored:
    proba = np.zeros((len(conf), len(labels)))
    for i, (c, p) in enumerate(zip(conf, pred, strict=True)):
        j = labels.index(p)
        proba[i, j] = c
        rest = [k for k in range(len(labels)) if k != j]
        proba[i, rest] = (1 - c) / len(rest)
    return Scored.from_proba(proba, labels, true)


def test_lowest_threshold_meets_target_at_every_stricter_point() -> None:
    # sorted by confidence: .99 ok, .95 ok, .90 WRONG, .85 ok, .80 ok, .70 wrong
    conf = np.array([0.99, 0.95, 0.90, 0.85, 0.80, 0.70])
    correct = np.array([1, 1, 0, 1, 1, 0], dtype=bool)
    # precision at t=.99: 1, .95: 1, .90: 2/3, .85: 3/4, .80: 4/5, .70: 4/6
    assert lowest_threshold(conf, correct, 0.75) == 0.95  # .90 dips to 2/3, so the scan stops there
    assert lowest_threshold(conf, correct, 0.6) == 0.70
    assert lowest_threshold(conf, correct, 1.0) == 0.95
    assert lowest_threshold(conf, correct, 1.0, min_auto=3) is None
    # ties: a threshold cannot split equal confidences
    assert lowest_threshold(np.array([0.9, 0.9, 0.8]), np.array([1, 0, 1], dtype=bool), 0.9) is None


def test_coverage_precision_and_per_label_thresholds() -> None:
    labels = ["a", "b", "oos"]
    s = scored(
        conf=[0.95, 0.9, 0.8, 0.7, 0.6, 0.9],
        pred=["a", "a", "b", "b", "a", "oos"],
        true=["a", "a", "b", "a", "a", "oos"],
        labels=labels,
    )
    positive = {"a", "b"}
    mask = auto_mask(s, positive, {}, 0.75)
    assert mask.tolist() == [True, True, True, False, False, False]
    assert outcome(s, mask) == {"coverage": 0.5, "precision": 1.0, "n_auto": 3, "errors": 0}
    # per-label: 'b' may go lower than the global threshold
    mask = auto_mask(s, positive, {"b": 0.65}, 0.75)
    assert outcome(s, mask) == pytest.approx({"coverage": 4 / 6, "precision": 0.75, "n_auto": 4, "errors": 1})
    points = curve(s, positive)
    assert [round(p["threshold"], 2) for p in points] == [0.95, 0.9, 0.8, 0.7, 0.6]
    assert [round(p["precision"], 3) for p in points] == [1.0, 1.0, 1.0, 0.75, 0.8]
    assert points[-1]["coverage"] == pytest.approx(5 / 6)
    global_t, per_label = choose_thresholds(s, positive, 0.99, per_label_min=1)
    assert global_t == pytest.approx(0.8) and per_label == {"a": pytest.approx(0.6)}
