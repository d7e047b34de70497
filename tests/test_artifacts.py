"""Model artifacts: shipped ones verify; corrupt, mismatched or untrusted ones fail naming the file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin

from classifiers.build import ModelConfig, fit
from classifiers.persistence import MODEL_FILE, TRUSTED_TYPES, load_artifact, save_artifact, sha256_file
from classifiers.registry import SHIPPED_DIR, ModelRegistry
from worker.exceptions import ArtifactError

SHIPPED = {"spam-default": "spam", "abuse-default": "abuse", "demo-shop-intent": "intent"}


@pytest.mark.parametrize("name,task", SHIPPED.items())
def test_shipped_artifacts_verify_and_describe_themselves(name: str, task: str) -> None:
    model = load_artifact(SHIPPED_DIR / name, expected_task=task)
    m = model.manifest
    assert m.task == task and m.labels == model.labels and m.version and m.ref == f"{name}@{m.version}"
    assert m.training and all(len(s.sha256) == 64 and s.rows > 0 for s in m.training)
    assert {"python", "scikit-learn", "numpy", "skops"} <= set(m.libraries)
    assert m.metrics["n"] > 0 and 0 <= m.metrics["accuracy"] <= 1 and "per_label" in m.metrics
    assert set(m.trusted_types) <= set(TRUSTED_TYPES)
    assert "classifiers.estimators.PrunedLinear" in m.trusted_types


def test_shipped_artifacts_are_small() -> None:
    total = sum(f.stat().st_size for f in SHIPPED_DIR.rglob("*") if f.is_file())
    assert total < 8 * 1024 * 1024, f"shipped models take {total / 1e6:.1f} MB"


@pytest.fixture()
def copy_of(tmp_path: Path):
    def make(name: str = "spam-default") -> Path:
        target = tmp_path / name
        shutil.copytree(SHIPPED_DIR / name, target)
        return target

    return make


def edit_manifest(directory: Path, **changes: object) -> None:
    path = directory / "manifest.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def test_corrupt_model_file_fails_before_deserialising(copy_of) -> None:
    d = copy_of()
    with open(d / MODEL_FILE, "r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00garbage\x00")
    with pytest.raises(ArtifactError) as info:
        load_artifact(d)
    assert str(d / MODEL_FILE) in str(info.value) and "sha256" in str(info.value) and "corrupt" in str(info.value)


def test_truncated_model_with_matching_hash_is_still_refused(copy_of) -> None:
    d = copy_of()
    (d / MODEL_FILE).write_bytes(b"PK\x03\x04 not really a zip")
    edit_manifest(d, model_sha256=sha256_file(d / MODEL_FILE))
    with pytest.raises(ArtifactError, match="not a readable skops file|cannot be loaded"):
        load_artifact(d)


def test_missing_or_broken_manifest(copy_of) -> None:
    d = copy_of()
    (d / "manifest.json").write_text("{")
    with pytest.raises(ArtifactError, match=r"manifest.json: manifest is not valid JSON"):
        load_artifact(d)
    (d / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        load_artifact(d)


def test_labels_task_and_version_mismatches(copy_of) -> None:
    d = copy_of()
    edit_manifest(d, labels=["ham", "junk"])
    with pytest.raises(ArtifactError, match=r"model classes \['ham', 'spam'\] do not match manifest labels"):
        load_artifact(d)
    d = copy_of("abuse-default")
    with pytest.raises(ArtifactError, match="is a 'abuse' model but a 'spam' model was asked for"):
        load_artifact(d, expected_task="spam")
    edit_manifest(d, libraries={"scikit-learn": "0.24.2"})
    with pytest.raises(ArtifactError, match="trained with scikit-learn 0.24.2"):
        load_artifact(d)
    edit_manifest(d, format_version=7)
    with pytest.raises(ArtifactError, match="format_version 7 is not supported"):
        load_artifact(d)


class Sneaky(TransformerMixin, BaseEstimator):
    """A type the project never trusts."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


