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


def lowest_threshold(
    conf: np.ndarray,
    correct: np.ndarray,
    target: float,
    *,
    margin: float = 0.0,
    min_auto: int = 1,
    weights: np.ndarray | None = None,
    skip: int = 0,
) -> float | None:
    """Lowest threshold t such that, for every t' >= t, the rows with confidence >= t' reach ``target + margin``.

    Requiring the precision at *every* stricter threshold too (a monotone envelope), not only
    at t, keeps a lucky dip from selecting a threshold whose neighbourhood misses the target.
    The first ``skip`` rows (most confident) are not checked: one confident error there would
    otherwise veto every threshold. ``weights`` weight the rows (see :func:`oos_weights`).
    Returns None when no threshold reaches the target on at least ``min_auto`` rows.
    """
    if not len(conf):
        return None
    order = np.argsort(-conf, kind="stable")
    conf, correct = conf[order], correct[order].astype(float)
    w = np.ones(len(conf)) if weights is None else np.asarray(weights, dtype=float)[order]
    precision = np.cumsum(correct * w) / np.cumsum(w)
    boundary = np.r_[np.diff(conf) != 0, True]  # thresholds can only sit between distinct values
    best = None
    for i in range(len(conf)):
        if not boundary[i]:
            continue
        if i >= skip and precision[i] < target + margin:
            break
        if i + 1 >= min_auto and precision[i] >= target + margin:
            best = float(conf[i])
    return best


def oos_weights(y_true: np.ndarray, oos_label: str | None, share: float | None) -> np.ndarray | None:
    """Row weights that make out-of-scope rows ``share`` of the weighted total (only ever up-weighting).

    Validation sets usually hold far fewer out-of-scope messages than real traffic (CLINC150:
    3 % of val, 18 % of test); a threshold chosen on them under-delivers precision. Choosing it
    as if ``share`` of the traffic were out of scope is a planning assumption, stated in the report.
    """
    if not oos_label or not share:
        return None
    is_oos = np.asarray(y_true) == oos_label
    n_oos, n = int(is_oos.sum()), len(is_oos)
    if n_oos == 0 or n_oos / n >= share:
        return None
    factor = share * (n - n_oos) / ((1 - share) * n_oos)
    return np.where(is_oos, factor, 1.0)


def choose_thresholds(
    s: Scored,
    positive: set[str],
    target: float,
    *,
    margin: float = 0.0,
    per_label_min: int = 30,
    oos_label: str | None = None,
    oos_share: float | None = None,
) -> tuple[float, dict[str, float]]:
    """A global threshold, plus per-label thresholds where the label has enough validation support.

    Per-label thresholds are only kept where they are *lower* than the global one (that is where
    they buy coverage); a label with fewer than ``per_label_min`` eligible rows uses the global
    threshold. When nothing reaches the target, the global threshold is 1.0 (auto-resolve nothing).
    """
    eligible = s.eligible(positive)
    weights = oos_weights(s.y_true, oos_label, oos_share)
    w = weights[eligible] if weights is not None else None
    skip = min(200, int(eligible.sum()) // 10)
    global_t = lowest_threshold(s.conf[eligible], s.correct[eligible], target, margin=margin, weights=w, skip=skip)
    global_t = 1.0 if global_t is None else global_t
    per_label: dict[str, float] = {}
    for label in sorted(positive):
        rows = eligible & (s.pred == label)
        if rows.sum() < per_label_min:
            continue
        t = lowest_threshold(
            s.conf[rows],
            s.correct[rows],
            target,
            margin=margin,
            min_auto=per_label_min // 2,
            weights=weights[rows] if weights is not None else None,
        )
        if t is not None and t < global_t:
            per_label[label] = t
    return global_t, per_label


def reject_predictions(s: Scored, oos_label: str, threshold: float) -> np.ndarray:
    """Top labels, with every prediction whose top probability is below ``threshold`` turned into ``oos_label``."""
    return np.where(s.conf >= threshold, s.pred, oos_label)


@dataclass(frozen=True)
class RejectChoice:
    """The out-of-scope reject threshold chosen on val, or None with the reason it could not be chosen."""

    threshold: float | None
    why_not: str | None = None


def choose_reject_threshold(
    s: Scored,
    oos_label: str,
    *,
    budget: float = 0.01,
    grid: np.ndarray | None = None,
    min_oos: int = 1,
    min_in_scope: int = 1,
) -> RejectChoice:
    """The threshold that catches the most out-of-scope val rows while in-scope val accuracy
    drops by at most ``budget`` (absolute) from its value without a threshold.

    Not chosen (``threshold`` None, with the reason) when val holds fewer than ``min_oos`` out-of-scope
    or ``min_in_scope`` in-scope rows: a threshold from a handful of rows means nothing (on tiny data
    it came out as 0, "reject nothing", and read as a choice)."""
    grid = np.round(np.arange(0.0, 1.0, 0.005), 3) if grid is None else grid
    in_scope = s.y_true != oos_label
    n_in, n_oos = int(in_scope.sum()), int((~in_scope).sum())
    need_oos, need_in = max(1, min_oos), max(1, min_in_scope)
    if n_oos < need_oos or n_in < need_in:
        why = (
            f"val holds {n_oos} out-of-scope ({oos_label!r}) and {n_in} in-scope rows, and at least {need_oos} and "
            f"{need_in} are needed; in-scope accuracy and out-of-scope recall take the top label as it is"
        )
        return RejectChoice(None, why)
    base = float((s.pred[in_scope] == s.y_true[in_scope]).mean())
    best, best_recall = 0.0, -1.0
    for t in grid:
        pred = reject_predictions(s, oos_label, float(t))
        accuracy = float((pred[in_scope] == s.y_true[in_scope]).mean())
        recall = float((pred[~in_scope] == oos_label).mean())
        if accuracy >= base - budget - 1e-12 and recall > best_recall:
            best, best_recall = float(t), recall
    return RejectChoice(best)


def weighted_predictions(s: Scored, multipliers: dict[str, float]) -> np.ndarray:
    factors = np.array([multipliers.get(label, 1.0) for label in s.labels])
    return np.asarray(s.labels, dtype=object)[(s.proba * factors).argmax(axis=1)]


def choose_class_multipliers(
    s: Scored, *, grid: Sequence[float] = (0.5, 0.75, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8), rounds: int = 2
) -> dict[str, float]:
    """Per-class probability multipliers (a prior shift) that maximise macro-F1 on validation data.

    Coordinate ascent from all-ones; the most frequent class stays at 1. Used for tasks whose
    classes are imbalanced (e.g. hate vs offensive), where argmax favours the majority.
    """
    from eval import metrics

    counts = {label: int((s.y_true == label).sum()) for label in s.labels}
    anchor = max(counts, key=lambda k: counts[k])
    multipliers = {label: 1.0 for label in s.labels}

    def score(m: dict[str, float]) -> float:
        return metrics.macro_f1(metrics.per_label(list(s.y_true), list(weighted_predictions(s, m)), s.labels))

    best = score(multipliers)
    for _ in range(rounds):
        for label in s.labels:
            if label == anchor:
                continue
            for value in grid:
                trial = {**multipliers, label: float(value)}
                result = score(trial)
                if result > best + 1e-9:
                    best, multipliers = result, trial
    return {k: v for k, v in multipliers.items() if v != 1.0}
