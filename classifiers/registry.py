"""Finding and caching model artifacts by name.

A policy names its models (``models: {spam: spam-default, ...}``); the registry
looks for a directory of that name in each models directory in turn (the
``REPLYGUARD_MODELS_DIRS`` setting, then the shipped ``classifiers/artifacts``)
and loads it once per process.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from classifiers.persistence import LoadedModel, load_artifact
from classifiers.errors import ArtifactError

SHIPPED_DIR = Path(__file__).resolve().parent / "artifacts"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")
#: What a model name may be, as people read it (the registry finds no other: a policy names models by it).
NAME_RULE = "lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128"


def is_model_name(name: str) -> bool:
    """Whether ``name`` can name a model the registry finds (and a directory in a models directory)."""
    return bool(_NAME.match(name))


class ModelRegistry:
    def __init__(self, directories: list[Path] | None = None):
        self.directories = [Path(d) for d in (directories or [])] + [SHIPPED_DIR]
        self._cache: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def locate(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ArtifactError(name, f"model names are {NAME_RULE}")
        for directory in self.directories:
            candidate = directory / name
            if candidate.is_dir():
                return candidate
        searched = ", ".join(str(d) for d in self.directories)
        raise ArtifactError(name, f"no model directory of that name in {searched}")

    def get(self, name: str, task: str | None = None) -> LoadedModel:
        with self._lock:
            model = self._cache.get(name)
            if model is None:
                model = load_artifact(self.locate(name), expected_task=task)
                self._cache[name] = model
        if task is not None and model.task != task:
            raise ArtifactError(model.path, f"is a {model.task!r} model but a {task!r} model was asked for")
        return model
