"""Estimators of our own, following scikit-learn conventions (learned attributes end in ``_``).

:class:`PrunedLinear` fits a linear classifier, then keeps only the ``keep``
largest-magnitude weights per class, stored as a float32 sparse matrix. With 151
CLINC intents and ~65,000 n-gram features a dense model is 9–16 MB; pruned to
3,000 weights per class it is ~2.7 MB with the same accuracy (measured:
/bench and README "Classifier quality"). It exposes ``decision_function``, which
``CalibratedClassifierCV`` calibrates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted


class PrunedLinear(ClassifierMixin, BaseEstimator):
    """A linear classifier with at most ``keep`` non-zero weights per class (None keeps all)."""

    def __init__(self, estimator: Any = None, keep: int | None = 3000):
        self.estimator = estimator
        self.keep = keep

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "PrunedLinear":
        if self.estimator is None:
            raise ValueError("PrunedLinear needs an estimator with coef_ and intercept_ (e.g. LinearSVC)")
        model = clone(self.estimator)
        if sample_weight is not None:
            model.fit(X, y, sample_weight=sample_weight)
        else:
            model.fit(X, y)
        weights = np.asarray(model.coef_, dtype=np.float64)
        if self.keep is not None and self.keep < weights.shape[1]:
            weights = weights.copy()
            magnitude = np.abs(weights)
            cut = np.partition(magnitude, weights.shape[1] - self.keep, axis=1)[:, weights.shape[1] - self.keep]
            weights[magnitude < cut[:, None]] = 0.0
        self.coef_ = sp.csr_matrix(weights.astype(np.float32))
        self.intercept_ = np.asarray(model.intercept_, dtype=np.float32).ravel()
        self.classes_ = model.classes_
        self.n_features_in_ = weights.shape[1]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        scores = X @ self.coef_.T
        scores = scores.toarray() if sp.issparse(scores) else np.asarray(scores)
        scores = scores + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict(self, X: Any) -> np.ndarray:
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[scores.argmax(axis=1)]


class FusedLinear(ClassifierMixin, BaseEstimator):
    """Two calibrated heads fused by a weighted geometric mean of their probabilities.

    The last ``sentence_columns`` columns of X (the sentence vectors) feed ``sentence_head``,
    the rest (the n-gram TF-IDF) feed ``ngram_head``; ``predict_proba`` is
    ``p_ngram^(1-alpha) · p_sentence^alpha``, renormalised. ``alpha`` is chosen on
    validation data per task (README "Classifier quality").

    With ``coverage_floor`` set, the column just before the sentence vectors is the text's
    token coverage (:class:`classifiers.features.TokenCoverage`) and the n-gram head's weight is
    ``(1-alpha) · min(1, coverage / coverage_floor)``: a text whose words the n-gram features
    have never seen (a Japanese message to a model trained on English) is judged by the
    multilingual sentence head, and a text covered at least ``coverage_floor`` as usual.

    With ``context_columns`` set (and a ``context_head`` and ``context_floor`` ≤ ``coverage_floor``), the
    columns just before the sentence vectors are the full network's vectors of the texts whose coverage is
    below ``context_floor`` (:class:`classifiers.contextual.ContextVectors`, after the coverage column), and
    for those texts ``context_head``'s probabilities stand in for the static sentence head's: they are the
    texts decided by meaning (a language the model was not trained in), and the full network reads word order.

    With ``n_jobs`` > 1, ``fit`` fits the heads together: the calibrated linear SVM heads' folds and final fits
    as one list of tasks in that many worker processes, the sentence head in this process meanwhile
    (:func:`classifiers.calibrated_fits.fit_heads`; the same model as ``n_jobs=1``, bit for bit).
    """

    # models saved before these parameters existed fuse as before (and were fitted in one process)
    coverage_floor: float | None = None
    context_head: Any = None
    context_columns: int = 0
    context_floor: float | None = None
    n_jobs: int = 1

    def __init__(
        self,
        ngram_head: Any = None,
        sentence_head: Any = None,
        sentence_columns: int = 512,
        alpha: float = 0.5,
        coverage_floor: float | None = None,
        context_head: Any = None,
        context_columns: int = 0,
        context_floor: float | None = None,
        n_jobs: int = 1,
    ):
        self.ngram_head = ngram_head
        self.sentence_head = sentence_head
        self.sentence_columns = sentence_columns
        self.alpha = alpha
        self.coverage_floor = coverage_floor
        self.context_head = context_head
        self.context_columns = context_columns
        self.context_floor = context_floor
        self.n_jobs = n_jobs

    def _split(self, X: Any) -> tuple[Any, np.ndarray, np.ndarray | None, Any]:
        """X -> n-gram block, sentence vectors, coverage (or None), full-network vectors (sparse, or None)."""
        X = sp.csr_matrix(X) if not sp.issparse(X) else X.tocsr()
        cut = X.shape[1] - self.sentence_columns
        # float64 for the sentence head: its fit (X^T X) and scores then do not depend on how many BLAS
        # threads run them (float32 sums differ by thread count; a rebuilt model must predict the same)
        sentences = np.asarray(X[:, cut:].toarray(), dtype=np.float64)
        if self.coverage_floor is None:
            return X[:, :cut], sentences, None, None
        context = None
        if self.context_columns:
            context = X[:, cut - self.context_columns : cut]
            cut -= self.context_columns
        coverage = np.asarray(X[:, cut - 1].toarray(), dtype=np.float64).ravel()
        return X[:, : cut - 1], sentences, coverage, context

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "FusedLinear":
        if self.ngram_head is None or self.sentence_head is None:
            raise ValueError("FusedLinear needs an ngram_head and a sentence_head")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.coverage_floor is not None and not 0.0 < self.coverage_floor <= 1.0:
            raise ValueError(f"coverage_floor must be in (0, 1], got {self.coverage_floor}")
        if self.context_columns and (
            self.context_head is None or self.coverage_floor is None or not self.context_floor
        ):
            raise ValueError("context_columns needs a context_head, a coverage_floor and a context_floor")
        ngrams, sentences, _, context = self._split(X)
        heads = [(self.ngram_head, ngrams), (self.sentence_head, sentences)]
        if context is not None:  # every training text has its full-network vector (ContextVectors.fit_transform)
            heads.append((self.context_head, np.asarray(context.toarray(), np.float64)))
        if self.n_jobs > 1:  # the heads' linear SVM fits in worker processes, all at once
            from classifiers.calibrated_fits import fit_heads

            fitted = fit_heads(heads, y, sample_weight, self.n_jobs)
        else:
            extra = {} if sample_weight is None else {"sample_weight": sample_weight}
            fitted = [clone(head).fit(features, y, **extra) for head, features in heads]
        self.ngram_head_, self.sentence_head_ = fitted[:2]
        if list(self.ngram_head_.classes_) != list(self.sentence_head_.classes_):
            raise ValueError("the two heads learned different classes")
        if context is not None:
            self.context_head_ = fitted[2]
            if list(self.context_head_.classes_) != list(self.ngram_head_.classes_):
                raise ValueError("the context head learned different classes")
        self.classes_ = self.ngram_head_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "classes_")
        ngrams, sentences, coverage, context = self._split(X)
        sentence_proba = self.sentence_head_.predict_proba(sentences)
        if context is not None and coverage is not None:
            low = self.below_floor(coverage)
            if len(low):
                vectors = np.asarray(context[low].toarray(), dtype=np.float64)
                sentence_proba[low] = self.context_head_.predict_proba(vectors)
        return self.fuse(self.ngram_head_.predict_proba(ngrams), sentence_proba, coverage)

    def below_floor(self, coverage: np.ndarray) -> np.ndarray:
        """The rows the full network's head answers for (coverage below the floor), when there is one."""
        if not self.context_columns or self.context_floor is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(np.asarray(coverage, dtype=np.float64) < self.context_floor)

    def fuse(
        self, ngram_proba: np.ndarray, sentence_proba: np.ndarray, coverage: np.ndarray | None = None
    ) -> np.ndarray:
        """The two heads' probabilities (and the texts' token coverage) -> the fused probabilities."""
        if coverage is None or self.coverage_floor is None:
            low = np.log(np.clip(ngram_proba, 1e-12, 1.0)) * (1.0 - self.alpha)
            low += np.log(np.clip(sentence_proba, 1e-12, 1.0)) * self.alpha
        else:
            ngram_weight = (1.0 - self.alpha) * np.clip(coverage / self.coverage_floor, 0.0, 1.0)[:, None]
            low = np.log(np.clip(ngram_proba, 1e-12, 1.0)) * ngram_weight
            low += np.log(np.clip(sentence_proba, 1e-12, 1.0)) * (1.0 - ngram_weight)
        low -= low.max(axis=1, keepdims=True)
        proba = np.exp(low)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class TwoStageLinear(ClassifierMixin, BaseEstimator):
    """A head over every label, and a second head that only separates the labels other than ``gate``.

    ``first`` is fitted on every row; ``second`` only on the rows whose label is not ``gate`` (for
    Davidson: hate vs offensive on the offensive-or-hate rows, where the two are hardest to tell apart
    and the first head's one-vs-rest fits spend their capacity on the majority). ``predict_proba`` keeps the
    first head's probability of ``gate`` and shares the rest by the second head's probabilities:
    ``p(gate) = first(gate)``, ``p(c) = (1 - first(gate)) · second(c)`` for every other label ``c``.
    Both heads read the same features, so the shared pass scores them in one product (README
    "Classifier quality": Davidson hate F1 on train's out-of-fold predictions 0.453 → 0.479).
    """

    def __init__(self, first: Any = None, second: Any = None, gate: str | None = None):
        self.first = first
        self.second = second
        self.gate = gate

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "TwoStageLinear":
        if self.first is None or self.second is None or self.gate is None:
            raise ValueError("TwoStageLinear needs a first head, a second head and a gate label")
        y = np.asarray(y)
        labels = np.unique(y)
        if self.gate not in labels:
            raise ValueError(f"the gate label {self.gate!r} is not among the training labels {labels.tolist()}")
        if len(labels) < 3:
            raise ValueError(f"TwoStageLinear needs at least two labels besides the gate label, got {labels.tolist()}")
        rest = np.flatnonzero(y != self.gate)
        first_extra = {} if sample_weight is None else {"sample_weight": sample_weight}
        second_extra = {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight)[rest]}
        X = sp.csr_matrix(X) if not sp.issparse(X) else X.tocsr()
        self.first_ = clone(self.first).fit(X, y, **first_extra)
        self.second_ = clone(self.second).fit(X[rest], y[rest], **second_extra)
        self.classes_ = self.first_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def combine(self, first_proba: np.ndarray, second_proba: np.ndarray) -> np.ndarray:
        """The two heads' probabilities -> the probabilities over every label."""
        classes = list(self.classes_)
        gate = classes.index(self.gate)
        keep = 1.0 - first_proba[:, gate]
        proba = np.empty_like(first_proba)
        proba[:, gate] = first_proba[:, gate]
        for column, label in enumerate(self.second_.classes_):
            proba[:, classes.index(label)] = keep * second_proba[:, column]
        return proba

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "classes_")
        return self.combine(self.first_.predict_proba(X), self.second_.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
