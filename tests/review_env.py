"""The review app under test: two brands, the demo's traffic decided by a real RQ worker, users,
and ``replyguard serve`` as a real process. Used by test_review_api.py and test_review_browser.py.

``demo-shop`` is the demo brand; ``other-shop`` is a copy of it (same policy and templates, another
brand name) so tests can check that one brand's users never see the other's messages.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.serve_process import ServeProcess
from worker.accounts import Accounts
from worker.brands import Brand, load_brands
from worker.ingest import ingest_events
from worker.jobs import install
from worker.pipeline import Pipeline
from worker.queues import make_worker
from worker.settings import REPO_ROOT, Settings
from worker.store import Store

SECRET = "test-session-secret-0123456789abcdef"
PASSWORD = "correct horse battery"
DEMO = [json.loads(line) for line in (REPO_ROOT / "worker" / "demo" / "traffic.jsonl").read_text().splitlines() if line]
#: The escalation whose SLA clocks the tests need still running, whatever the day and hour they run.
RUNNING = "m22"
WEEK = timedelta(days=7)


def recent_traffic(
    events: list[dict[str, Any]], holidays: list[date], now: datetime | None = None
) -> list[dict[str, Any]]:
    """``events`` (the demo traffic, written on fixed dates) as if sent lately, and :data:`RUNNING` now.

    Every time moves by the same whole number of weeks, so weekdays and hours stay and business hours
    and away messages decide as in the demo: the latest event lands in the week before ``now``, or a
    week earlier when that week would put an event on one of ``holidays`` (the traffic then ends at most
    ~3 weeks back, inside the dashboard's 30-day period). With fixed dates the seeded data aged out of
    time windows: the dashboard's 7-day export lost the first demo day from 2026-12-01 JST on.

    :data:`RUNNING` is written at ``now`` (Tokyo time, as the demo brand's business hours): at its demo
    time, a Saturday, its business-hours clock started at the next Monday's opening, so from Monday
    10:00 JST on its one-hour first response was past due and the tests that need a running clock
    failed (first seen at 2026-11-30 01:04 UTC). Written now, the clock runs for an hour of business
    time (or waits, still active, for the next opening)."""
    tokyo = timezone(timedelta(hours=9))
    now = datetime.now(tokyo) if now is None else now.astimezone(tokyo)
    times = [datetime.fromisoformat(e["created_at"]) for e in events]
    weeks = (now - max(times)) // WEEK

    def moved(k: int) -> list[datetime]:
        return [t + k * WEEK for t in times]

    while weeks > 0 and any(t.astimezone(tokyo).date() in holidays for t in moved(weeks)):
        weeks -= 1
    return [
        {**e, "created_at": now.isoformat(timespec="seconds") if e["id"] == RUNNING else t.isoformat()}
        for e, t in zip(events, moved(weeks), strict=True)
    ]


#: name -> (role, brands)
USERS = {
    "mia": ("moderator", ["demo-shop"]),
    "tom": ("tier1", ["demo-shop"]),
    "ola": ("moderator", ["other-shop"]),
    "max": ("manager", ["*"]),
}


def two_brand_dirs(root: Path) -> tuple[Path, Path]:
    """policies/ and templates/ holding demo-shop and its copy other-shop."""
    policies, templates = root / "policies", root / "templates"
    policies.mkdir(parents=True, exist_ok=True)
    templates.mkdir(parents=True, exist_ok=True)
    for src_dir, dst in ((REPO_ROOT / "policies", policies), (REPO_ROOT / "prompts" / "templates", templates)):
        shutil.copy(src_dir / "demo-shop.yaml", dst / "demo-shop.yaml")
        text = (src_dir / "demo-shop.yaml").read_text()
        text = re.sub(r"(?m)^brand: demo-shop$", "brand: other-shop", text)
        # its own platform accounts: an account id routes to one brand only
        text = re.sub(r'account_ids: \["([^"]+)"\]', r'account_ids: ["\1-other"]', text)
        (dst / "other-shop.yaml").write_text(text)
    return policies, templates


class ReviewEnv:
    def __init__(self, url: str, root: Path):
        self.url = url
        self.policies, self.templates = two_brand_dirs(root)
        self.settings = Settings(
            redis_url=url, home=root / "home", policies_dir=self.policies, templates_dir=self.templates
        )
        self.env = {
            "REPLYGUARD_SESSION_SECRET": SECRET,
            "REPLYGUARD_POLICIES_DIR": str(self.policies),
            "REPLYGUARD_TEMPLATES_DIR": str(self.templates),
        }
        self.brands: dict[str, Brand] = load_brands(self.settings)
        self.client = redis.Redis.from_url(url)
        self.store = Store(self.client, self.settings.key_prefix)
        self.server: ServeProcess | None = None
        self._snapshot: list[tuple[bytes, int, bytes]] | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return self.server.url

    def seed(self, events: list[dict[str, Any]] | None = None) -> None:
        """Flush, decide the demo traffic (and its copy for other-shop) with a real RQ worker, add the users.

        The default seeding is done once per module and then restored from a snapshot of every key
        (DUMP/RESTORE, TTLs kept): the same database each time, without deciding the traffic and hashing
        the passwords again for every test."""
        if events is None and self._snapshot is not None:
            pipe = self.client.pipeline(transaction=True)
            pipe.flushdb()
            for key, ttl, value in self._snapshot:
                pipe.restore(key, max(ttl, 0), value, replace=True)
            pipe.execute()
            return
        self.client.flushdb()
        default = events is None
        if events is None:
            hours = self.brands["demo-shop"].policy.business_hours
            holidays = hours.holidays if hours is not None else []
            events = recent_traffic(DEMO + [{**e, "brand": "other-shop"} for e in DEMO[:30]], holidays)
        self.decide(events)
        accounts = Accounts(self.client, self.settings.key_prefix)
        for name, (role, brands) in USERS.items():
            accounts.add(name, PASSWORD, role, brands)
        if default:
            keys = list(self.client.scan_iter(count=1000))
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.pttl(key)
                pipe.dump(key)
            replies = pipe.execute()
            self._snapshot = [
                (key, replies[2 * i], replies[2 * i + 1])
                for i, key in enumerate(keys)
                if replies[2 * i + 1] is not None
            ]

    def decide(self, events: list[dict[str, Any]]) -> None:
        report = ingest_events(events, self.client, self.settings, batch_wait=0.01)
        assert not report.invalid
        install(Pipeline(self.brands), self.settings)
        make_worker(self.client, self.settings, simple=True).work(burst=True)

    def login(self, name: str, password: str = PASSWORD) -> "Session":
        http = httpx.Client(base_url=self.base, timeout=10)
        form = http.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        answer = http.post("/login", data={"username": name, "password": password, "csrf_token": token})
        assert answer.status_code == 303, answer.text
        page = http.get("/review")
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        return Session(http, csrf)

    def outbox(self, brand: str = "demo-shop") -> list[dict[str, Any]]:
        """Replies, hides, blocks … in the outbox (not the per-decision entries for connectors)."""
        entries = [json.loads(f[b"payload"]) for _, f in self.client.xrange(self.store.keys.outbox(brand))]
        return [p for p in entries if p["type"] != "decision"]


class Session:
    """A signed-in httpx client that sends the CSRF header on POSTs."""

    def __init__(self, http: httpx.Client, csrf: str):
        self.http = http
        self.csrf = csrf

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, body: dict[str, Any] | None = None, csrf: bool = True) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf} if csrf else {}
        return self.http.post(path, json=body or {}, headers=headers)

    def act(self, item: str, action: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.post(f"/api/review/items/{item}/{action}", body)


@pytest.fixture(scope="module")
def review_env(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReviewEnv]:
    env = ReviewEnv(redis_url, tmp_path_factory.mktemp("review"))
    env.seed()  # serve needs a reachable Redis and loads both brands
    with ServeProcess(redis_url, env=env.env) as server:
        env.server = server
        yield env


@pytest.fixture()
def review(review_env: ReviewEnv) -> ReviewEnv:
    """The running app with freshly seeded data."""
    review_env.seed()
    return review_env
