"""Building and training classifier pipelines.

Every model is a scikit-learn :class:`~sklearn.pipeline.Pipeline`::

    TextNormalizer -> FeatureUnion(char n-gram TF-IDF, word n-gram TF-IDF[, sentence embeddings])
                   -> CalibratedClassifierCV(PrunedLinear(LinearSVC), temperature scaling)

Character n-grams carry Japanese (no spaces between words) as well as English;
word n-grams use a token pattern that treats every CJK character as a token.
:class:`ModelConfig` holds every hyperparameter and is stored in the artifact's
manifest, so a model can be rebuilt exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from classifiers.datasets import Dataset, Example, with_splits
from classifiers.estimators import FusedLinear, PrunedLinear, TwoStageLinear
from classifiers.features import CompactTfidfVectorizer, TokenCoverage
from classifiers.persistence import Manifest, TrainingSource, save_artifact
from classifiers.text import TOKEN_PATTERN, TextNormalizer
from classifiers import metrics
from classifiers.errors import ConfigError

SEED = 42
#: Worker processes for calibration folds when training (REPLYGUARD_TRAINING_PROCESSES; default: up to 2 cores).
TRAINING_PROCESSES = int(os.environ.get("REPLYGUARD_TRAINING_PROCESSES") or min(2, os.cpu_count() or 1))
#: Training data smaller than this fits in one process.
PARALLEL_ROWS = 5_000
#: Below this token coverage an intent model runs the full network (classifiers.contextual). On a dev half of
#: the starter pack's cross-lingual split 0.3 and 0.5 tie (86.4 / 88.2 % EN->JA / JA->EN; 0.2: 86.4 / 87.3 %),
#: and 0.3 sends 3-5 % of English test traffic to the network instead of 5-17 % (README "Classifier quality").
CONTEXT_FLOOR = 0.3


def _fits(value: Any, annotation: str) -> bool:
    """Whether a JSON value fits a ModelConfig field's annotation (``int | None``, ``tuple[int, int]``, ...)."""
    for option in (part.strip() for part in annotation.split("|")):
        if option == "None" and value is None:
            return True
        if option == "bool" and isinstance(value, bool):
            return True
        if isinstance(value, bool):
            continue  # true/false is not a number
        if option == "int" and isinstance(value, int):
            return True
        if option == "float" and isinstance(value, (int, float)):
            return True
        if option == "str" and isinstance(value, str):
            return True
        if option == "tuple[int, int]" and isinstance(value, tuple) and len(value) == 2:
            if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                return True
    return False


@dataclass(frozen=True)
class ModelConfig:
    """Every hyperparameter of a replyguard text classifier."""

    char_ngrams: tuple[int, int] = (2, 5)
    char_min_df: int = 2
    char_max_features: int | None = None
    word_ngrams: tuple[int, int] = (1, 2)
    word_min_df: int = 2
    word_max_features: int | None = None
    classifier: str = "linear_svc"  # linear_svc | logreg
    C: float = 1.0
    class_weight: str | None = None  # None | "balanced"
    keep: int | None = None  # non-zero weights kept per class (None: all)
    calibration: str = "temperature"  # temperature | sigmoid | isotonic
    calibration_folds: int = 5
    replace_urls: bool = True
    replace_mentions: bool = True
    replace_emails: bool = True
    replace_phones: bool = True
    embeddings: str | None = None  # optional extra: a sentence-embedding model, e.g. "all-MiniLM-L6-v2"
    embedding_weight: float = 2.0
    sentence_weight: float | None = None  # fuse a head on the multilingual sentence vectors with this weight (0-1)
    sentence_ridge: float = 1.0  # ridge regularisation of the sentence head
    # the sentence head: None (ridge, temperature calibrated) | "logreg" (multinomial logistic regression with
    # C = sentence_C, its own probabilities; the fusion weight is its temperature, chosen on val)
    sentence_head: str | None = None
    sentence_C: float | None = None
    # the n-gram head's fused weight scales down below this token coverage (FusedLinear); None: fixed weight
    coverage_floor: float | None = None
    # below this token coverage a head on the full network's vectors answers instead of the static sentence head
    # (classifiers.contextual; needs sentence_weight and coverage_floor, and is at most coverage_floor)
    context_floor: float | None = None
    # a second head separates the labels other than this one, trained on their rows only (TwoStageLinear;
    # abuse: "neither", so hate vs offensive gets a head of its own), with C = second_stage_C
    second_stage: str | None = None
    second_stage_C: float | None = None

    #: Keys added after models were shipped: left out of ``to_dict`` (and so of the version hash) while unset,
    #: so that a model that does not use them keeps its version.
    LATER_KEYS: ClassVar[tuple[str, ...]] = (
        "coverage_floor",
        "context_floor",
        "sentence_head",
        "sentence_C",
        "second_stage",
        "second_stage_C",
    )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown model config key(s) {sorted(unknown)}; known: {sorted(known)}")
        clean: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        annotations = {f.name: str(f.type) for f in fields(cls)}
        wrong = [
            f"{key} = {value!r} (expected {annotations[key]})"
            for key, value in sorted(clean.items())
            if not _fits(value, annotations[key])
        ]
        if wrong:
            raise ConfigError(f"model config value(s) of the wrong type: {'; '.join(wrong)}")
        return cls(**clean)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in asdict(self).items()
            if not (k in self.LATER_KEYS and v is None)
        }


