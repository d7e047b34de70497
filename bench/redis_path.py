"""The Redis side of the hot path alone: a worker's store calls, in this process, against a private
redis-server (append-only file, as bench/throughput.py's), on the benchmark's traffic.

    python bench/redis_path.py [--messages 2560] [--rounds 3]

Each round decides ``--messages`` new messages (numbered first, as ingest does, outside the
measurement) in batches of 256 with ``Pipeline.process`` and the SLA tracker, then runs the
after-batch sweeps (``finish_overdue``, ``fire_due``) as ``worker.jobs.process_batch`` does
("sweeps"). Printed
per message: the client CPU of each store call (``time.process_time`` around it), Redis's CPU
(``INFO cpu``) and commands (``INFO commandstats``, a script's own commands included), and each
command's calls and µs. Compare two checkouts by running this file with each one's PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.throughput import messages, redis_cpu, texts  # noqa: E402
from tests.faults import RedisServer  # noqa: E402

#: the store calls timed, as (module, class, method)
TIMED = [
    ("worker.store", "Store", "read_context"),
    ("worker.store", "Store", "persist"),
    ("worker.sla.tracker", "SlaTracker", "on_decided"),
]


def _timed(spent: dict[str, float], name: str, fn: Any) -> Any:
    def inner(*args: Any, **kwargs: Any) -> Any:
        t0 = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.process_time() - t0

    return inner


def commandstats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in client.info("commandstats").items()
    }


class CallgrindRedis(RedisServer):
    """The same private redis-server run under valgrind's callgrind: its instructions are counted
    (exact and unaffected by other load on the machine), zeroed and read with callgrind_control."""

    start_seconds = 60.0

    def launcher(self) -> list[str]:
        return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.directory}/callgrind.%p"]

    def zero(self) -> None:
        subprocess.run(["callgrind_control", "-z", str(self.proc.pid)], capture_output=True, check=True)

    def instructions(self) -> int:
        """Instructions since the last zero()."""
        before = set(self.directory.glob("callgrind.*"))
        subprocess.run(["callgrind_control", "-d", str(self.proc.pid)], capture_output=True, check=True)
        (dump,) = set(self.directory.glob("callgrind.*")) - before
        for line in dump.read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
        raise RuntimeError(f"no summary in {dump}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2560)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--callgrind", action="store_true", help="count Redis's instructions under valgrind")
    args = parser.parse_args()

    import importlib

    from threadpoolctl import threadpool_limits

    import worker.jobs as jobs
    from worker.brands import load_brands
    from worker.models import parse_event
    from worker.pipeline import Ordering, Pipeline
    from worker.queues import batch_queue
    from worker.settings import Settings
    from worker.store import Store

    threadpool_limits(1)
    directory = Path(tempfile.mkdtemp(prefix="rg-redis-path-"))
    server = (CallgrindRedis if args.callgrind else RedisServer)(directory).start()
    try:
        client = redis.Redis.from_url(server.url)
        settings = Settings(redis_url=server.url)
        pipeline = Pipeline(load_brands(settings))
        spent: dict[str, float] = {}
        for module, cls, method in TIMED:
            owner = importlib.import_module(module)
            target = getattr(owner, cls) if cls else owner
            setattr(target, method, _timed(spent, method, getattr(target, method)))
        store = Store(client, settings.key_prefix)
        order = Ordering(queue_key=batch_queue(client, settings).key, park=lambda event, seq: False)
        pool, _ = texts()
        rows = []
        for r in range(args.rounds + 1):  # round 0 warms up
            msgs = messages(args.messages, f"r{r}", pool)
            batches = [msgs[i : i + 256] for i in range(0, len(msgs), 256)]
            for batch in batches:  # ingest's numbering, outside the measurement
                store.number([parse_event(m) for m in batch])
            spent.clear()
            if args.callgrind:
                server.zero()
            stats0, cpu0, client0 = commandstats(client), redis_cpu(client), time.process_time()
            for batch in batches:
                sla = jobs.sla_tracker(client, pipeline, settings)
                pipeline.process(batch, store, sla=sla, order=order)
                t0 = time.process_time()
                if hasattr(jobs, "after_batch"):  # as worker.jobs.process_batch does
                    jobs.after_batch(store, sla)
                else:  # a checkout before it
                    jobs.finish_overdue(store, sla)
                    sla.fire_due()
                spent["sweeps"] = spent.get("sweeps", 0.0) + time.process_time() - t0
            client_cpu = time.process_time() - client0
            redis_used = redis_cpu(client) - cpu0
            instructions = server.instructions() if args.callgrind else None
            stats1 = commandstats(client)
            n = len(msgs)
            mix = {
                name: (
                    round((calls - stats0.get(name, (0, 0))[0]) / n, 3),
                    round((usec - stats0.get(name, (0, 0))[1]) / n, 2),
                )
                for name, (calls, usec) in stats1.items()
                if calls - stats0.get(name, (0, 0))[0] > 0 and name != "info"
            }
            if r == 0:
                continue
            rows.append(
                {
                    "round": r,
                    "client_us_per_msg": {k: round(v / n * 1e6, 1) for k, v in spent.items()},
                    "client_total_us_per_msg": round(client_cpu / n * 1e6, 1),
                    "redis_cpu_us_per_msg": round(redis_used / n * 1e6, 1),
                    "redis_kinstr_per_msg": round(instructions / n / 1000, 1) if instructions else None,
                    "redis_commands_per_msg": round(sum(c for c, _ in mix.values()), 2),
                    "mix (calls, usec) per msg": dict(sorted(mix.items(), key=lambda kv: -kv[1][0])),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        keys = ["read_context", "persist", "on_decided", "sweeps"]
        summary = {
            "client_us_per_msg (median)": {
                k: sorted(row["client_us_per_msg"].get(k, 0.0) for row in rows)[len(rows) // 2] for k in keys
            },
            "redis_cpu_us_per_msg": [row["redis_cpu_us_per_msg"] for row in rows],
            "redis_kinstr_per_msg": [row["redis_kinstr_per_msg"] for row in rows],
            "redis_commands_per_msg": [row["redis_commands_per_msg"] for row in rows],
        }
        print(json.dumps(summary))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
