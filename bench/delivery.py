"""Deliveries per second from the outbox to a loopback Graph API stand-in, on a real Redis.

    REDIS_URL=redis://127.0.0.1:6379/14 python bench/delivery.py [--messages 2000] [--update-readme]

N WhatsApp messages are decided once (each an auto-reply: one ``reply`` and one ``decision``
outbox entry); then, side by side in one run, from the same starting state:

1. ``dry_run``, one deliverer in this process: replyguard's own cost per delivery (read the
   entry and the decision, the idempotency script, the MULTI/EXEC that records, XACK);
2. ``live``, one deliverer in this process, to the Graph stand-in (a separate process);
3. ``live``, two ``replyguard deliver --burst`` processes sharing the consumer group.

The policy's per-account rate limit is raised to 1,000/s for the run (the default, 20/s per
account, is what a real WhatsApp number would be held to). CPU time is this process's (1, 2) or
the deliverer processes' (3); the stand-in's CPU is not counted. The database is flushed.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.readme_table import save_results, update_readme  # noqa: E402
from worker import defaults  # noqa: E402
from worker.brands import load_brands  # noqa: E402
from worker.connection import EmbeddedRedis  # noqa: E402
from worker.delivery.runner import build_deliverer  # noqa: E402
from worker.pipeline import Pipeline  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.store import Store  # noqa: E402

TOKEN = "bench-token"
PHONE = "106540352242922"


def events(n: int) -> list[dict]:
    now = datetime.now(timezone.utc).isoformat()
    return [
        {
            "id": f"wamid.bench{i}",
            "brand": "demo-shop",
            "platform": "whatsapp",
            "kind": "dm",
            "conversation_id": f"bench-c{i}",
            "author": {"id": f"8190{i:07d}", "name": "Aiko Tanaka"},
            "text": "where is my order KM-204815?",
            "created_at": now,
            "metadata": {},
        }
        for i in range(n)
    ]


def policies_dir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="rg-bench-policies-"))
    text = (ROOT / "policies" / "demo-shop.yaml").read_text()
    (directory / "demo-shop.yaml").write_text(
        text.replace("  mode: dry_run\n", "  mode: dry_run\n  rate_limit_per_second: 1000\n")
    )
    return directory


class Snapshot:
    """The decided state, restored before each scenario (decisions without deliveries, a fresh group)."""

    def __init__(self, client: redis.Redis, store: Store):
        self.client, self.store = client, store
        self.keys = [k for k in client.scan_iter(match=f"{store.keys.prefix}:decision:*")]
        self.values = client.mget(self.keys)

    def restore(self) -> None:
        stream = self.store.keys.outbox("demo-shop")
        for key in self.client.scan_iter(match=f"{self.store.keys.prefix}:delivery:*"):
            self.client.delete(key)
        for key in self.client.scan_iter(match=f"{self.store.keys.prefix}:ratelimit:*"):
            self.client.delete(key)
        self.client.mset(dict(zip(self.keys, self.values, strict=True)))
        self.client.delete(self.store.keys.review, self.store.keys.stats("demo-shop"))
        try:
            self.client.xgroup_destroy(stream, defaults.DELIVERY_GROUP)
        except redis.ResponseError:
            pass


def count_sent(store: Store, n: int) -> int:
    decisions = store.decisions([("demo-shop", f"wamid.bench{i}") for i in range(n)])
    return sum(1 for d in decisions if d and d.deliveries and d.deliveries[0].status in ("sent", "dry_run"))


def in_process(client, settings, snapshot, store, n, mode) -> dict:
    snapshot.restore()
    deliverer = build_deliverer(
        client, settings.model_copy(update={"delivery_mode": mode}), environ={"WHATSAPP_TOKEN": TOKEN}
    )
    cpu, wall = time.process_time(), time.perf_counter()
    deliverer.run(burst=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = count_sent(store, n)
    return {
        "scenario": f"{mode}, 1 deliverer (in process)",
        "delivered": done,
        "seconds": round(wall, 3),
        "per_second": round(done / wall, 1),
        "cpu_ms_per_delivery": round(cpu * 1000 / max(1, done), 3),
    }


def processes(settings, snapshot, store, n, workers, env) -> dict:
    snapshot.restore()
    build_deliverer(snapshot.client, settings).ensure_groups()  # both start reading the same group
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "deliver", "--burst"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    for p in procs:
        p.wait()
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    done = count_sent(store, n)
    return {
        "scenario": f"live, {workers} `replyguard deliver` processes",
        "delivered": done,
        "seconds": round(wall, 3),
        "per_second": round(done / wall, 1),
        "cpu_ms_per_delivery": round(cpu * 1000 / max(1, done), 3),
    }


def table(results: dict) -> str:
    rows = [
        "| scenario | replies delivered | wall time | replies/s | CPU per reply | vs dry run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base = results["scenarios"][0]["per_second"]
    for r in results["scenarios"]:
        rows.append(
            f"| {r['scenario']} | {r['delivered']:,} | {r['seconds']:.2f} s | {r['per_second']:,.0f} | "
            f"{r['cpu_ms_per_delivery']:.2f} ms | {r['per_second'] / base:.2f}× |"
        )
    rows.append("")
    rows.append(
        f"Each reply is two outbox entries (the reply, and the decision for connectors). "
        f"Measured {results['date']} ({results['machine']}, {os.cpu_count()} cores, "
        f"{results['messages']:,} messages; the stand-in answers at once)."
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    server = None
    url = os.environ.get("REDIS_URL")
    if not url:
        server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="rg-bench-")), persist=False).start()
        url = server.url
    pdir = policies_dir()
    standin = subprocess.Popen(
        [sys.executable, "-m", "worker.standins", "graph", "--token", TOKEN],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base = standin.stdout.readline().strip() + "/v21.0"
        settings = Settings(redis_url=url, policies_dir=pdir, meta_api_base=base)
        client = redis.Redis.from_url(url)
        client.flushdb()
        store = Store(client, settings.key_prefix)
        pipeline = Pipeline(load_brands(settings))
        batch = events(args.messages)
        for i in range(0, len(batch), 64):
            pipeline.process(batch[i : i + 64], store)
        snapshot = Snapshot(client, store)
        env = {
            **os.environ,
            "REDIS_URL": url,
            "REPLYGUARD_POLICIES_DIR": str(pdir),
            "WHATSAPP_TOKEN": TOKEN,
            "REPLYGUARD_META_API_BASE": base,
            "REPLYGUARD_DELIVERY_MODE": "live",
            "REPLYGUARD_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        results = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} Python {platform.python_version()}",
            "messages": args.messages,
            "scenarios": [
                in_process(client, settings, snapshot, store, args.messages, "dry_run"),
                in_process(client, settings, snapshot, store, args.messages, "live"),
                processes(settings, snapshot, store, args.messages, 2, env),
            ],
        }
        client.flushdb()
    finally:
        standin.terminate()
        standin.wait(10)
        shutil.rmtree(pdir, ignore_errors=True)
        if server:
            server.stop()
            shutil.rmtree(server.directory, ignore_errors=True)
    save_results("delivery", results)
    text = table(results)
    print(text)
    if args.update_readme:
        update_readme("delivery", text)


if __name__ == "__main__":
    main()
