"""The errors of the classifiers layer, and the base class every replyguard error shares.

::

    ReplyguardError          base of every error replyguard raises on purpose (shared by all layers)
    ├── ConfigError          a configuration value is invalid (here: a model config, an optional extra)
    ├── ArtifactError        a model artifact is missing, corrupt or mismatched (file, reason)
    └── DatasetError         a training/eval data file is unreadable (file, line, reason)

classifiers/ is the bottom layer and imports nothing else of replyguard, so the
base lives here; :mod:`worker.exceptions` re-exports these classes (same
objects) and adds the worker's own errors under the same base.
"""

from __future__ import annotations


class ReplyguardError(Exception):
    """Base class of every error replyguard raises on purpose."""


class ConfigError(ReplyguardError):
    """Invalid configuration (environment variables, directories, model configs)."""


class ArtifactError(ReplyguardError):
    """A model artifact cannot be used. The message names the file and the mismatch."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"model artifact {self.path}: {reason}")


class DatasetError(ReplyguardError):
    """A labelled data file cannot be read."""

    def __init__(self, path: object, reason: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")
