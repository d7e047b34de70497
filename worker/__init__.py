"""replyguard worker: classify inbound DMs and comments, decide by policy, reply or escalate.

The public Python API (imported lazily, so ``import worker`` stays cheap)::

    from worker import Settings, connect, ingest_events, wait_for, Store, parse_event

plus the exception tree of :mod:`worker.exceptions`. ``__all__`` is pinned by a test
(tests/test_cli_truth.py); everything else is internal and may change.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ArtifactError": "worker.exceptions",
    "ConfigError": "worker.exceptions",
    "DatasetError": "worker.exceptions",
    "InvalidEvent": "worker.exceptions",
    "NoWorker": "worker.exceptions",
    "WaitTimeout": "worker.exceptions",
    "PolicyError": "worker.exceptions",
    "RenderError": "worker.exceptions",
    "ReplyguardError": "worker.exceptions",
    "StoreError": "worker.exceptions",
    "TemplateError": "worker.exceptions",
    "Decision": "worker.models",
    "InboundEvent": "worker.models",
    "parse_event": "worker.models",
    "Settings": "worker.settings",
    "EmbeddedRedis": "worker.connection",
    "connect": "worker.connection",
    "Ingestor": "worker.ingest",
    "IngestReport": "worker.ingest",
    "ingest_events": "worker.ingest",
    "wait_for": "worker.ingest",
    "Store": "worker.store",
}

__all__ = [
    "ArtifactError",
    "ConfigError",
    "DatasetError",
    "Decision",
    "EmbeddedRedis",
    "InboundEvent",
    "IngestReport",
    "Ingestor",
    "InvalidEvent",
    "NoWorker",
    "PolicyError",
    "RenderError",
    "ReplyguardError",
    "Settings",
    "Store",
    "StoreError",
    "TemplateError",
    "WaitTimeout",
    "connect",
    "ingest_events",
    "parse_event",
    "wait_for",
]


if sorted(_EXPORTS) != __all__:  # pragma: no cover - a programming error, caught by the API test
    raise ImportError("worker.__all__ and worker._EXPORTS differ")


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'worker' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
