"""Fitting a fused model's heads together, their linear SVM fits spread over worker processes.

scikit-learn's ``CalibratedClassifierCV(ensemble=False).fit`` runs its calibration folds through joblib
(``n_jobs``) and then the final fit on all rows in the calling process, alone. Fitted one head after
another that way, a model with two such heads (the intent default: the n-gram head and the full network's
head, six liblinear fits each, 10-30 s apiece for CLINC150) leaves a core idle through both final fits and
whenever a head's last fold runs alone. :func:`fit_heads` runs every calibrated head's fits as one list of
tasks over ``n_jobs`` processes, the largest first, fits the other heads (the sentence head's logistic
regression) in this process meanwhile, and assembles each calibrated head as ``CalibratedClassifierCV.fit``
does: the same folds, the same fits, the calibrator fitted on the same out-of-fold decision values in the
same order. liblinear seeds its process-global random generator at every fit, so a fit gives the same
weights in any process, and the model is the one the heads' own ``fit`` gives, bit for bit
(``tests/test_training_processes.py``).

It calls the two private functions of scikit-learn that ``CalibratedClassifierCV.fit`` itself calls for
this (``_fit_and_predict``: a fold's fit and decision values, ``_fit_calibrator``); the pinned minor version
(pyproject.toml) and that test hold them to it. Only the heads whose calibration folds the config already runs in processes
(``n_jobs``) and whose estimator is a linear SVM are split; any other head (the sentence head, a head
scikit-learn would refuse or warn about) is fitted as it is, in this process.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from inspect import signature
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV, _fit_calibrator
from sklearn.model_selection import check_cv
from sklearn.model_selection._validation import _fit_and_predict
from sklearn.preprocessing import LabelEncoder
from sklearn.svm import LinearSVC
from sklearn.utils._array_api import get_namespace_and_device
from sklearn.utils import indexable
from sklearn.utils.validation import _check_sample_weight


@dataclass
class _Split:
    """One calibrated head's work: its folds' fits and the final fit, as ``CalibratedClassifierCV.fit`` does them."""

    head: CalibratedClassifierCV
    X: Any
    y: Any  # as the final fit and the calibrator see it (label-encoded for temperature scaling)
    y_folds: np.ndarray  # as cross_val_predict gives it to the folds
    classes: np.ndarray
    splits: list[tuple[np.ndarray, np.ndarray]]
    fit_params: dict[str, Any]
    sample_weight: Any

    def tasks(self) -> list[tuple[float, Any, tuple[Any, ...]]]:
        """(size, function, arguments) of the final fit and each fold; size: the rows' stored values."""
        stored = self.X.nnz if sp.issparse(self.X) else np.prod(self.X.shape)
        estimator = self.head.estimator
        final = (float(stored), _final_fit, (clone(estimator), self.X, self.y, self.fit_params))
        folds = [
            (
                float(stored) * len(train) / len(self.y_folds),
                _fit_and_predict,
                (clone(estimator), self.X, self.y_folds, train, test, self.fit_params, "decision_function"),
            )
            for train, test in self.splits
        ]
        return [final, *folds]

    def assemble(self, fitted: Any, fold_scores: list[np.ndarray]) -> CalibratedClassifierCV:
        """The fitted head from the final fit and the folds' decision values (cross_val_predict's order)."""
        test_indices = np.concatenate([test for _, test in self.splits])
        inverse = np.empty(len(test_indices), dtype=int)
        inverse[test_indices] = np.arange(len(test_indices))
        predictions = np.concatenate(fold_scores)[inverse]
        if self.classes.shape[0] == 2:
            predictions = predictions.reshape(-1, 1)
        sample_weight = self.sample_weight
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, predictions, dtype=predictions.dtype)
        xp, _, _ = get_namespace_and_device(self.X)
        head = self.head
        head.classes_ = self.classes
        head.calibrated_classifiers_ = [
            _fit_calibrator(fitted, predictions, self.y, self.classes, head.method, xp=xp, sample_weight=sample_weight)
        ]
        if hasattr(fitted, "n_features_in_"):
            head.n_features_in_ = fitted.n_features_in_
        if hasattr(fitted, "feature_names_in_"):
            head.feature_names_in_ = fitted.feature_names_in_
        return head


