"""Training in worker processes gives the model one process gives, bit for bit: the calibration folds and final
fits of the linear SVM heads (liblinear's random generator is process-global and seeded at every fit, so a fit
does not depend on the process that runs it), the full network's vectors of the training texts (whole groups
of texts, the same arithmetic), and the heads' fits run together (classifiers.calibrated_fits)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
from sklearn.base import clone

from classifiers.build import DEFAULT_CONFIGS, ModelConfig, fit, make_pipeline
from classifiers.calibrated_fits import fit_heads
from classifiers.contextual import ContextVectors, groups, split_groups
from worker.settings import REPO_ROOT

PACK = REPO_ROOT / "classifiers" / "data" / "demo_shop_intents.jsonl"


def _rows() -> list[dict]:
    return [json.loads(line) for line in PACK.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_folds_in_processes_give_the_serial_model() -> None:
    rows = _rows()
    english = [r for r in rows if r["lang"] == "en"][:300]
    texts, labels = [r["text"] for r in english], [r["label"] for r in english]
    probe = [r["text"] for r in rows[::7]]
    # LinearSVC heads on n-grams and on the full network (below the floor), calibrated over 3 folds
    config = ModelConfig(calibration_folds=3, keep=3000, sentence_weight=0.2, coverage_floor=0.5, context_floor=0.3)
    serial = fit(config, texts, labels, processes=1)
    parallel = fit(config, texts, labels, processes=2)
    assert parallel.named_steps["classify"].ngram_head.n_jobs == 2
    np.testing.assert_array_equal(serial.predict_proba(probe), parallel.predict_proba(probe))


def test_the_weighted_intent_default_in_processes_is_the_serial_model() -> None:
    """The default's three heads fitted together (the sentence head's logistic regression in this process
    meanwhile), the network's vectors in two processes, on weighted rows (reviewed corrections weigh 2)."""
    rows = _rows()
    english = [r for r in rows if r["lang"] == "en"][:240]
    texts, labels = [r["text"] for r in english], [r["label"] for r in english]
    probe = [r["text"] for r in rows[::5]]  # both languages: the full network's head answers the Japanese ones
    config = replace(DEFAULT_CONFIGS["intent"], calibration_folds=3)
    weights = [1.0 + (i % 3 == 0) for i in range(len(texts))]
    serial = fit(config, texts, labels, weights, processes=1)
    parallel = fit(config, texts, labels, weights, processes=2)
    assert parallel.named_steps["classify"].n_jobs == 2
    assert dict(parallel.named_steps["features"].transformer_list)["context"].n_jobs == 2
    np.testing.assert_array_equal(serial.predict_proba(probe), parallel.predict_proba(probe))


def test_the_networks_runs_are_whole_groups_and_give_the_vectors_of_one_process() -> None:
    texts = [r["text"] for r in _rows()][:200]
    step = ContextVectors(coverage_floor=0.3, n_jobs=2)
    serial = ContextVectors(coverage_floor=0.3).fit_transform(texts).toarray()
    np.testing.assert_array_equal(step.fit_transform(texts).toarray(), serial)
    tokens = [list(range(n % 37 + 1)) for n in range(300)]
    bounds = groups(tokens)
    for parts in (1, 2, 3, 7):
        runs = split_groups(tokens, parts)
        assert runs[0][0] == 0 and runs[-1][1] == len(tokens) and 1 <= len(runs) <= parts
        assert all(a[1] == b[0] and a[1] in bounds for a, b in zip(runs, runs[1:], strict=False))
        # a run's own groups are the whole's groups within it
        for start, end in runs:
            assert [start + b for b in groups(tokens[start:end])] == [b for b in bounds if start <= b <= end]
    assert len(split_groups(tokens, 2)) == 2 and split_groups([], 2) == [(0, 0)]


def test_heads_of_other_shapes_are_fitted_as_they_are() -> None:
    """A head that is not a calibrated linear SVM with folds in processes (here: a ridge sentence head, the
    spam default's) is fitted in this process as its own fit would."""
    rows = [r for r in _rows() if r["lang"] == "en"][:120]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((len(rows), 16))
    y = [r["label"] for r in rows]
    config = replace(DEFAULT_CONFIGS["spam"], calibration_folds=3)
    head = make_pipeline(config, processes=2).named_steps["classify"].sentence_head
    (fitted,) = fit_heads([(head, X)], y, None, 2)
    np.testing.assert_array_equal(fitted.predict_proba(X), clone(head).fit(X, y).predict_proba(X))
    assert not hasattr(head, "classes_")  # the head given stays unfitted
