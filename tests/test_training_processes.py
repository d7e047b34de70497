"""Calibration folds in worker processes train the same model as one process (liblinear's random generator
is process-global: each fit seeds it, so a fold's result does not depend on the process that runs it)."""

from __future__ import annotations

import json

import numpy as np

from classifiers.build import ModelConfig, fit
from worker.settings import REPO_ROOT

PACK = REPO_ROOT / "classifiers" / "data" / "demo_shop_intents.jsonl"


def test_folds_in_processes_give_the_serial_model() -> None:
    rows = [json.loads(line) for line in PACK.read_text(encoding="utf-8").splitlines() if line.strip()]
    english = [r for r in rows if r["lang"] == "en"][:300]
    texts, labels = [r["text"] for r in english], [r["label"] for r in english]
    probe = [r["text"] for r in rows[::7]]
    # LinearSVC heads on n-grams and on the full network (below the floor), calibrated over 3 folds
    config = ModelConfig(calibration_folds=3, keep=3000, sentence_weight=0.2, coverage_floor=0.5, context_floor=0.3)
    serial = fit(config, texts, labels, processes=1)
    parallel = fit(config, texts, labels, processes=2)
    assert parallel.named_steps["classify"].ngram_head.n_jobs == 2
    np.testing.assert_array_equal(serial.predict_proba(probe), parallel.predict_proba(probe))
