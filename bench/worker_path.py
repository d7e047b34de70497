"""A worker's batch work in this process, counted in instructions: what one batch job of
``worker.jobs.process_batch`` does (``Pipeline.process`` with conversation order and the SLA
tracker, then ``jobs.after_batch``) on the benchmark's traffic, classification measured apart.

    REDIS_URL=redis://127.0.0.1:6379/<db> PYTHONHASHSEED=0 \\
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/wp.%p \\
        python bench/worker_path.py --callgrind [--messages 1280]
    python bench/worker_path.py [--messages 1280]          # CPU time instead (noisy under load)

The database of ``REDIS_URL`` is FLUSHED. The messages are ``bench/throughput.py``'s, as a worker
receives them: validated and serialised by ingest (``model_dump(mode="json")``, through JSON as RQ
carries them), numbered in their conversations first (ingest's ``Store.number``, outside the
measurement), in batches of 256 after one batch that warms up. Measured, each on its own (with
``--callgrind`` the instrumentation is switched on around each region only, ``callgrind_control -i``):

* ``classify``: ``Pipeline.classify`` of every batch (its scores are kept);
* ``batch``: the batch jobs with those scores handed back instead of classifying again;
* ``pieces``: parts of ``batch`` on their own, over the same messages: ``trusted_event``,
  ``Pipeline.decide``, ``Store._entry`` and the decision's JSON (``Decision.json_bytes``).

Compare two checkouts by running this file from one checkout with each one's PYTHONPATH.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after PYTHONPATH: another checkout can be measured with this file

import redis  # noqa: E402

from bench.throughput import messages, texts  # noqa: E402

BATCH = 256


class Counter:
    """Instructions (under callgrind) or CPU seconds of named regions."""

    def __init__(self, callgrind: bool, out: str):
        self.callgrind = callgrind
        self.out = out
        self.pid = str(os.getpid())
        self.results: dict[str, float] = {}

    def _control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, self.pid], capture_output=True, check=True)

    def region(self, name: str, fn: Callable[[], Any]) -> Any:
        if not self.callgrind:
            t0 = time.process_time()
            result = fn()
            self.results[name] = self.results.get(name, 0.0) + time.process_time() - t0
            return result
        self._control("-i", "on")
        self._control("-z")
        result = fn()
        before = set(Path(self.out).parent.glob(Path(self.out).name + "*"))
        self._control("-d", name)  # before switching off, which resets callgrind's state
        self._control("-i", "off")
        (dump,) = set(Path(self.out).parent.glob(Path(self.out).name + "*")) - before
        for line in dump.read_text().splitlines():
            if line.startswith("summary:") or line.startswith("totals:"):
                self.results[name] = self.results.get(name, 0.0) + int(line.split()[1])
                break
        dump.unlink()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1280)
    parser.add_argument("--callgrind", action="store_true", help="count instructions (run under valgrind)")
    parser.add_argument(
        "--out", default="/tmp/wp", help="callgrind's --callgrind-out-file prefix, without the .%%p (dumps are read)"
    )
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    import worker.jobs as jobs
    from worker import defaults
    from worker.brands import load_brands
    from worker.models import parse_event, trusted_event
    from worker.pipeline import Ordering, Pipeline
    from worker.queues import batch_queue
    from worker.settings import Settings
    from worker.store import Store, _ms

    threadpool_limits(1)  # as in a worker process
    settings = Settings.from_env()
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    pipeline = Pipeline(load_brands(settings))
    store = Store(client, settings.key_prefix)
    queue = batch_queue(client, settings)
    sla = jobs.sla_tracker(client, pipeline, settings, queue=queue)
    order = Ordering(queue_key=queue.key, park=lambda event, seq: False)  # one conversation a message: never parked
    counter = Counter(args.callgrind, args.out)

    pool, _ = texts()
    raw = messages(args.messages + BATCH, "wp", pool)
    # as ingest serialises them and RQ's JSONSerializer carries them
    payloads = json.loads(json.dumps([parse_event(m).model_dump(mode="json") for m in raw]))
    batches = [payloads[i : i + BATCH] for i in range(0, len(payloads), BATCH)]
    for batch in batches:  # ingest's numbering
        store.number([parse_event(m) for m in batch])

    # classification, measured apart; its scores handed back to the batch jobs below
    scored: dict[tuple[str, str], Any] = {}
    classify = pipeline.classify

    event_batches = [[trusted_event(m) for m in batch] for batch in batches]

    def classify_all(todo: list[list[Any]]) -> None:
        for events in todo:
            for event, found in zip(events, classify(events), strict=True):
                scored[(event.brand, event.id)] = found

    classify_all(event_batches[:1])  # warm
    counter.region("classify", lambda: classify_all(event_batches[1:]))
    pipeline.classify = lambda events: [scored[(e.brand, e.id)] for e in events]  # type: ignore[method-assign]

    gc.collect()
    gc.freeze()  # as a worker process does (worker.prefork)
    gc.set_threshold(defaults.WORKER_GC_THRESHOLD, *gc.get_threshold()[1:])

    def job(batch: list[dict[str, Any]], n: int) -> None:
        pipeline.process(batch, store, job_id=f"wp-{n}", enqueued_at=time.time(), sla=sla, order=order)
        jobs.after_batch(store, sla)

    job(batches[0], 0)  # warm
    counter.region("batch", lambda: [job(b, n) for n, b in enumerate(batches[1:], start=1)])

    # the pieces, over the same messages (their decisions are stored already: nothing more is written)
    events = [trusted_event(m) for m in payloads[BATCH:]]
    counter.region("trusted_event", lambda: [trusted_event(m) for m in payloads[BATCH:]])
    decided, contexts = store.contexts(events)
    scores = [scored[(e.brand, e.id)] for e in events]
    now = datetime.now(timezone.utc)
    outcomes, _ = counter.region("decide", lambda: pipeline.decide(events, scores, contexts, now=now))
    for outcome in outcomes:
        outcome.decision.job_id = "wp"
    # the decision time in ms as persist hands it over (a checkout before that converts it in _entry)
    handed = {"decided_ms": _ms(now)} if "decided_ms" in inspect.signature(store._entry).parameters else {}
    counter.region(
        "_entry",
        lambda: [
            store._entry(
                o.decision, e, first=True, optout_op=o.optout_op, away_sent=o.away_sent, seq=1, queue_key="q", **handed
            )
            for o, e in zip(outcomes, events, strict=True)
        ],
    )
    counter.region("json_bytes", lambda: [o.decision.json_bytes() for o in outcomes])

    n = args.messages
    unit = "instructions" if args.callgrind else "cpu_us"
    scale = 1.0 if args.callgrind else 1e6
    report = {
        "messages": n,
        "unit": f"{unit} per message",
        **{name: round(value * scale / n, 1) for name, value in counter.results.items()},
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
