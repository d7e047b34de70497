"""Classification metrics used by training manifests, eval reports and benchmarks.

They live in the bottom layer (classifiers/) because training writes held-out
metrics into every manifest; ``eval.metrics`` re-exports them.

Plain functions over label lists and probability matrices; each is checked
against small hand-computed cases in tests/test_metrics.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def per_label(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per label (0.0 where undefined)."""
    true = np.asarray(y_true, dtype=object)
    pred = np.asarray(y_pred, dtype=object)
    out: dict[str, dict[str, float]] = {}
    for label in labels:
        tp = int(np.sum((pred == label) & (true == label)))
        fp = int(np.sum((pred == label) & (true != label)))
        fn = int(np.sum((pred != label) & (true == label)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return out


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    if len(y_true) == 0:
        return 0.0
    return float(np.mean(np.asarray(y_true, dtype=object) == np.asarray(y_pred, dtype=object)))


def macro_f1(table: dict[str, dict[str, float]]) -> float:
    """Unweighted mean F1 over labels that occur in the truth (support > 0)."""
    scores = [row["f1"] for row in table.values() if row["support"] > 0]
    return float(np.mean(scores)) if scores else 0.0


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width confidence bins: sum_b |B|/n * |accuracy(B) - confidence(B)|.

    ``confidence`` is the probability of the predicted (top) class. A confidence
    of exactly 1.0 falls in the last bin, 0.0 in the first.
    """
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    n = len(confidence)
    if n == 0:
        return 0.0
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.sum() / n * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    """Per-bin mean confidence, accuracy and count (for reliability diagrams)."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        out.append(
            {
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "count": int(mask.sum()),
                "confidence": float(confidence[mask].mean()) if mask.any() else 0.0,
                "accuracy": float(correct[mask].mean()) if mask.any() else 0.0,
            }
        )
    return out


def confusion(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Matrix[i, j] = number of rows with true label i predicted as j."""
    position = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(y_true, y_pred, strict=True):
        if t in position and p in position:
            matrix[position[t], position[p]] += 1
    return matrix


def summary(y_true: Sequence[str], proba: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-label table and ECE of argmax predictions."""
    proba = np.asarray(proba, dtype=float)
    top = proba.argmax(axis=1)
    y_pred = [labels[i] for i in top]
    table = per_label(y_true, y_pred, labels)
    correct = np.asarray(y_pred, dtype=object) == np.asarray(y_true, dtype=object)
    return {
        "n": len(y_true),
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(table),
        "per_label": table,
        "ece": expected_calibration_error(proba[np.arange(len(top)), top], correct),
    }
