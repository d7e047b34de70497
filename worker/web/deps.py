"""What every route needs, built once per app by :func:`worker.web.app.create_app`.

Routes never reach for globals: they get a :class:`Deps` and read what they need
from it (settings, the Redis connection, the loaded brands, the store). Tests
build their own app with their own ``Deps``. A router that needs something
shared of its own (a session signer, a cache) may keep it in ``deps.extras``
under its module's name.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from prometheus_client import CollectorRegistry

from worker.brands import Brand
from worker.inbound.channels import InboundAuth
from worker.settings import Settings
from worker.store import Store


@dataclass
class Deps:
    settings: Settings
    connection: redis.Redis
    brands: dict[str, Brand]
    store: Store
    #: This process's own metrics (HTTP requests, webhooks); /metrics adds the Redis counters.
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    #: Routing of platform accounts to brands, webhook and API secrets (from the policies and the environment).
    inbound: InboundAuth | None = None
    #: Background services started with the app (name -> object with ``start()``,
    #: ``stop()`` and ``alive() -> bool``); /readyz reports each one.
    services: dict[str, Any] = field(default_factory=dict)
    #: Per-router state, keyed by the router module's name.
    extras: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)

    #: The asyncio twin of ``connection`` for the event loop it was made on (see :meth:`to_inbox`).
    _async: tuple[Any, Any] | None = None

    async def to_inbox(self, kind: str, body: bytes, **fields: str) -> str:
        """Append an accepted request to the durable inbox; returns the entry id. Raises StoreError.

        Uses an asyncio Redis client on the running loop (made once per loop): an XADD on the loop
        itself costs far less than a hop to a worker thread, which also contends for the GIL with
        the loop. A connection without an asyncio twin (TLS) runs the blocking client in a thread.
        """
        from worker.connection import async_twin
        from worker.inbound import inbox

        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            self._async = (loop, async_twin(self.connection))
        client = self._async[1]
        if client is None:
            return await asyncio.to_thread(inbox.append, self.connection, self.store.keys, kind, body, **fields)
        return await inbox.append_async(client, self.store.keys, kind, body, **fields)

    def policy(self, brand: str):  # -> worker.policy.Policy | None
        loaded = self.brands.get(brand)
        return loaded.policy if loaded else None
