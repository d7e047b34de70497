"""Pipeline speed and memory, on a real Redis.

    REDIS_URL=redis://127.0.0.1:6379/14 python bench/throughput.py [--messages 5000] [--update-readme]

1. In process: Pipeline.process (validate, read context, classify with all three
   models, decide, persist atomically) over batches of 1, 16 and 64 messages.
2. End to end: ``replyguard ingest`` of the same messages while ``--workers``
   ``replyguard worker`` processes (real RQ, forking) decide them; wall time from
   the first enqueue to the last decision.
3. Memory: resident set size of one worker process after loading the models.

The messages are the demo sample with fresh ids (EN/JA, FAQs, spam, abuse, ...).
The database in REDIS_URL is flushed. Without REDIS_URL an embedded server is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from worker.brands import load_brands  # noqa: E402
from worker.connection import EmbeddedRedis  # noqa: E402
from worker.demo import load_sample  # noqa: E402
from worker.ingest import ingest_events, wait_for  # noqa: E402
from worker.pipeline import Pipeline  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.store import Store  # noqa: E402


def messages(n: int, tag: str) -> list[dict]:
    sample = load_sample()
    out = []
    for i in range(n):
        e = json.loads(json.dumps(sample[i % len(sample)]))
        e["id"] = f"{tag}-{i}"
        e["conversation_id"] = f"{tag}-c{i}"
        e["author"]["id"] = f"{tag}-a{i}"
        e["metadata"] = {}
        out.append(e)
    return out


def in_process(client: redis.Redis, settings: Settings, n: int) -> list[dict]:
    brands = load_brands(settings)
    pipeline = Pipeline(brands)
    store = Store(client, settings.key_prefix)
    rows = []
    for batch in (1, 16, 64):
        client.flushdb()
        msgs = messages(n, f"ip{batch}")
        latencies = []
        started = time.perf_counter()
        for i in range(0, len(msgs), batch):
            t = time.perf_counter()
            pipeline.process(msgs[i : i + batch], store)
            latencies.append((time.perf_counter() - t) * 1000)
        seconds = time.perf_counter() - started
        latencies.sort()
        rows.append({"batch": batch, "messages": n, "msg_per_s": round(n / seconds),
                     "batch_ms_p50": round(latencies[len(latencies) // 2], 2),
                     "batch_ms_p95": round(latencies[int(len(latencies) * 0.95)], 2)})
        print("in-process", rows[-1], flush=True)
    return rows


def end_to_end(client: redis.Redis, settings: Settings, n: int, workers: int) -> dict:
    client.flushdb()
    env = {**os.environ, "REDIS_URL": settings.redis_url}
    procs = [subprocess.Popen([sys.executable, "-m", "worker.cli", "worker"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(workers)]
    try:
        from rq import Worker

        from worker.queues import batch_queue

        deadline = time.monotonic() + 60
        while len(Worker.all(queue=batch_queue(client, settings))) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        rss = []
        for p in procs:
            status = Path(f"/proc/{p.pid}/status")
            if status.exists():
                line = next((line for line in status.read_text().splitlines() if line.startswith("VmRSS")), "")
                rss.append(int(line.split()[1]) // 1024 if line else 0)
        msgs = messages(n, "e2e")
        started = time.perf_counter()
        report = ingest_events(msgs, client, settings)
        result = wait_for(report, client, settings, timeout=600, poll=0.05)
        seconds = time.perf_counter() - started
        assert len(result.decisions) == n, f"only {len(result.decisions)} of {n} decided"
        waits = sorted(d.timings.get("queue_wait_ms", 0) for d in result.decisions)
        row = {"messages": n, "workers": workers, "seconds": round(seconds, 2), "msg_per_s": round(n / seconds),
               "queue_wait_ms_p50": round(waits[len(waits) // 2], 1), "queue_wait_ms_p95": round(waits[int(len(waits) * 0.95)], 1),
               "worker_rss_mb": rss}
        print("end-to-end", row, flush=True)
        return row
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def table(results: dict) -> str:
    lines = ["| mode | batch | messages/s | batch latency p50 / p95 |", "|---|---:|---:|---:|"]
    for r in results["in_process"]:
        lines.append(f"| in process, 1 core | {r['batch']} | {r['msg_per_s']:,} | {r['batch_ms_p50']} / {r['batch_ms_p95']} ms |")
    e = results["end_to_end"]
    lines.append(f"| ingest → {e['workers']} RQ workers → decided | ≤ 64 | {e['msg_per_s']:,} | queue wait p50 "
                 f"{e['queue_wait_ms_p50']} ms, p95 {e['queue_wait_ms_p95']} ms |")
    lines += ["", f"Worker memory after loading the three models: {', '.join(str(m) + ' MB' for m in e['worker_rss_mb'])} "
              f"resident. Measured {results['date']} ({results['machine']}, 2 cores, {e['messages']:,} messages)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"), help="where throughput.json goes")
    args = parser.parse_args()
    server = None
    url = os.environ.get("REDIS_URL")
    if not url:
        server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="rg-bench-")), persist=False).start()
        url = server.url
    try:
        settings = Settings(redis_url=url)
        client = redis.Redis.from_url(url)
        results = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "machine": f"{platform.machine()} Python {platform.python_version()}",
                   "in_process": in_process(client, settings, args.messages),
                   "end_to_end": end_to_end(client, settings, args.messages, args.workers),
                   "bench_process_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}
        client.flushdb()
    finally:
        if server:
            server.stop()
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    print(text)
    if args.update_readme:
        readme = ROOT / "README.md"
        content = readme.read_text(encoding="utf-8")
        start, end = "<!-- bench:throughput:start -->", "<!-- bench:throughput:end -->"
        head, rest = content.split(start, 1)
        _, tail = rest.split(end, 1)
        readme.write_text(f"{head}{start}\n{text}\n{end}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
