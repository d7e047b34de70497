"""``replyguard eval``: measure a classifier on a labelled file and choose its thresholds.

Without ``model``, a model is trained on the file's train split with the task's
default configuration; with it, the artifact is evaluated as is. Thresholds are
chosen on the val split (carved, stratified, from train when the file has none)
and never on test; every reported figure is computed on test.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.build import DEFAULT_CONFIGS, ModelConfig, fit, fitted_config
from classifiers.datasets import Dataset, carve, read_dataset, with_splits
from classifiers.persistence import LoadedModel, load_artifact
from classifiers.registry import ModelRegistry
from eval import metrics
from eval.thresholds import (
    Scored,
    auto_mask,
    choose_class_multipliers,
    choose_reject_threshold,
    choose_thresholds,
    curve,
    outcome,
    reject_predictions,
    weighted_predictions,
)
from worker.exceptions import ConfigError

#: Labels with an automatic action, per task (intent: every label but out-of-scope).
ACTION_LABELS = {"spam": {"spam"}, "abuse": {"hate", "offensive"}}
#: Labels of a team's spam/abuse data that mean "nothing to act on": never treated as action labels.
NEGATIVE_LABELS = frozenset(
    {"0", "false", "no", "ham", "neither", "none", "ok", "clean", "normal", "negative", "benign", "legit", "legitimate"}
    # ... as a Japanese team writes them: normal, usual, no problem, none, ham, not spam, safe
    | {"正常", "通常", "問題なし", "なし", "ハム", "非スパム", "スパムではない", "安全"}
)
#: ... and label prefixes that mean the same (not_hate, non-spam, no_abuse).
NEGATIVE_PREFIXES = ("not_", "not-", "not ", "non_", "non-", "non ", "no_", "no-")
#: A binary task's own labels, (act on it, nothing to act on) ...
BINARY_TASK_LABELS = {"spam": ("spam", "ham")}
#: ... and the pairs a team's (or a public set's) binary data often says them with, read as those labels.
BINARY_PAIRS = (("1", "0"), ("true", "false"), ("yes", "no"))
#: Extra precision demanded on validation data when choosing thresholds, to absorb the
#: difference between val and test (measured in README "Classifier quality").
DEFAULT_MARGIN = 0.0
#: Out-of-scope share of real traffic assumed when choosing the auto-reply threshold (a planning
#: prior: validation sets hold far fewer out-of-scope messages than traffic does).
DEFAULT_OOS_SHARE = 0.25
#: In-scope accuracy (absolute) the out-of-scope reject threshold may cost on val.
REJECT_BUDGET = 0.01
#: Val rows of out-of-scope, and of in-scope labels, below which no reject threshold is chosen (the report
#: says why, and its in-scope / out-of-scope figures take the top label as it is).
REJECT_MIN_OOS_VAL = 5
REJECT_MIN_IN_SCOPE_VAL = 20
#: Class multipliers are searched on val only for tasks with at most this many labels.
MAX_LABELS_FOR_MULTIPLIERS = 10
WORST_ERRORS = 25


@dataclass
class Evaluation:
    report: dict[str, Any]
    estimator: Any
    val: Scored
    test: Scored
    texts_test: list[str]


def is_negative_label(label: str) -> bool:
    """Whether a team's label reads as "nothing to act on" (``0``, ``ham``, ``not_hate``, ``clean``, ...)."""
    folded = label.strip().casefold()
    return folded in NEGATIVE_LABELS or folded.startswith(NEGATIVE_PREFIXES)


def binary_labels(task: str, dataset: Dataset) -> Dataset:
    """``dataset`` with a binary task's ``1`` / ``0`` (``true`` / ``false``, ``yes`` / ``no``, any case) read as
    its own labels (spam / ham), the renaming kept in ``relabelled``; ``dataset`` itself when there is none
    (another task, other labels, or a mix such as 1 / 0 / 2)."""
    if task not in BINARY_TASK_LABELS:
        return dataset
    folded = {label: label.strip().casefold() for label in dataset.label_set}
    for pair in BINARY_PAIRS:
        if folded and set(folded.values()) <= set(pair):
            own = dict(zip(pair, BINARY_TASK_LABELS[task], strict=True))
            mapping = {label: own[f] for label, f in folded.items()}
            examples = [replace(e, label=mapping[e.label]) for e in dataset.examples]
            return replace(dataset, examples=examples, relabelled={**dataset.relabelled, **mapping})
    return dataset


def _positive(task: str, labels: list[str], oos_label: str | None) -> set[str]:
    if task in ACTION_LABELS:
        # the task's own labels; else a team's (1 / 0, toxic / clean): every label that is not a negative one
        return (
            ACTION_LABELS[task] & set(labels)
            or {label for label in labels if not is_negative_label(label)}
            or set(labels)
        )
    return set(labels) - {oos_label}


