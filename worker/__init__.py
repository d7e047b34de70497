"""replyguard worker: classify inbound DMs and comments, decide by policy, reply or escalate.

The public Python API::

    from worker import Settings, connect, ingest_events, wait_for, Store, parse_event

Everything else is internal and may change.
"""

from worker.connection import EmbeddedRedis, connect
from worker.exceptions import (
    ArtifactError,
    ConfigError,
    DatasetError,
    InvalidEvent,
    PolicyError,
    RenderError,
    ReplyguardError,
    StoreError,
    TemplateError,
)
from worker.ingest import Ingestor, IngestReport, ingest_events, wait_for
from worker.models import Decision, InboundEvent, parse_event
from worker.settings import Settings
from worker.store import Store

__version__ = "0.1.0"

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
    "PolicyError",
    "RenderError",
    "ReplyguardError",
    "Settings",
    "Store",
    "StoreError",
    "TemplateError",
    "connect",
    "ingest_events",
    "parse_event",
    "wait_for",
]