def _final_fit(estimator: Any, X: Any, y: Any, fit_params: dict[str, Any]) -> Any:
    return estimator.fit(X, y, **fit_params)


def _liblinear(estimator: Any) -> bool:
    """Whether ``estimator`` is a linear SVM (:class:`~classifiers.estimators.PrunedLinear` over one or bare):
    liblinear uses no BLAS, so its weights do not depend on a process's BLAS threads either (a logistic
    regression's or a ridge's do, in the last bits: they stay in this process, where they always ran)."""
    from classifiers.estimators import PrunedLinear

    if isinstance(estimator, PrunedLinear):
        estimator = estimator.estimator
    return isinstance(estimator, LinearSVC)


def _split(head: Any, X: Any, y: Any, sample_weight: Any) -> _Split | None:
    """``head``'s work as ``CalibratedClassifierCV.fit`` would do it, or None to let it fit itself."""
    if not isinstance(head, CalibratedClassifierCV) or head.ensemble is not False or not hasattr(head.cv, "split"):
        return None
    estimator = head.estimator
    if not _liblinear(estimator) or (head.n_jobs or 1) <= 1:
        return None
    supports_weight = "sample_weight" in signature(estimator.fit).parameters
    if sample_weight is not None and not supports_weight:
        return None  # scikit-learn warns about this; let it
    head = clone(head)
    X, y = indexable(X, y)
    encoder = LabelEncoder().fit(y)
    classes = encoder.classes_
    if head.method == "temperature" and isinstance(y[0], str):
        y = encoder.transform(y)
    counts = np.unique(np.asarray(y), return_counts=True)[1]
    if (counts < head.cv.get_n_splits()).any():
        return None  # too few rows of a label for the folds: scikit-learn says so
    splits = list(check_cv(head.cv, y, classifier=True).split(X, y))
    return _Split(
        head=head,
        X=X,
        y=y,
        y_folds=LabelEncoder().fit_transform(np.asarray(y)),
        classes=classes,
        splits=splits,
        fit_params={} if sample_weight is None else {"sample_weight": sample_weight},
        sample_weight=sample_weight,
    )


def fit_heads(heads: list[tuple[Any, Any]], y: Any, sample_weight: Any, n_jobs: int) -> list[Any]:
    """Each ``(unfitted head, its features)`` fitted on ``y`` (clones; the heads given stay unfitted).

    The calibrated heads' fits run in ``n_jobs`` worker processes, the largest first (a fold before a smaller
    head's final fit), while this process fits the other heads; then each calibrated head is assembled."""
    from joblib import Parallel, delayed

    extra = {} if sample_weight is None else {"sample_weight": sample_weight}
    splits = [_split(head, X, y, sample_weight) for head, X in heads]
    owners: list[tuple[int, int]] = []  # (head, 0 for its final fit / 1 + fold) of each task
    tasks: list[tuple[float, Any, tuple[Any, ...]]] = []
    for index, split in enumerate(splits):
        if split is not None:
            for part, task in enumerate(split.tasks()):
                owners.append((index, part))
                tasks.append(task)
    order = sorted(range(len(tasks)), key=lambda t: -tasks[t][0])
    fitted: list[Any] = [None] * len(heads)
    results: dict[int, Any] = {}
    with ThreadPoolExecutor(max_workers=1) as here:
        alongside = {
            index: here.submit(_fit_one, heads[index][0], heads[index][1], y, extra)
            for index, split in enumerate(splits)
            if split is None
        }
        done = Parallel(n_jobs=n_jobs, batch_size=1, pre_dispatch="all", return_as="generator")(
            delayed(tasks[t][1])(*tasks[t][2]) for t in order
        )
        for t, result in zip(order, done, strict=True):
            results[t] = result
            # a head whose fits are all back is assembled (its calibrator fitted) while the others' run
            index = owners[t][0]
            mine = [u for u in range(len(tasks)) if owners[u][0] == index]
            split = splits[index]
            if split is not None and all(u in results for u in mine):
                fitted[index] = split.assemble(results[mine[0]], [results[u] for u in mine[1:]])
        for index, future in alongside.items():
            fitted[index] = future.result()
    return fitted


def _fit_one(head: Any, X: Any, y: Any, extra: dict[str, Any]) -> Any:
    return clone(head).fit(X, y, **extra)
