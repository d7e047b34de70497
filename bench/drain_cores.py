"""Where the two cores go during bench/throughput.py's end-to-end drain (issue 10: the drain used
~1.7 of 2 cores).

    python bench/drain_cores.py [--messages 5000] [--runs 2]

Runs the same drain as ``bench/throughput.py --quick`` (``replyguard worker --processes 2``, a
private redis-server, this process ingesting) while a separate sampler process reads the scheduler
state of the two worker processes, Redis and this process from ``/proc/<pid>/stat`` every ~0.5 ms.
A process in state R is running or waiting for a core, so the share of samples with fewer than two
of them runnable is the core time the drain itself could not use, whatever else the machine runs
(on a shared machine the wall-clock figures stretch, this share much less). With the jobs' RQ
records (start and end, worker) it splits that by cause: both workers blocked at once (on Redis),
the gaps between a worker's jobs (RQ's bookkeeping), the start (the first batch being ingested) and
the tail (one worker's last job ending before the other's). Prints a JSON summary per run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

Sample = tuple[float, str]  # (time, one state letter per watched process: worker, worker, redis, ingest)


def sample_states(pids: list[int], every: float) -> list[Sample]:
    """In the sampler process: each pid's state letter every ``every`` s until stdin closes."""
    import threading

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    files = {pid: os.open(f"/proc/{pid}/stat", os.O_RDONLY) for pid in pids}
    out: list[Sample] = []
    while not stop.is_set():
        row = []
        for pid in pids:
            try:
                stat = os.pread(files[pid], 512, 0).decode()
                row.append(stat[stat.rindex(")") + 2])
            except (OSError, ValueError):
                row.append("?")
        out.append((time.time(), "".join(row)))
        time.sleep(every)
    return out


def summarise(
    samples: list[Sample], jobs: dict[int, list[tuple[float, float]]], started: float, ingested: float, ended: float
) -> dict[str, Any]:
    """Shares of the drain [started, ended] (samples' letters: worker 0, worker 1, Redis, ingest;
    ``jobs``: each worker's (start, end) job spans): idle core time (2 minus the processes runnable,
    at least 0) in all and by cause, and how often both workers were blocked."""
    window = [s for s in samples if started <= s[0] <= ended]
    if not window:
        return {"samples": 0}

    def in_job(worker: int, t: float) -> bool:
        return any(a <= t <= b for a, b in jobs.get(worker, []))

    first = min((a for spans in jobs.values() for a, _ in spans), default=ended)
    last_ends = sorted(max((b for _, b in spans), default=ended) for spans in jobs.values())
    idle = {"all": 0.0, "start": 0.0, "tail": 0.0, "between jobs": 0.0, "both workers blocked": 0.0, "other": 0.0}
    both_blocked = 0
    for t, states in window:
        runnable = states.count("R")
        lost = max(0, 2 - runnable)
        blocked = states[0] != "R" and states[1] != "R"
        both_blocked += blocked
        idle["all"] += lost
        if not lost:
            continue
        if t < first:
            idle["start"] += lost
        elif last_ends and t > last_ends[0]:
            idle["tail"] += lost
        elif not (in_job(0, t) and in_job(1, t)):
            idle["between jobs"] += lost
        elif blocked:
            idle["both workers blocked"] += lost
        else:
            idle["other"] += lost
    n = len(window)
    return {
        "samples": n,
        "idle_cores": {k: round(v / n, 3) for k, v in idle.items()},
        "both_workers_blocked": round(both_blocked / n, 3),
        "runnable_share": {k: round(sum(s[1].count("R") == k for s in window) / n, 3) for k in range(5)},
        "ingest_seconds": round(ingested - started, 3),
        "seconds": round(ended - started, 3),
        "tail_seconds": round(last_ends[-1] - last_ends[0], 3) if len(last_ends) > 1 else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--every", type=float, default=0.0005, help="seconds between samples")
    parser.add_argument("--sample", help=argparse.SUPPRESS)  # the sampler process: comma-separated pids
    args = parser.parse_args()
    if args.sample:
        json.dump(sample_states([int(p) for p in args.sample.split(",")], args.every), sys.stdout)
        return

    import redis
    from rq.job import Job
    from rq.serializers import JSONSerializer

    import bench.throughput as bt
    from tests.faults import RedisServer
    from worker.ingest import Ingestor
    from worker.settings import Settings

    server = RedisServer(Path(tempfile.mkdtemp(prefix="rg-cores-redis-"))).start()
    client = redis.Redis.from_url(server.url)
    env = {**os.environ, "REDIS_URL": server.url, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    settings = Settings(redis_url=server.url)
    pool, _ = bt.texts()
    fleet = bt.Fleet([bt.worker_argv("--processes", "2")], env, client, 2)
    try:
        bt.drain(client, settings, bt.messages(512, "warm", pool), fleet, "warm-up", 2)
        workers = sorted(bt.children(fleet.procs[0].pid))[:2]
        for run in range(args.runs):
            pids = [*workers, server.proc.pid, os.getpid()]  # type: ignore[union-attr]
            sampler = subprocess.Popen(
                [sys.executable, __file__, "--sample", ",".join(map(str, pids)), "--every", str(args.every)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(0.2)
            before = bt.decided(client)
            started = time.time()
            with Ingestor(client, settings) as ingestor:
                for m in bt.messages(args.messages, f"cores{run}", pool):
                    ingestor.submit(m)
            ingested = time.time()
            while bt.decided(client) < before + args.messages:
                time.sleep(0.002)
            ended = time.time()
            samples = json.loads(sampler.communicate("")[0])
            spans: dict[int, list[tuple[float, float]]] = {0: [], 1: []}
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # RQ finishes a job just after its last decision is stored
                found = Job.fetch_many(ingestor.report.jobs, connection=client, serializer=JSONSerializer)
                if all(j is not None and j.get_status(refresh=False) == "finished" for j in found):
                    break
                time.sleep(0.01)
            for job in found:
                if job is None or job.started_at is None or job.worker_name is None:
                    continue
                worker = 0 if f".{workers[0]}." in job.worker_name else 1
                end = job.ended_at or job.latest_result().created_at  # type: ignore[union-attr]
                spans[worker].append((job.started_at.timestamp(), end.timestamp()))
            summary = summarise(samples, spans, started, ingested, ended)
            summary["msg_per_s"] = round(args.messages / (ended - started))
            summary["load"] = round(os.getloadavg()[0], 2)
            print(json.dumps(summary), flush=True)
            client.flushdb()
            bt.drain(client, settings, bt.messages(256, f"warm{run}", pool), fleet, "warm-up", 2)
    finally:
        fleet.stop()
        server.stop()


if __name__ == "__main__":
    main()