#: Default configuration per task. One recipe (word 1-2 + char_wb 2-5 TF-IDF, LinearSVC,
#: temperature scaling over 5 shuffled stratified folds); C and pruning were chosen on
#: validation data across CLINC150, SMS, Davidson and Bitext (README "Classifier quality").
#: The sentence head's fusion weight was chosen on val per task (README "Classifier quality"):
#: SMS 0.15, CLINC150 0.2; on Davidson every weight above 0 was worse on val, so abuse has none.
#: Intents weigh the n-gram head by token coverage (floor 0.5): trained on one language of the starter
#: pack and tested on the other, 0.3/0.5/0.7 gave 74-78 % on a dev half (35-45 % without it).
DEFAULT_CONFIGS: dict[str, ModelConfig] = {
    "spam": ModelConfig(C=1.0, replace_phones=False, sentence_weight=0.15),  # SMS spam's numbers are evidence
    # Not a two-stage head by default: second_stage="neither", second_stage_C=0.1 gains on Davidson (test hate F1
    # 0.448 -> 0.484, macro-F1 0.754 -> 0.765) but costs hate recall on the team-written held-out abuse rows
    # (README "Classifier quality"); `replyguard train --config` can turn it on for crowd-labelled data.
    "abuse": ModelConfig(C=0.3, keep=20_000),
    "intent": ModelConfig(
        C=1.0,
        keep=3_000,
        replace_mentions=False,
        sentence_weight=0.5,
        sentence_head="logreg",
        sentence_C=3.0,
        coverage_floor=0.5,
        context_floor=CONTEXT_FLOOR,
    ),
}