def _speed(estimator: Any, texts: list[str], seconds: float = 1.0) -> float:
    """Messages per second of predict_proba on one thread (repeats the texts for ~``seconds``)."""
    sample = (texts * (1 + 2000 // max(1, len(texts))))[:2000]
    estimator.predict_proba(sample[:100])  # warm up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        estimator.predict_proba(sample)
        done += len(sample)
    return done / (time.perf_counter() - started)


def resolve_model(spec: Path | str | LoadedModel, models_dirs: list[Path] | None = None) -> LoadedModel:
    """A model given as a loaded model, a path to an artifact directory, or a registry name (``spam-default``)."""
    if isinstance(spec, LoadedModel):
        return spec
    path = Path(spec)
    if path.is_dir() or "/" in str(spec) or path.is_absolute():
        return load_artifact(path)
    return ModelRegistry(models_dirs).get(str(spec))


def evaluate(
    task: str,
    data: Path | str | Dataset,
    *,
    model: Path | str | LoadedModel | None = None,
    target_precision: float = 0.98,
    oos_label: str | None = None,
    config: ModelConfig | None = None,
    margin: float = DEFAULT_MARGIN,
    oos_share: float | None = None,
    measure_speed: bool = True,
    models_dirs: list[Path] | None = None,
) -> Evaluation:
    """Evaluate ``task`` on ``data``. ``oos_share``: the out-of-scope share of real traffic to plan the
    auto-reply threshold for (default 0.25 when there is an out-of-scope label; see eval.thresholds)."""
    if not 0.5 <= target_precision < 1.0:
        raise ConfigError(f"--target-precision must be in [0.5, 1), got {target_precision}")
    dataset = binary_labels(task, data if isinstance(data, Dataset) else read_dataset(data))
    ds = with_splits(dataset)
    if model is not None and not ds.split("val") and not ds.split("train"):
        # a test-only file and a ready model: thresholds come from a stratified 20 % of it, figures from the rest
        examples = carve(ds.split("test"), 0.2, 42, "val")
        ds = replace(
            ds,
            examples=examples,
            carved={**ds.carved, "val": "stratified 20% of the test rows (the file has no train/val), seed 42"},
        )
    train_rows, val_rows, test_rows = ds.split("train"), ds.split("val"), ds.split("test")
    if model is None and not train_rows:
        raise ConfigError(f"{dataset.path} has no train rows to train on (pass --model to evaluate an artifact)")
    if not test_rows or not val_rows:
        raise ConfigError(f"{dataset.path} needs test and val rows (val may be carved from train)")
    notes: list[str] = [f"labels {dataset.relabelled_text()}"] if dataset.relabelled else []
    if dataset.empty_lines:
        notes.append(dataset.empty_text())
    overlaps = ds.overlaps()
    notes += overlaps.notes()
    model_ref: str | None = None
    started = time.perf_counter()
    if model is None:
        try:
            fit_config, note = fitted_config(config or DEFAULT_CONFIGS[task], [e.label for e in train_rows])
        except ConfigError as exc:
            raise ConfigError(f"{dataset.path}: {exc}") from exc
        if note:
            notes.append(note)
        estimator = fit(
            fit_config, [e.text for e in train_rows], [e.label for e in train_rows], [e.weight for e in train_rows]
        )
        train_seconds: float | None = time.perf_counter() - started
        labels = [str(c) for c in estimator.classes_]
        source = "trained on the train split"
    else:
        loaded = resolve_model(model, models_dirs)
        if loaded.task != task:
            raise ConfigError(f"{loaded.path} is a {loaded.task!r} model, not {task!r}")
        estimator, labels, train_seconds = loaded.estimator, loaded.labels, None
        oos_label = oos_label or loaded.manifest.out_of_scope_label
        source = f"artifact {loaded.ref}"
        model_ref = loaded.ref
    if oos_label and oos_label not in labels:
        raise ConfigError(f"out-of-scope label {oos_label!r} is not one of the model's labels {labels}")
    unknown = sorted({e.label for e in ds.examples} - set(labels))
    if unknown:
        raise ConfigError(
            f"{dataset.path} has labels {unknown} that {model_ref or 'the trained model'} does not know "
            f"(its labels: {labels}); rename them in the data or evaluate another model"
        )

    val = Scored.from_proba(estimator.predict_proba([e.text for e in val_rows]), labels, [e.label for e in val_rows])
    texts_test = [e.text for e in test_rows]
    test = Scored.from_proba(estimator.predict_proba(texts_test), labels, [e.label for e in test_rows])
    positive = _positive(task, labels, oos_label)
    if oos_label and oos_share is None:
        oos_share = DEFAULT_OOS_SHARE
    threshold, per_label_t = choose_thresholds(
        val, positive, target_precision, margin=margin, oos_label=oos_label, oos_share=oos_share
    )
    global_mask = auto_mask(test, positive, {}, threshold)
    mask = auto_mask(test, positive, per_label_t, threshold)
    summary = metrics.summary(list(test.y_true), test.proba, labels)
    at_threshold = outcome(test, mask)
    per_label: dict[str, dict[str, Any]] = summary["per_label"]
    for label, row in per_label.items():
        rows = mask & (test.pred == label)
        truth = test.y_true == label
        row["threshold"] = per_label_t.get(label, threshold) if label in positive else None
        row["auto_precision"] = float(test.correct[rows].mean()) if rows.sum() else None
        row["auto_recall"] = float((rows & truth).sum() / truth.sum()) if truth.sum() else None
    report: dict[str, Any] = {
        "task": task,
        "data": {
            "path": str(dataset.path),
            "sha256": dataset.sha256,
            "carved": ds.carved,
            "relabelled": dataset.relabelled,
            "shared_texts": {split: {"rows": n, "of": rows} for split, (n, rows) in overlaps.shared.items()},
            "conflicting_labels": len(overlaps.conflicting),
        },
        "model": source,
        "model_ref": model_ref,
        "notes": notes,
        "n_train": len(train_rows),
        "n_val": len(val_rows),
        "n_test": len(test_rows),
        "labels": labels,
        "action_labels": sorted(positive),
        "oos_label": oos_label,
        "accuracy": summary["accuracy"],
        "macro_f1": summary["macro_f1"],
        "per_label": per_label,
        "ece": summary["ece"],
        "target_precision": target_precision,
        "threshold": threshold,
        "per_label_thresholds": per_label_t,
        "threshold_margin": margin,
        "coverage": at_threshold["coverage"],
        "achieved_precision": at_threshold["precision"],
        "auto_errors": at_threshold["errors"],
        "global_threshold_only": outcome(test, global_mask),
        "val_at_threshold": outcome(val, auto_mask(val, positive, per_label_t, threshold)),
        "train_seconds": train_seconds,
        "predict_per_second": None,
        "curve": curve(test, positive),
        "val_curve": curve(val, positive),
        "reliability": metrics.reliability_bins(test.conf, test.correct),
        "confusion": metrics.confusion(list(test.y_true), list(test.pred), labels).tolist(),
        "worst_errors": _worst_errors(test, texts_test),
    }
    if oos_label:
        # classification with a reject option: below the val-chosen threshold, predict out-of-scope
        reject = choose_reject_threshold(
            val, oos_label, budget=REJECT_BUDGET, min_oos=REJECT_MIN_OOS_VAL, min_in_scope=REJECT_MIN_IN_SCOPE_VAL
        )
        pred = test.pred if reject.threshold is None else reject_predictions(test, oos_label, reject.threshold)
        in_scope = test.y_true != oos_label
        report["reject_threshold"] = reject.threshold
        report["reject_threshold_not_chosen"] = reject.why_not
        if reject.why_not:
            notes.append(f"out-of-scope reject threshold not chosen: {reject.why_not}")
        report["in_scope_accuracy"] = (
            float((pred[in_scope] == test.y_true[in_scope]).mean()) if in_scope.any() else None
        )
        report["oos_recall"] = float((pred[~in_scope] == oos_label).mean()) if (~in_scope).any() else None
        report["in_scope_accuracy_argmax"] = float(test.correct[in_scope].mean()) if in_scope.any() else None
        report["oos_recall_argmax"] = float((test.pred[~in_scope] == oos_label).mean()) if (~in_scope).any() else None
        report["assumed_oos_share"] = oos_share
    elif len(labels) <= MAX_LABELS_FOR_MULTIPLIERS:
        # class-prior adjustment chosen on val (e.g. Davidson's rare hate class); argmax figures stay above
        multipliers = choose_class_multipliers(val)
        tuned_pred = weighted_predictions(test, multipliers)
        table = metrics.per_label(list(test.y_true), list(tuned_pred), labels)
        report["tuned"] = {
            "class_multipliers": multipliers,
            "accuracy": metrics.accuracy(list(test.y_true), list(tuned_pred)),
            "macro_f1": metrics.macro_f1(table),
            "per_label_f1": {k: v["f1"] for k, v in table.items()},
        }
    if measure_speed:
        report["predict_per_second"] = _single_thread(lambda: _speed(estimator, texts_test))
    return Evaluation(report=report, estimator=estimator, val=val, test=test, texts_test=texts_test)


def _single_thread(fn):
    """Run ``fn`` with BLAS/OpenMP limited to one thread (threadpoolctl ships with scikit-learn)."""
    from threadpoolctl import threadpool_limits

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with threadpool_limits(limits=1):
        return fn()


def _worst_errors(s: Scored, texts: list[str]) -> list[dict[str, Any]]:
    wrong = np.nonzero(~s.correct)[0]
    worst = wrong[np.argsort(-s.conf[wrong], kind="stable")][:WORST_ERRORS]
    out = []
    for i in worst:
        top3 = np.argsort(-s.proba[i])[:3]
        out.append(
            {
                "text": texts[i][:300],
                "true": s.y_true[i],
                "predicted": s.pred[i],
                "confidence": float(s.conf[i]),
                "top": [{"label": s.labels[j], "p": float(s.proba[i, j])} for j in top3],
            }
        )
    return out