def test_untrusted_types_are_refused(tmp_path: Path, copy_of) -> None:
    import skops.io as sio
    from sklearn.pipeline import Pipeline

    texts, labels = ["free prize now", "see you at lunch", "win cash", "ok thanks"] * 3, ["spam", "ham"] * 6
    model = fit(ModelConfig(char_min_df=1, word_min_df=1, calibration_folds=2), texts, labels)
    sneaky = Pipeline([("sneaky", Sneaky()), *model.steps])
    sneaky.fit(texts, labels)
    with pytest.raises(ArtifactError, match="outside TRUSTED_TYPES"):
        save_artifact(tmp_path / "x", sneaky, {})
    # a file someone else produced, with a manifest that matches it
    d = copy_of()
    sio.dump(sneaky, d / MODEL_FILE, compression=zipfile.ZIP_DEFLATED)
    edit_manifest(d, model_sha256=sha256_file(d / MODEL_FILE))
    with pytest.raises(
        ArtifactError, match=r"refusing to load types that are not trusted: \['tests.test_artifacts.Sneaky'\]"
    ):
        load_artifact(d)


def test_registry_names_what_is_missing(tmp_path: Path) -> None:
    registry = ModelRegistry([tmp_path])
    with pytest.raises(ArtifactError, match="no model directory of that name"):
        registry.get("nope")
    with pytest.raises(ArtifactError, match="lowercase"):
        registry.get("../etc")


def test_save_is_atomic_and_round_trips(tmp_path: Path) -> None:
    texts = ["where is my parcel", "荷物はどこ", "refund please", "返金して"] * 4
    labels = ["track", "track", "refund", "refund"] * 4
    model = fit(ModelConfig(char_min_df=1, word_min_df=1, calibration_folds=2), texts, labels)
    target = tmp_path / "m"
    save_artifact(target, model, {"name": "m", "task": "intent", "version": "1", "training": [], "config": {}})
    first = sorted(p.name for p in tmp_path.iterdir())
    save_artifact(target, model, {"name": "m", "task": "intent", "version": "2", "training": [], "config": {}})
    assert sorted(p.name for p in tmp_path.iterdir()) == first == ["m"]  # no temp or .old leftovers
    loaded = load_artifact(target)
    assert loaded.manifest.version == "2"
    assert np.allclose(loaded.predict_proba(texts), model.predict_proba(texts))


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_saved_artifacts_get_the_modes_the_umask_gives(tmp_path: Path, umask: int) -> None:
    """A deploy user trains, a service user serves: the model's directory and files get what mkdir and
    open give (0777 / 0666 less the umask), not tempfile's private 0700."""
    texts = ["where is my parcel", "refund please"] * 4
    model = fit(ModelConfig(char_min_df=1, word_min_df=1, calibration_folds=2), texts, ["track", "refund"] * 4)
    previous = os.umask(umask)
    try:
        target = save_artifact(
            tmp_path / "models" / "m",
            model,
            {"name": "m", "task": "intent", "version": "1", "training": [], "config": {}},
        )
    finally:
        os.umask(previous)
    assert target.version == "1"
    modes = {p.name: p.stat().st_mode & 0o777 for p in [tmp_path / "models", *(tmp_path / "models").rglob("*")]}
    assert modes == {
        "models": 0o777 & ~umask,
        "m": 0o777 & ~umask,
        "manifest.json": 0o666 & ~umask,
        MODEL_FILE: 0o666 & ~umask,
    }


def test_manifest_says_train_seconds_is_rounded_and_the_shipped_ones_are() -> None:
    """No code reads a manifest's train_seconds back (eval reports and bench/quality.py keep their own unrounded
    figure); it is rounded to 0.01 s, and the manifest's schema says so."""
    from classifiers.persistence import Manifest

    description = Manifest.model_fields["train_seconds"].description or ""
    assert "rounded to 0.01 s" in description and "nothing reads it back" in description
    for directory in SHIPPED_DIR.iterdir():
        seconds = json.loads((directory / "manifest.json").read_text())["train_seconds"]
        assert seconds == round(seconds, 2) > 0, directory.name


def test_worker_start_fails_on_a_corrupt_shipped_model(tmp_path: Path, copy_of) -> None:
    models = tmp_path / "models"
    models.mkdir()
    d = copy_of("demo-shop-intent")
    shutil.move(str(d), models / "demo-shop-intent")
    with open(models / "demo-shop-intent" / MODEL_FILE, "ab") as fh:
        fh.write(b"tampered")
    env = {**os.environ, "REPLYGUARD_MODELS_DIRS": str(models), "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "worker", "--burst"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert str(models / "demo-shop-intent" / MODEL_FILE) in result.stderr and "sha256" in result.stderr
