"""Choosing confidence thresholds for a target precision, and what they cost in coverage.

Vocabulary, shared by the report and the policy proposal:

* a message is **eligible** when its top label is one the policy acts on automatically
  (intent: every label but out-of-scope; spam: ``spam``; abuse: ``hate`` and ``offensive``);
* it is **auto-resolved** when it is eligible and its top probability is at or above the
  threshold for that label;
* **coverage** is auto-resolved / all messages; **precision** is the share of auto-resolved
  messages whose top label is the true label (an out-of-scope message that gets an answer
  counts as an error).

Thresholds are always chosen on validation data and reported on test data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Scored:
    """Top predictions of a model on labelled rows."""

    labels: list[str]
    y_true: np.ndarray  # object array of true labels
    pred: np.ndarray  # object array of top labels
    conf: np.ndarray  # top probability
    proba: np.ndarray

    @classmethod
    def from_proba(cls, proba: np.ndarray, labels: Sequence[str], y_true: Sequence[str]) -> "Scored":
        proba = np.asarray(proba, dtype=float)
        top = proba.argmax(axis=1) if len(proba) else np.zeros(0, dtype=int)
        return cls(
            labels=list(labels),
            y_true=np.asarray(list(y_true), dtype=object),
            pred=np.asarray([labels[i] for i in top], dtype=object),
            conf=proba[np.arange(len(top)), top] if len(top) else np.zeros(0),
            proba=proba,
        )

    @property
    def correct(self) -> np.ndarray:
        return self.pred == self.y_true

    def eligible(self, positive: set[str]) -> np.ndarray:
        return np.isin(self.pred, list(positive))


def auto_mask(s: Scored, positive: set[str], thresholds: dict[str, float], default: float) -> np.ndarray:
    """Which rows would be auto-resolved with per-label ``thresholds`` (``default`` elsewhere)."""
    limits = np.array([thresholds.get(p, default) for p in s.pred], dtype=float) if len(s.pred) else np.zeros(0)
    return s.eligible(positive) & (s.conf >= limits)


def outcome(s: Scored, mask: np.ndarray) -> dict[str, float]:
    n_auto = int(mask.sum())
    return {
        "coverage": n_auto / len(mask) if len(mask) else 0.0,
        "precision": float(s.correct[mask].mean()) if n_auto else 1.0,
        "n_auto": n_auto,
        "errors": int((~s.correct[mask]).sum()),
    }


def curve(s: Scored, positive: set[str], points: int = 200) -> list[dict[str, float]]:
    """Coverage and precision of one global threshold, from strict to lenient."""
    eligible = s.eligible(positive)
    conf = s.conf[eligible]
    correct = s.correct[eligible]
    n = len(s.conf)
    if not len(conf):
        return []
    order = np.argsort(-conf, kind="stable")
    conf, correct = conf[order], correct[order]
    hits = np.cumsum(correct)
    out = []
    # one point per distinct confidence, thinned to about `points`
    last = np.r_[np.nonzero(np.diff(conf))[0], len(conf) - 1]
    step = max(1, len(last) // points)
    for i in list(last[::step]) + ([last[-1]] if len(last) % step else []):
        k = i + 1
        out.append({"threshold": float(conf[i]), "coverage": k / n, "precision": float(hits[i] / k), "n_auto": int(k)})
    return out


def lowest_threshold(conf: np.ndarray, correct: np.ndarray, target: float, *, margin: float = 0.0,
                     min_auto: int = 1) -> float | None:
    """Lowest threshold t such that, for every t' >= t, the rows with confidence >= t' reach ``target + margin``.

    Requiring the precision at *every* stricter threshold too (not only at t) keeps a
    lucky dip from selecting a threshold whose neighbourhood misses the target.
    Returns None when no threshold reaches the target on at least ``min_auto`` rows.
    """
    if not len(conf):
        return None
    order = np.argsort(-conf, kind="stable")
    conf, correct = conf[order], correct[order]
    precision = np.cumsum(correct) / np.arange(1, len(conf) + 1)
    boundary = np.r_[np.diff(conf) != 0, True]  # thresholds can only sit between distinct values
    ok = (precision >= target + margin) & boundary
    best = None
    # scan from strict to lenient; stop at the first boundary that misses the target
    for i in range(len(conf)):
        if not boundary[i]:
            continue
        if not ok[i]:
            break
        if i + 1 >= min_auto:
            best = float(conf[i])
    return best


def choose_thresholds(s: Scored, positive: set[str], target: float, *, margin: float = 0.0,
                      per_label_min: int = 30) -> tuple[float, dict[str, float]]:
    """A global threshold, plus per-label thresholds where the label has enough validation support.

    Per-label thresholds are only kept where they are *lower* than the global one (that is where
    they buy coverage); a label with fewer than ``per_label_min`` eligible rows uses the global
    threshold. When nothing reaches the target, the global threshold is 1.0 (auto-resolve nothing).
    """
    eligible = s.eligible(positive)
    global_t = lowest_threshold(s.conf[eligible], s.correct[eligible], target, margin=margin)
    global_t = 1.0 if global_t is None else global_t
    per_label: dict[str, float] = {}
    for label in sorted(positive):
        rows = eligible & (s.pred == label)
        if rows.sum() < per_label_min:
            continue
        t = lowest_threshold(s.conf[rows], s.correct[rows], target, margin=margin, min_auto=per_label_min // 2)
        if t is not None and t < global_t:
            per_label[label] = t
    return global_t, per_label
