"""Reliability under faults, measured with real worker processes on loopback (bounded: ~3 minutes).

    python bench/reliability.py [--update-readme]

1. Crash: 3 ``replyguard worker`` processes decide 1,600 messages (batches of 8); one worker is
   killed with its work-horse (kill -9) mid-batch, and another worker's horse. Reported: seconds
   from the kill until both killed batches are taken up again (back on the queue, retried, or started
   by another worker: the recovery itself) and until both have finished (the re-run too, which waits
   for the survivors' backlog), messages left undecided, duplicate replies.
2. Outage: 2 workers on a private redis-server (append-only file) deciding 1,200 messages;
   the server is killed (kill -9) for 10 s and restarted. Reported: workers alive afterwards,
   messages decided (and decided twice), duplicate replies, seconds to finish after the restart.
Per-conversation order under racing traffic is measured by bench/ordering.py.

Each scenario runs on its own private redis-server (free port on 127.0.0.1), deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from rq.job import Job, JobStatus  # noqa: E402
from rq.serializers import JSONSerializer  # noqa: E402

from bench.readme_table import update_readme  # noqa: E402
from tests.faults import RedisServer, Workers, horse_of, outbox_replies, taken_up_again, traffic  # noqa: E402
from worker.ingest import ingest_events  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.store import Store  # noqa: E402


def _job_of(client: redis.Redis, pid: int) -> str | None:
    from rq import Worker

    for w in Worker.all(connection=client):
        if f".{pid}." in w.name:
            return w.get_current_job_id()
    return None


def _busy(workers: Workers, client: redis.Redis, exclude: set[int]) -> tuple[object, int, str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for proc in workers.alive():
            horse = horse_of(proc.pid) if proc.pid not in exclude else None
            job_id = _job_of(client, proc.pid) if horse else None
            if horse and job_id:
                return proc, horse, job_id
        time.sleep(0.005)
    raise RuntimeError("no busy worker")


def _state(client: redis.Redis, job_id: str) -> tuple[str | None, int | None]:
    """(worker name, retries left) of a batch about to be killed, to tell when it is taken up again."""
    job = Job.fetch(job_id, connection=client, serializer=JSONSerializer)
    return job.worker_name, job.retries_left


def crash(tmp: Path) -> dict[str, object]:
    server = RedisServer(tmp / "crash-redis").start()
    client = redis.Redis.from_url(server.url)
    workers = Workers(server.url, tmp / "crash-logs")
    try:
        workers.start(3, "--fork-per-job")  # the row measures a worker and its work-horse killed
        workers.wait_registered(client, 3)
        events = traffic(1600)
        settings = Settings(redis_url=server.url, home=tmp / "home")
        report = ingest_events(events, client, settings, batch_size=8, batch_wait=0.01)
        proc, _, killed = _busy(workers, client, set())
        killed_state = _state(client, killed)
        workers.kill_worker(proc)
        t0 = time.monotonic()
        _, horse, horse_job = _busy(workers, client, {proc.pid})
        horse_state = _state(client, horse_job)
        os.killpg(horse, signal.SIGKILL)
        states = {killed: killed_state, horse_job: horse_state}
        taken: dict[str, float] = {}  # back on the queue, retried or started by another worker
        done: dict[str, float] = {}  # finished
        deadline = t0 + 180
        while len(done) < 2 and time.monotonic() < deadline:
            for job_id in (killed, horse_job):
                if job_id not in taken and taken_up_again(client, job_id, states[job_id]):
                    taken[job_id] = time.monotonic() - t0
                if (
                    job_id not in done
                    and Job.fetch(job_id, connection=client, serializer=JSONSerializer).get_status()
                    == JobStatus.FINISHED
                ):
                    done[job_id] = time.monotonic() - t0
                    taken.setdefault(job_id, done[job_id])
            time.sleep(0.05)
        store = Store(client)
        while time.monotonic() < deadline and not all(store.decided(report.accepted)):
            time.sleep(0.2)
        replies = outbox_replies(client, store.keys.outbox("demo-shop"))
        return {
            "taken_up_s": max(taken.values()) if len(taken) == 2 else None,
            "recovered_s": max(done.values()) if len(done) == 2 else None,
            "undecided": sum(not d for d in store.decided(report.accepted)),
            "duplicate_replies": len(replies) - len(set(replies)),
            "decisions": store.stats("demo-shop").get("decisions", 0),
        }
    finally:
        workers.stop()
        server.stop()


def outage(tmp: Path) -> dict[str, object]:
    server = RedisServer(tmp / "outage-redis").start()
    client = redis.Redis.from_url(server.url)
    workers = Workers(server.url, tmp / "outage-logs")
    try:
        workers.start(2)
        workers.wait_registered(client, 2)
        events = traffic(1200)
        settings = Settings(redis_url=server.url, home=tmp / "home")
        report = ingest_events(events, client, settings, batch_size=8, batch_wait=0.01)
        store = Store(client)
        while client.zcard(store.keys.decisions("demo-shop")) < 100:
            time.sleep(0.02)
        server.kill()
        time.sleep(10)
        server.start()
        t0 = time.monotonic()
        client = redis.Redis.from_url(server.url)
        store = Store(client)
        deadline = t0 + 240
        while time.monotonic() < deadline and not all(store.decided(report.accepted)):
            time.sleep(0.2)
        finished = time.monotonic() - t0
        replies = outbox_replies(client, store.keys.outbox("demo-shop"))
        decided = sum(store.decided(report.accepted))
        return {
            "workers_alive": f"{len(workers.alive())}/2",
            "decided": f"{decided}/{len(events)}",
            "decided_twice": int(store.stats("demo-shop").get("decisions", 0)) - decided,
            "duplicate_replies": len(replies) - len(set(replies)),
            "drained_after_restart_s": round(finished, 1),
            "tracebacks_in_worker_logs": workers.logs().count("Traceback"),
        }
    finally:
        workers.stop()
        server.stop()


def _crash_row(head: str, seconds: object) -> str:
    return f"{head} {seconds:.1f} |" if isinstance(seconds, float) else f"{head} not within 180 s |"


def table(results: dict[str, dict[str, object]]) -> str:
    c, o = results["crash"], results["outage"]
    lines = [
        "| scenario | figure | before (issue 11) | now |",
        "|---|---|---:|---:|",
        _crash_row(
            "| kill -9 a worker + its horse, and another horse, mid-batch (3 workers, 1,600 msgs) "
            "| seconds from the kill until both batches are taken up again (re-queued or retried) | – |",
            c["taken_up_s"],
        ),
        _crash_row("| | seconds from the kill until both batches have finished | 820 |", c["recovered_s"]),
        f"| | messages left undecided / duplicate replies | 256 / 0 | {c['undecided']} / {c['duplicate_replies']} |",
        f"| Redis killed for 10 s (2 workers, 1,200 msgs, AOF) | workers alive afterwards | 0/2 busy | {o['workers_alive']} |",
        f"| | decided / decided twice / duplicate replies | – | {o['decided']} / {o['decided_twice']} / {o['duplicate_replies']} |",
        f"| | seconds to drain after the restart | never | {o['drained_after_restart_s']} |",
    ]
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return (
        "\n".join(lines)
        + f"\n\nMeasured {when} ({platform.machine()} Python {platform.python_version()}, {os.cpu_count()} cores)."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rg-reliability-") as tmp:
        results = {"crash": crash(Path(tmp)), "outage": outage(Path(tmp))}
    print(json.dumps(results, indent=2))
    text = table(results)
    print(text)
    if args.update_readme:
        update_readme("reliability", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