def make_pipeline(config: ModelConfig, processes: int = 1) -> Pipeline:
    """The unfitted pipeline for ``config``; ``processes``: worker processes for the linear SVMs' calibration folds."""
    char = CompactTfidfVectorizer(
        analyzer="char_wb",
        ngram_range=config.char_ngrams,
        min_df=config.char_min_df,
        max_features=config.char_max_features,
        sublinear_tf=True,
        lowercase=False,
        dtype=np.float32,
    )
    word = CompactTfidfVectorizer(
        analyzer="word",
        ngram_range=config.word_ngrams,
        min_df=config.word_min_df,
        max_features=config.word_max_features,
        sublinear_tf=True,
        lowercase=False,
        token_pattern=TOKEN_PATTERN,
        dtype=np.float32,
    )
    if config.classifier == "logreg":
        base: Any = LogisticRegression(C=config.C, max_iter=3000, class_weight=config.class_weight)
    elif config.classifier == "linear_svc":
        base = LinearSVC(C=config.C, class_weight=config.class_weight, random_state=SEED)
    else:
        raise ConfigError(f"unknown classifier {config.classifier!r} (logreg | linear_svc)")
    if config.calibration not in ("temperature", "sigmoid", "isotonic"):
        raise ConfigError(f"unknown calibration {config.calibration!r} (temperature | sigmoid | isotonic)")
    features: list[tuple[str, Any]] = [("char", char), ("word", word)]
    if config.embeddings:
        from classifiers.embeddings import embedding_features

        features.append(("embeddings", embedding_features(config.embeddings, config.embedding_weight)))
    folds = StratifiedKFold(n_splits=config.calibration_folds, shuffle=True, random_state=SEED)
    head: Any = CalibratedClassifierCV(
        PrunedLinear(base, keep=config.keep), method=config.calibration, cv=folds, ensemble=False, n_jobs=processes
    )
    if config.second_stage is not None:
        if config.sentence_weight:
            raise ConfigError("second_stage and sentence_weight cannot be combined (one or the other head shape)")
        if not config.second_stage_C or config.second_stage_C <= 0:
            raise ConfigError(f"second_stage needs a positive second_stage_C, got {config.second_stage_C}")
        second = LinearSVC(C=config.second_stage_C, class_weight=config.class_weight, random_state=SEED)
        head = TwoStageLinear(
            head,
            CalibratedClassifierCV(
                PrunedLinear(second, keep=config.keep),
                method=config.calibration,
                cv=folds,
                ensemble=False,
                n_jobs=processes,
            ),
            gate=config.second_stage,
        )
    if config.sentence_weight:
        from classifiers.sentence import DIM, SentenceVectors

        floor, context_floor = config.coverage_floor, config.context_floor
        if context_floor is not None and (floor is None or not 0.0 < context_floor <= floor):
            raise ConfigError(f"context_floor ({context_floor}) needs a coverage_floor at least as high ({floor})")
        context = context_floor is not None
        if floor is not None:
            features.append(("coverage", TokenCoverage(min_df=config.word_min_df)))
        if context_floor is not None:
            from classifiers.contextual import ContextVectors

            features.append(
                ("context", ContextVectors(coverage_floor=context_floor, min_df=config.word_min_df, n_jobs=processes))
            )
        features.append(("sentence", SentenceVectors(weight=1.0)))
        sentence_head = _sentence_head(config, folds)
        head = FusedLinear(
            head,
            sentence_head,
            sentence_columns=DIM,
            alpha=config.sentence_weight,
            coverage_floor=config.coverage_floor,
            context_head=_context_head(config, folds, processes) if context else None,
            context_floor=context_floor,
            context_columns=DIM if context else 0,
            n_jobs=processes,
        )
    return Pipeline(
        [
            (
                "normalize",
                TextNormalizer(
                    urls=config.replace_urls,
                    mentions=config.replace_mentions,
                    emails=config.replace_emails,
                    phones=config.replace_phones,
                ),
            ),
            ("features", FeatureUnion(features)),
            ("classify", head),
        ]
    )


def _sentence_head(config: ModelConfig, folds: Any) -> Any:
    """The head on the static sentence vectors.

    Ridge (the default): a closed-form solve, seconds even for 151 intents, temperature calibrated over the
    folds. ``"logreg"``: multinomial logistic regression (lbfgs, float64), uncalibrated: it is fitted on
    log-loss, so its probabilities are already a model of the labels, and in the geometric-mean fusion a
    temperature on them is the fusion weight itself (chosen on val), so calibration folds would only cost
    5 more fits. On CLINC150 it reads the static vectors far better than one-vs-rest ridge (val accuracy
    alone 89.8 % at C 3 vs 83.5 %; README "Classifier quality")."""
    if config.sentence_head is None:
        return CalibratedClassifierCV(
            RidgeClassifier(alpha=config.sentence_ridge, class_weight=config.class_weight),
            method=config.calibration,
            cv=folds,
            ensemble=False,
        )
    if config.sentence_head == "logreg":
        if not config.sentence_C or config.sentence_C <= 0:
            raise ConfigError(f"sentence_head 'logreg' needs a positive sentence_C, got {config.sentence_C}")
        return LogisticRegression(C=config.sentence_C, max_iter=1000, class_weight=config.class_weight)
    raise ConfigError(f"unknown sentence_head {config.sentence_head!r} (None for ridge | logreg)")


def _context_head(config: ModelConfig, folds: Any, processes: int) -> CalibratedClassifierCV:
    """The head on the full network's vectors: a linear SVM (chosen on a dev half of the starter pack's
    cross-lingual split: 86.4 / 88.2 % EN->JA / JA->EN against ridge's 82.5 / 86.2 %), calibrated like the others."""
    svm = LinearSVC(C=config.C, class_weight=config.class_weight, dual=True, random_state=SEED)
    return CalibratedClassifierCV(
        PrunedLinear(svm, keep=None), method=config.calibration, cv=folds, ensemble=False, n_jobs=processes
    )


