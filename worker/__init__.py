"""replyguard worker: classify inbound DMs and comments, decide by policy, reply or escalate.

The public Python API (imported lazily, so ``import worker`` stays cheap)::

    from worker import Settings, connect, ingest_events, wait_for, Store, parse_event

Everything else is internal and may change.
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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'worker' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
