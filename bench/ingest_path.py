"""What ingest spends on a message, counted in instructions: ``Ingestor.submit`` of
``bench/throughput.py``'s messages (dicts, as its drain submits them) in full batches, the batches'
numbering script (``Store.number``, ``lua/order.lua``) and their enqueue (``queues.enqueue_events``:
the job payload's JSON, its compression, RQ's unique enqueue), as the drain ingests them.

    REDIS_URL=redis://127.0.0.1:6379/<db> PYTHONHASHSEED=0 \\
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/ip.%p \\
        python bench/ingest_path.py --callgrind [--messages 5120]
    python bench/ingest_path.py [--messages 5120]          # CPU time instead (noisy under load)

The database of ``REDIS_URL`` is FLUSHED; ``--private`` runs a private redis-server (append-only
file, as in production) instead, whose ``INFO commandstats`` then counts this run's commands alone. The ingestor holds a batch until it is full (its
``batch_wait`` and ``busy_wait`` long, so its timer never flushes early), and one batch is ingested
first to warm up. Measured, each on its own (with ``--callgrind`` the instrumentation is switched on
around each region only):

* ``ingest``: every ``submit`` and the ``close``, per message (``--messages`` should be a multiple of
  the batch size, 256, so every batch is full);
* ``pieces``: parts of it on their own, over the same messages: ``parse_event`` of each message,
  ``Store.number`` of each batch, ``enqueue_events`` of each batch (new job ids).

The Redis commands a message of ``ingest`` come from ``INFO commandstats`` (the whole server's: exact
with ``--private`` only). Compare two checkouts by
running this file from one checkout with each one's PYTHONPATH.
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

from bench.redis_path import commandstats  # noqa: E402
from bench.throughput import messages, texts  # noqa: E402
from bench.worker_path import Counter  # noqa: E402
from tests.faults import RedisServer  # noqa: E402

BATCH = 256

#: seconds: longer than any run, so a batch leaves the ingestor only when it is full (or at close)
NEVER = 3600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20 * BATCH)
    parser.add_argument("--callgrind", action="store_true", help="count instructions (run under valgrind)")
    parser.add_argument("--private", action="store_true", help="a private redis-server instead of REDIS_URL's")
    parser.add_argument(
        "--out", default="/tmp/ip", help="callgrind's --callgrind-out-file prefix, without the .%%p (dumps are read)"
    )
    args = parser.parse_args()

    from worker.settings import Settings

    server = RedisServer(Path(tempfile.mkdtemp(prefix="rg-ingest-path-"))).start() if args.private else None
    try:
        settings = Settings.from_env() if server is None else Settings(redis_url=server.url)
        run(args, settings)
    finally:
        if server is not None:
            server.stop()


def run(args: argparse.Namespace, settings: Any) -> None:
    from worker.ingest import Ingestor
    from worker.models import parse_event
    from worker.queues import batch_queue, enqueue_events
    from worker.store import Store

    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    counter = Counter(args.callgrind, args.out)
    pool, _ = texts()

    def ingest(msgs: list[dict[str, Any]]) -> Any:
        with Ingestor(client, settings, batch_size=BATCH, batch_wait=NEVER, busy_wait=NEVER) as ingestor:
            for m in msgs:
                ingestor.submit(m)
        return ingestor.report

    ingest(messages(BATCH, "warm", pool))
    msgs = messages(args.messages, "ip", pool)
    gc.collect()
    stats0 = commandstats(client)
    report = counter.region("ingest", lambda: ingest(msgs))
    stats1 = commandstats(client)
    if len(report.accepted) != len(msgs) or report.invalid or report.skipped:
        raise SystemExit(f"ingest did not accept every message: {len(report.accepted)} of {len(msgs)}")

    # the pieces, again over the same messages (as new ones: fresh tag, new job ids)
    again = messages(args.messages, "ip2", pool)
    store = Store(client, settings.key_prefix)
    queue = batch_queue(client, settings)
    events = counter.region("parse_event", lambda: [parse_event(m) for m in again])
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    counter.region("number", lambda: [store.number(b) for b in batches])
    counter.region("enqueue", lambda: [enqueue_events(queue, b, f"ip-{k}") for k, b in enumerate(batches)])

    n = len(msgs)
    unit, scale = ("instructions", 1.0) if args.callgrind else ("cpu_us", 1e6)
    commands = {
        cmd: round((calls - stats0.get(cmd, (0, 0))[0]) / n, 3)
        for cmd, (calls, _) in stats1.items()
        if calls - stats0.get(cmd, (0, 0))[0] > 0 and cmd != "info"
    }
    print(
        json.dumps(
            {
                "messages": n,
                "batch": BATCH,
                f"{unit} a message": {name: round(v * scale / n, 1) for name, v in counter.results.items()},
                "redis commands a message (ingest)": commands,
                "redis commands a message, total": round(sum(commands.values()), 3),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