@dataclass
class TrainResult:
    estimator: Pipeline
    manifest: Manifest | None
    metrics: dict[str, Any]
    train_seconds: float
    sources: list[TrainingSource] = field(default_factory=list)


def _corrections_source(rows: list[Example], name: str) -> TrainingSource:
    """A training source for reviewed corrections: their hash covers text, label, split and weight."""
    digest = hashlib.sha256(
        json.dumps([[e.text, e.label, e.split, e.weight] for e in rows], ensure_ascii=False).encode()
    ).hexdigest()
    counts: dict[str, Counter[str]] = {}
    for e in rows:
        counts.setdefault(e.split or "train", Counter())[e.label] += 1
    held = sum(e.split == "test" for e in rows)
    return TrainingSource(
        name=name,
        sha256=digest,
        rows=len(rows),
        counts={k: dict(sorted(v.items())) for k, v in sorted(counts.items())},
        note=f"{held} held out (split test), never trained on",
    )


def model_version(config: ModelConfig, sources: list[TrainingSource]) -> str:
    """A model's version: a hash of its config and its training data's hashes (no date, so a rebuild keeps it)."""
    return hashlib.sha256(
        json.dumps({"config": config.to_dict(), "data": [s.sha256 for s in sources]}, sort_keys=True).encode()
    ).hexdigest()[:8]


def fitted_config(config: ModelConfig, labels: list[str]) -> tuple[ModelConfig, str | None]:
    """``config`` with as many calibration folds as the rarest label allows, and a note saying so.

    Calibration needs every label in every fold. A label with fewer training rows than
    ``calibration_folds`` gets fewer folds (at least 2); one with a single row cannot be
    calibrated at all and is refused with a message naming it.
    """
    counts = Counter(labels)
    if len(counts) < 2:
        raise ConfigError(f"training needs at least two labels; the training rows only have {sorted(counts)}")
    single = sorted(label for label, n in counts.items() if n < 2)
    if single:
        raise ConfigError(
            f"label(s) {single} have fewer than 2 training rows, too few to train and calibrate a model; "
            "add examples or drop those rows"
        )
    if config.second_stage is not None:
        others = sorted(label for label in counts if label != config.second_stage)
        if config.second_stage not in counts or len(others) < 2:
            raise ConfigError(
                f"second_stage {config.second_stage!r} must be one of the training labels {sorted(counts)} "
                "and leave at least two others for the second head"
            )
    rarest = min(counts.values())
    if rarest >= config.calibration_folds:
        return config, None
    rare = sorted(f"{label} ({n})" for label, n in counts.items() if n < config.calibration_folds)
    note = (
        f"label(s) {', '.join(rare)} have fewer than {config.calibration_folds} training rows: "
        f"calibrated over {rarest} folds instead of {config.calibration_folds}; add examples for steadier probabilities"
    )
    return replace(config, calibration_folds=rarest), note


def fit(
    config: ModelConfig,
    texts: list[str],
    labels: list[str],
    weights: list[float] | None = None,
    processes: int | None = None,
) -> Pipeline:
    """Fit ``config`` on the texts; the SVMs' calibration folds run in ``processes`` worker processes
    (default :data:`TRAINING_PROCESSES` from :data:`PARALLEL_ROWS` texts, else 1): the same model as one process (liblinear seeds its process-global
    random generator at every fit, so each fold's result does not depend on where it runs; threads would
    share that generator and race). With a fused head, the full network's vectors of the training texts and
    every linear SVM fit of all heads (folds and final fits) run in those processes too, all heads at once
    (:func:`classifiers.calibrated_fits.fit_heads`)."""
    config, _ = fitted_config(config, labels)
    if processes is None:  # starting worker processes costs ~1-2 s: only worth it for larger data
        processes = TRAINING_PROCESSES if len(texts) >= PARALLEL_ROWS else 1
    pipeline = make_pipeline(config, processes)
    if weights is not None and any(w != 1.0 for w in weights):
        pipeline.fit(texts, labels, classify__sample_weight=np.asarray(weights))
    else:
        pipeline.fit(texts, labels)
    return pipeline


