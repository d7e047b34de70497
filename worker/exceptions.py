"""replyguard's exceptions: one tree, rooted at :class:`ReplyguardError`.

::

    ReplyguardError
    ├── ConfigError              settings from the environment are invalid
    │   ├── PolicyError          a policy file is broken (file, field path, reason)
    │   └── TemplateError        a template file is broken (file, template id, reason)
    ├── ArtifactError            a model artifact is missing, corrupt or mismatched (file, reason)
    ├── DatasetError             a training/eval data file is unreadable (file, line, reason)
    ├── InvalidEvent             an inbound event fails the message contract (every bad field)
    ├── RenderError              a template cannot be rendered (missing variables)
    └── StoreError               Redis is unreachable or answered with an error

``ReplyguardError``, ``ConfigError``, ``ArtifactError`` and ``DatasetError`` are
defined in :mod:`classifiers.errors` (the bottom layer, which imports nothing of
the worker) and re-exported here as the same classes.

Foreign exceptions (pydantic, redis, yaml, skops, json) are converted where they
enter replyguard, with the original kept as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from classifiers.errors import ArtifactError, ConfigError, DatasetError, ReplyguardError

__all__ = [
    "ArtifactError", "ConfigError", "DatasetError", "InvalidEvent", "PolicyError", "Problem", "RenderError",
    "ReplyguardError", "StoreError", "TemplateError",
]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (a dotted path) and why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}" if self.where else self.reason


class _ProblemsError(ReplyguardError):
    """An error that lists every problem found in one file or object."""

    subject: str = "input"

    def __init__(self, source: str, problems: Iterable[Problem] | Problem | str):
        if isinstance(problems, (Problem, str)):
            problems = [problems]
        self.source = source
        self.problems: list[Problem] = [
            p if isinstance(p, Problem) else Problem("", str(p)) for p in problems
        ]
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{self.subject} {source} is invalid:\n{lines}")


class PolicyError(_ProblemsError, ConfigError):
    """A policy file failed to load or validate. ``source`` is the file."""

    subject = "policy"


class TemplateError(_ProblemsError, ConfigError):
    """A template file failed to load or validate. ``source`` is the file."""

    subject = "template file"


class InvalidEvent(_ProblemsError):
    """An inbound event breaks the message contract. Lists every bad field."""

    subject = "event"

    def __init__(self, source: str, problems: Iterable[Problem] | Problem | str):
        super().__init__(source, problems)

    @property
    def fields(self) -> Sequence[str]:
        return [p.where for p in self.problems]


class RenderError(ReplyguardError):
    """A template could not be rendered because variables were missing."""

    def __init__(self, template_id: str, missing: Sequence[str]):
        self.template_id = template_id
        self.missing = list(missing)
        super().__init__(
            f"template {template_id}: no value for variable(s) "
            + ", ".join("{" + m + "}" for m in self.missing)
        )


class StoreError(ReplyguardError):
    """Redis could not be reached or refused a command."""
