"""What a worker process spends on a batch job outside ``worker.jobs.process_batch``: RQ's work loop
with replyguard's subclass (``ReplyguardSimpleWorker``, as ``replyguard worker`` runs it), the job's
fetch and payload decoding, its start, status, result and registry writes, and the Redis commands
all of that costs, counted per job.

    PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/rq.%p \\
        python bench/rq_path.py --callgrind [--jobs 20]       # the worker's instructions a job
    python bench/rq_path.py --redis-callgrind [--jobs 20]     # Redis's instructions a job
    python bench/rq_path.py [--jobs 20]                       # CPU time instead (noisy under load)

Jobs are enqueued as ingest enqueues them (``queues.enqueue_events``, ``--batch`` events of
``bench/throughput.py``'s traffic each) on a private redis-server (append-only file, as in
production), then one worker (queues "all", as the Procfile's) drains them with ``work(burst=True)``.
``process_batch`` is replaced by a stub that returns the result the real one returns for such a
batch (every id decided), so everything counted is the work around it. Measured: a burst of
``--jobs`` jobs minus an empty burst (the worker's start and end), per job; the Redis commands of
the same from ``INFO commandstats``. The time-based work (the worker's own heartbeat at most every
``WORKER_HEARTBEAT_MIN_SECONDS``, the recovery sweep every ``RECOVERY_SWEEP_SECONDS``) would run far
more often per job under valgrind's slowness than in a real worker, so it is switched off inside the
bursts and counted apart, a call each ("heartbeat", "sweep"). Compare two checkouts by running this
file with each one's PYTHONPATH.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after PYTHONPATH: another checkout can be measured with this file

import redis  # noqa: E402

from bench.redis_path import CallgrindRedis, commandstats  # noqa: E402
from bench.throughput import messages, texts  # noqa: E402
from bench.worker_path import Counter  # noqa: E402
from tests.faults import RedisServer  # noqa: E402

#: heartbeats and sweeps counted, each
REPEAT = 10

#: the stub's result of each job, by its ``enqueued_at`` (the job's second argument, unique a job)
RESULTS: dict[float, dict[str, Any]] = {}


def aof_size(client: redis.Redis) -> int:
    return int(client.info("persistence").get("aof_current_size", 0))


def stub_batch(batch: list[Any], enqueued_at: float | None = None) -> dict[str, Any]:
    """``process_batch``'s place: the result the real one returns for ``batch`` (kept ready)."""
    return RESULTS[enqueued_at]  # type: ignore[index]


