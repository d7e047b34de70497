"""replyguard's exceptions: one tree, rooted at :class:`ReplyguardError`.

::

    ReplyguardError
    ├── ConfigError              settings from the environment are invalid
    │   ├── PolicyError          a policy file is broken (file, field path, reason)
    │   └── TemplateError        a template file is broken (file, template id, reason)
    ├── ArtifactError            a model artifact is missing, corrupt or mismatched (file, reason)
    ├── DatasetError             a training/eval data file is unreadable (file, line, reason)
    ├── InvalidEvent             an inbound event fails the message contract (every bad field)
    ├── InputError               an input file is missing or unreadable (path, reason)
    ├── RenderError              a template cannot be rendered (missing variables)
    ├── StoreError               Redis is unreachable or answered with an error
    ├── WaitTimeout              wait_for() gave up before every event was decided (``.result``)
    │   └── NoWorker             ... because no worker is consuming the queue
    └── DeliveryError            a platform did not carry out an outbound action (code, detail)
        ├── TransientDeliveryError   429 / 5xx / unreachable: retried with backoff (``retry_after``)
        ├── PermanentDeliveryError   invalid recipient, expired token, window closed: recorded, escalated
        └── AmbiguousDeliveryError   the request may have been carried out (timeout after sending):
                                     never repeated where the platform cannot deduplicate

``ReplyguardError``, ``ConfigError``, ``ArtifactError`` and ``DatasetError`` are
defined in :mod:`classifiers.errors` (the bottom layer, which imports nothing of
the worker) and re-exported here as the same classes.

Foreign exceptions (pydantic, redis, yaml, skops, json) are converted where they
enter replyguard, with the original kept as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from classifiers.errors import ArtifactError, ConfigError, DatasetError, ReplyguardError

__all__ = [
    "ArtifactError",
    "ConfigError",
    "DatasetError",
    "InputError",
    "InvalidEvent",
    "NoWorker",
    "PolicyError",
    "Problem",
    "RenderError",
    "ReplyguardError",
    "StoreError",
    "TemplateError",
    "WaitTimeout",
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
        listed: Iterable[Problem | str] = [problems] if isinstance(problems, (Problem, str)) else problems
        self.source = source
        self.problems: list[Problem] = [p if isinstance(p, Problem) else Problem("", str(p)) for p in listed]
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
            f"template {template_id}: no value for variable(s) " + ", ".join("{" + m + "}" for m in self.missing)
        )


class StoreError(ReplyguardError):
    """Redis could not be reached or refused a command."""


class InputError(ReplyguardError):
    """An input file (events to ingest) is missing or cannot be read."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read {self.path}: {reason}")


class WaitTimeout(ReplyguardError):
    """``wait_for`` stopped waiting before every event was decided; ``result`` holds what was decided."""

    def __init__(self, message: str, result: Any):
        self.result = result
        super().__init__(message)


class NoWorker(WaitTimeout):
    """Nothing is consuming the queue the events were enqueued on, so waiting longer would not help."""


class DeliveryError(ReplyguardError):
    """An outbound action (reply, hide, webhook) was not carried out.

    ``code`` is stable (``rate_limited``, ``server_error``, ``unreachable``, ``token_expired``,
    ``invalid_recipient``, ``window_closed``, ``rejected``, ``timeout`` …); ``detail`` is the
    platform's own message (never the text sent); ``status`` the HTTP status, if any.
    """

    def __init__(self, code: str, detail: str = "", *, status: int | None = None, retry_after: float | None = None):
        self.code = code
        self.detail = detail[:300]
        self.status = status
        self.retry_after = retry_after
        super().__init__(f"{code}: {self.detail}" if self.detail else code)


class TransientDeliveryError(DeliveryError):
    """Worth retrying later (rate limited, server error, platform unreachable)."""


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help: recorded on the decision and escalated to a person."""


class AmbiguousDeliveryError(DeliveryError):
    """The request left, no answer came back: the platform may or may not have carried it out."""
