"""Start-up of the delivery processes: load what they need (policies and templates, no models)."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

import httpx
import redis

from worker import defaults
from worker.delivery.deliverer import Deliverer
from worker.delivery.youtube import YouTubeClient, YouTubePoller
from worker.exceptions import DeliveryError, InvalidEvent
from worker.policy import Policy, load_policies
from worker.settings import Settings
from worker.store import Store
from worker.templates import TemplateBook, load_templates

log = logging.getLogger(__name__)


def load_delivery_config(settings: Settings) -> tuple[dict[str, Policy], dict[str, TemplateBook]]:
    """Every brand's policy and templates (a broken one raises PolicyError / TemplateError)."""
    policies = {b: loaded.policy for b, loaded in load_policies(settings.policies_dir).items()}
    books = {}
    for brand in policies:
        path = settings.templates_dir / f"{brand}.yaml"
        if path.exists():
            books[brand] = load_templates(path)
    return policies, books


def build_deliverer(client: redis.Redis, settings: Settings, **kwargs: Any) -> Deliverer:
    policies, books = load_delivery_config(settings)
    return Deliverer(client, settings, policies, books, **kwargs)


def stop_on_signals(deliverer: Deliverer) -> None:
    """SIGTERM / SIGINT: finish the entry in hand, then stop (an entry cut short is claimed by another)."""

    def stop(signum: int, _frame: Any) -> None:
        log.info("deliverer %s stopping (signal %d)", deliverer.consumer, signum)
        deliverer.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def poll_youtube(
    client: redis.Redis, settings: Settings, *, once: bool, interval: float, environ: Mapping[str, str] | None = None
) -> dict[str, int]:
    """Poll every brand's YouTube channels; ingest new comments. Returns counts of the last round.

    Polling on (not ``once``), Redis going away is waited out with backoff (:func:`keep_serving`):
    a round cut short has not moved its cursor, so the next round reads those comments again
    (ingesting is idempotent by comment id)."""
    from worker.connection import keep_serving

    environ = os.environ if environ is None else environ
    policies, _ = load_delivery_config(settings)
    store = Store(client, settings.key_prefix)
    counts: dict[str, int] = {}
    with httpx.Client(timeout=defaults.DELIVERY_HTTP_TIMEOUT_SECONDS) as http:
        if once:
            return _poll_round(client, settings, store, policies, http, environ)

        def forever() -> bool:
            nonlocal counts
            while True:
                counts = _poll_round(client, settings, store, policies, http, environ)
                time.sleep(interval)

        keep_serving(client, forever, what="youtube poller")
    return counts


def _poll_round(
    client: redis.Redis,
    settings: Settings,
    store: Store,
    policies: Mapping[str, Policy],
    http: httpx.Client,
    environ: Mapping[str, str],
) -> dict[str, int]:
    from worker.ingest import Ingestor

    counts = {"channels": 0, "new": 0, "quota_units": 0}
    for brand, policy in sorted(policies.items()):
        channel = policy.channels.youtube
        if channel is None:
            continue
        token = environ.get(channel.access_token_env or "")
        if not token:
            log.error(
                "brand %s: YouTube access token variable %s is not set; channel skipped",
                brand,
                channel.access_token_env,
            )
            continue
        poller = YouTubePoller(client, store.keys, YouTubeClient(settings.youtube_api_base, token, http))
        for channel_id in channel.account_ids:
            try:
                result = poller.poll(brand, channel_id)
            except DeliveryError as exc:  # the next round tries again; the cursor has not moved
                log.error("youtube %s/%s: polling failed: %s", brand, channel_id, exc)
                continue
            if result.new:
                with Ingestor(client, settings) as ingestor:
                    for event in result.new:
                        try:
                            ingestor.submit(event, source=f"youtube {channel_id}")
                        except InvalidEvent as exc:  # one bad comment must not stop the poll
                            store.reject(event, str(exc), f"youtube {channel_id}")
            poller.commit(brand, channel_id, result)
            counts["channels"] += 1
            counts["new"] += len(result.new)
            counts["quota_units"] += result.quota_units
            log.info(
                "youtube %s/%s: %d new comment(s), %d page(s), %d quota unit(s)",
                brand,
                channel_id,
                len(result.new),
                result.pages,
                result.quota_units,
            )
    return counts