@dataclass
class TrainingPlan:
    """What :func:`train` fits and measures, and the version it names the model, known before any fitting
    (``replyguard train --candidate`` refuses to replace a candidate of that version before the work)."""

    fit_rows: list[Example]
    test_rows: list[Example]
    config: ModelConfig
    sources: list[TrainingSource]
    version: str


def plan_training(
    task: str,
    dataset: Dataset,
    *,
    config: ModelConfig | None = None,
    version: str | None = None,
    sources: list[TrainingSource] | None = None,
    corrections: list[Example] | None = None,
    corrections_name: str = "reviewed corrections",
) -> TrainingPlan:
    """The rows, fitted config, training sources and version :func:`train` uses (its arguments' meaning)."""
    config = config or DEFAULT_CONFIGS[task]
    ds = with_splits(dataset)
    notes = [f"{k}: {v}" for k, v in ds.carved.items()]
    if ds.relabelled:
        notes.append(f"labels: {ds.relabelled_text()}")
    if ds.empty_lines:
        notes.append(ds.empty_text())
    file_counts, file_note = ds.counts(), "; ".join(notes) or None
    if corrections:
        ds = replace(ds, examples=ds.examples + corrections)
    fit_rows = [e for e in ds.examples if e.split in ("train", "val")]
    try:
        config, _ = fitted_config(config, [e.label for e in fit_rows])
    except ConfigError as exc:
        raise ConfigError(f"{dataset.path}: {exc}") from exc
    if sources is None:
        sources = [
            TrainingSource(
                name=Path(dataset.path).name,
                sha256=dataset.sha256,
                rows=len(dataset.examples),
                counts=file_counts,
                note=file_note,
            )
        ]
        if corrections:
            sources.append(_corrections_source(corrections, corrections_name))
    return TrainingPlan(fit_rows, ds.split("test"), config, sources, version or model_version(config, sources))


def train(
    task: str,
    dataset: Dataset,
    *,
    name: str,
    out: Path | None = None,
    config: ModelConfig | None = None,
    out_of_scope_label: str | None = None,
    version: str | None = None,
    sources: list[TrainingSource] | None = None,
    corrections: list[Example] | None = None,
    corrections_name: str = "reviewed corrections",
    plan: TrainingPlan | None = None,
    write_lock: AbstractContextManager[Any] | None = None,
) -> TrainResult:
    """Fit on train+val, measure on test, and (when ``out`` is given) save a verified artifact.

    ``write_lock`` is held while the artifact is written (the models directory's lock of the model:
    ``classifiers.versions.ModelVersions.changing``), not while fitting.

    ``corrections`` (rows of split ``train`` or, held out, ``test``) join after ``dataset``'s own splits
    are carved, so the file keeps its test rows, and they are a training source of their own (hashed
    into the version: a model trained with corrections never shares a version with one trained without).
    ``plan`` (from :func:`plan_training` with these arguments) spares making it again.
    """
    if plan is None:
        plan = plan_training(
            task,
            dataset,
            config=config,
            version=version,
            sources=sources,
            corrections=corrections,
            corrections_name=corrections_name,
        )
    fit_rows, test_rows = plan.fit_rows, plan.test_rows
    started = time.perf_counter()
    estimator = fit(plan.config, [e.text for e in fit_rows], [e.label for e in fit_rows], [e.weight for e in fit_rows])
    seconds = time.perf_counter() - started
    labels = [str(c) for c in estimator.classes_]
    if out_of_scope_label and out_of_scope_label not in labels:
        raise ConfigError(f"out-of-scope label {out_of_scope_label!r} is not among the labels {labels}")
    held_out: dict[str, Any] = {"split": "test"}
    if test_rows:
        held_out.update(
            metrics.summary([e.label for e in test_rows], estimator.predict_proba([e.text for e in test_rows]), labels)
        )
    manifest = None
    if out is not None:
        with write_lock if write_lock is not None else nullcontext():
            manifest = save_artifact(
                out,
                estimator,
                {
                    "name": name,
                    "task": task,
                    "version": plan.version,
                    "out_of_scope_label": out_of_scope_label,
                    "training": plan.sources,
                    "config": plan.config.to_dict(),
                    "metrics": held_out,
                    "train_seconds": round(seconds, 2),  # a record for people: see Manifest.train_seconds
                },
            )
    return TrainResult(
        estimator=estimator, manifest=manifest, metrics=held_out, train_seconds=seconds, sources=plan.sources
    )
