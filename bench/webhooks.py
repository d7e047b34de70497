"""Webhook acknowledgement latency of ``replyguard serve``, at a paced (open-loop) offered rate.

    REDIS_URL=redis://127.0.0.1:6379/14 python bench/webhooks.py [--rate 500] [--seconds 10] [--update-readme]

Starts ``replyguard serve`` as a real process on loopback (and, unless ``--no-worker``,
one ``replyguard worker`` deciding what arrives, as in production) and sends signed
WhatsApp webhooks (each a new message) at ``--rate`` requests per second for
``--seconds``, on up to ``--connections`` keep-alive connections. Requests are
scheduled on a fixed timetable: latency is measured from each request's *scheduled*
time, so a stall of the service counts against it (no coordinated omission).
Reports p50 / p90 / p99 / max acknowledgement latency, the rate achieved, errors,
the service's CPU time per webhook, the machine's load average before and after (the cores
may be shared: latency tails are the scheduler's when they are), and how long the worker
took to decide them all. Deliveries per second to the Graph stand-in: bench/delivery.py.
The database in REDIS_URL is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.readme_table import save_results  # noqa: E402
from bench.readme_table import update_readme as update_readme_block  # noqa: E402
from worker.inbound.samples import dumps, signature, wa_text, whatsapp  # noqa: E402
from worker.web.process import ServeProcess, WorkerProcess  # noqa: E402

SECRET = "bench-app-secret"
ENV = {"META_APP_SECRET": SECRET, "META_VERIFY_TOKEN": "bench-verify", "REPLYGUARD_LOG_LEVEL": "WARNING"}
TEXTS = [
    "Hi, where is my order KM-204815?",
    "do you ship to Canada?",
    "注文した商品はいつ届きますか？",
    "What are your opening hours?",
    "I want to return a mug",
    "thanks!",
]


def request_bytes(port: int, i: int, run: str) -> bytes:
    payload = whatsapp(
        [wa_text(f"wamid.bench-{run}-{i}", TEXTS[i % len(TEXTS)], sender=f"81900{i % 997:05d}")],
        wa_id=f"81900{i % 997:05d}",
    )
    body = dumps(payload)
    head = (
        f"POST /webhooks/meta HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"X-Hub-Signature-256: {signature(body, SECRET)}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if match:
        await reader.readexactly(int(match.group(1)))
    return status


async def offer(port: int, rate: float, seconds: float, connections: int, run: str) -> dict:
    total = int(rate * seconds)
    payloads = [request_bytes(port, i, run) for i in range(total)]
    idle: asyncio.Queue = asyncio.Queue()
    opened = 0
    latencies: list[float] = []
    errors: dict[str, int] = {}
    start = time.perf_counter() + 0.2

    async def connection():
        return await asyncio.open_connection("127.0.0.1", port)

    async def one(i: int, due: float) -> None:
        nonlocal opened
        if idle.empty() and opened < connections:
            opened += 1
            conn = await connection()
        else:
            conn = await idle.get()
        reader, writer = conn
        try:
            writer.write(payloads[i])
            status = await read_response(reader)
            latencies.append(time.perf_counter() - due)
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
            idle.put_nowait(conn)
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            writer.close()
            opened -= 1

    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not idle.empty():
        _reader, writer = idle.get_nowait()
        writer.close()
    latencies.sort()

    def pct(p: float) -> float:
        return (
            round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2) if latencies else float("nan")
        )

    return {
        "offered_rps": rate,
        "requests": total,
        "achieved_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(1000 * latencies[-1], 2) if latencies else None,
        "errors": errors,
        "connections_used": opened,
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-worker", action="store_true", help="measure the acknowledgement path alone")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        print("set REDIS_URL to a scratch database (it is flushed)", file=sys.stderr)
        return 2
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    run = datetime.now(timezone.utc).strftime("%H%M%S")
    workers = [] if args.no_worker else [WorkerProcess(redis_url, env=ENV)]
    with ServeProcess(redis_url, env=ENV) as serve:
        for w in workers:
            w.start()
        time.sleep(3 if workers else 0.5)  # the worker loads its models
        pid = serve.process.pid
        # warm-up: a short burst at the same rate (first connections, first code paths)
        asyncio.run(offer(serve.port, args.rate, 1.0, args.connections, run + "w"))
        inbox = children(pid)  # the inbox consumer (parses, adapts, batches onto the RQ queue)
        cpu_before = cpu_seconds(pid), sum(cpu_seconds(c) for c in inbox)
        load_before = os.getloadavg()[0]
        result = asyncio.run(offer(serve.port, args.rate, args.seconds, args.connections, run))
        result["load_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]  # other users of the cores
        time.sleep(1.0)  # let the inbox consumer finish the last entries
        cpu = cpu_seconds(pid) - cpu_before[0], sum(cpu_seconds(c) for c in inbox) - cpu_before[1]
        result["serve_cpu_ms_per_webhook"] = round(1000 * cpu[0] / max(1, result["requests"]), 3)
        result["inbox_cpu_ms_per_webhook"] = round(1000 * cpu[1] / max(1, result["requests"]), 3)
        if workers:
            expected = int(args.rate * args.seconds) + int(args.rate)
            started = time.monotonic()
            while time.monotonic() - started < 300 and connection.zcard("rg:decisions:demo-shop") < expected:
                time.sleep(0.2)
            result["decided"] = connection.zcard("rg:decisions:demo-shop")
            result["all_decided_after_s"] = round(time.monotonic() - started, 1)
        for w in workers:
            w.stop()
    result.update(
        {
            "worker_running": bool(workers),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    )
    print(json.dumps(result, indent=2))
    save_results("webhooks", result)
    if args.update_readme:
        update_readme(result, args)
    return 0


def update_readme(r: dict, args: argparse.Namespace) -> None:
    load = r.get("load_1min") or ["?", "?"]
    table = (
        f"| offered | achieved | p50 | p90 | p99 | max | errors | CPU / webhook: web + inbox | "
        f"load average (1 min) before / after |\n"
        f"|---|---|---|---|---|---|---|---|---|\n"
        f"| {r['offered_rps']:.0f}/s for {args.seconds:.0f} s | {r['achieved_rps']}/s | {r['p50_ms']} ms | "
        f"{r['p90_ms']} ms | {r['p99_ms']} ms | {r['max_ms']} ms | {sum(r['errors'].values())} | "
        f"{r['serve_cpu_ms_per_webhook']} + {r['inbox_cpu_ms_per_webhook']} ms | "
        f"{load[0]} / {load[1]} on {r['cpus']} cores |\n"
    )
    if r.get("worker_running"):
        table += (
            f"\nWith one `replyguard worker` deciding on the same 2 cores, all {r['decided']} webhooks were "
            f"decided {r['all_decided_after_s']} s after the last one was acknowledged.\n"
        )
    update_readme_block("webhooks", table)


if __name__ == "__main__":
    sys.exit(main())