def result_of(events: list[Any]) -> dict[str, Any]:
    """What ``process_batch`` returns for a batch whose every message is decided (the benchmark's)."""
    return {
        "decided": [e.id for e in events],
        "duplicates": [],
        "rejected": [],
        "errors": [],
        "llm_pending": [],
        "parked": [],
        "rounds": 1,
        "swept": [],
        "sla_started": len(events) // 2,
        "sla_fired": [],
        "timings": {"context_ms": 2.31, "classify_ms": 61.05, "decide_ms": 20.13, "persist_ms": 17.4, "sla_ms": 9.87},
        "redis_wait_seconds": 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--callgrind", action="store_true", help="count the worker's instructions (under valgrind)")
    parser.add_argument("--redis-callgrind", action="store_true", help="count Redis's instructions (valgrind)")
    parser.add_argument("--out", default="/tmp/rq", help="callgrind's --callgrind-out-file prefix, without the .%%p")
    args = parser.parse_args()

    import worker.jobs as jobs
    from worker import defaults
    from worker.models import parse_event
    from worker.queues import batch_queue, enqueue_events, make_worker
    from worker.settings import Settings
    from worker.store import Keys

    directory = Path(tempfile.mkdtemp(prefix="rg-rq-path-"))
    server = (CallgrindRedis if args.redis_callgrind else RedisServer)(directory).start()
    counter = Counter(args.callgrind, args.out)
    pool, _ = texts()
    try:
        client = redis.Redis.from_url(server.url)
        settings = Settings(redis_url=server.url)
        queue = batch_queue(client, settings)
        jobs.process_batch = stub_batch  # type: ignore[assignment]  # RQ looks the function up by name

        def enqueue(tag: str, n: int) -> None:
            events = [parse_event(m) for m in messages(n * args.batch, tag, pool)]
            for k in range(n):
                chunk = events[k * args.batch : (k + 1) * args.batch]
                job = enqueue_events(queue, chunk, f"rqp-{tag}-{k}")
                enqueued_at = json.loads(job.data[: -len(b"], {}]")].rsplit(b", ", 1)[1])
                RESULTS[enqueued_at] = result_of(chunk)

        gc.collect()
        gc.freeze()  # as a worker process does (worker.prefork)
        gc.set_threshold(defaults.WORKER_GC_THRESHOLD, *gc.get_threshold()[1:])

        def burst() -> None:
            make_worker(client, settings, simple=True).work(burst=True, logging_level="WARNING")

        # the time-based work, counted apart below
        sweep_seconds, beat_seconds = defaults.RECOVERY_SWEEP_SECONDS, defaults.WORKER_HEARTBEAT_MIN_SECONDS
        defaults.RECOVERY_SWEEP_SECONDS = defaults.WORKER_HEARTBEAT_MIN_SECONDS = 10**9  # type: ignore[misc]
        enqueue("warm", 2)
        burst()
        rows: dict[str, Any] = {}
        for name, n in (("empty", 0), ("jobs", args.jobs)):
            enqueue(name, n)
            stats0, aof0 = commandstats(client), aof_size(client)
            if args.redis_callgrind:
                server.zero()  # type: ignore[attr-defined]
            counter.region(name, burst)
            redis_instructions = server.instructions() if args.redis_callgrind else None  # type: ignore[attr-defined]
            stats1 = commandstats(client)
            rows[name] = {
                "aof_bytes": aof_size(client) - aof0,
                "usec": sum(usec for _, usec in stats1.values()) - sum(usec for _, usec in stats0.values()),
                "commands": {
                    cmd: calls - stats0.get(cmd, (0, 0))[0]
                    for cmd, (calls, _) in stats1.items()
                    if calls - stats0.get(cmd, (0, 0))[0] > 0 and cmd not in ("info",)
                },
                "redis_instructions": redis_instructions,
            }
        defaults.RECOVERY_SWEEP_SECONDS, defaults.WORKER_HEARTBEAT_MIN_SECONDS = sweep_seconds, beat_seconds  # type: ignore[misc]

        # the time-based work, a call each
        beat_worker = make_worker(client, settings, simple=True)
        beat_worker.heartbeat()

        def beats() -> None:
            for _ in range(REPEAT):
                beat_worker._full_beat_at = None  # due: as it is every WORKER_HEARTBEAT_MIN_SECONDS
                beat_worker.heartbeat()

        def sweeps() -> None:
            for _ in range(REPEAT):
                beat_worker.recover()
                client.delete(Keys(settings.key_prefix).recovery_lock(settings.queue))  # the next may sweep

        counter.region("heartbeat", beats)
        counter.region("sweep", sweeps)

        n = args.jobs
        unit = "instructions" if args.callgrind else "cpu_us"
        scale = 1.0 if args.callgrind else 1e6
        empty, full = rows["empty"]["commands"], rows["jobs"]["commands"]
        per_job = {cmd: round((full.get(cmd, 0) - empty.get(cmd, 0)) / n, 2) for cmd in sorted(set(full) | set(empty))}
        report: dict[str, Any] = {
            "jobs": n,
            "batch": args.batch,
            f"{unit} a job (burst minus empty burst)": round(
                (counter.results["jobs"] - counter.results["empty"]) * scale / n, 1
            ),
            f"{unit} a message": round(
                (counter.results["jobs"] - counter.results["empty"]) * scale / n / args.batch, 2
            ),
            f"{unit} a heartbeat": round(counter.results["heartbeat"] * scale / REPEAT, 1),
            f"{unit} a recovery sweep (nothing to recover)": round(counter.results["sweep"] * scale / REPEAT, 1),
            "redis commands a job": {k: v for k, v in per_job.items() if v},
            "redis commands a job, total": round(sum(per_job.values()), 2),
            "redis usec a job (commandstats)": round((rows["jobs"]["usec"] - rows["empty"]["usec"]) / n, 1),
            "AOF bytes a job": round((rows["jobs"]["aof_bytes"] - rows["empty"]["aof_bytes"]) / n),
        }
        if args.redis_callgrind:
            report["redis instructions a job"] = round(
                (rows["jobs"]["redis_instructions"] - rows["empty"]["redis_instructions"]) / n
            )
        print(json.dumps(report), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
