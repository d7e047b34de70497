"""Per-conversation order under racing traffic, before and after, with real worker processes (~8 minutes).

    python bench/ordering.py [--before REF] [--update-readme]

Traffic made to race (tests/faults.py ``racing_pairs``): "hello" pairs (the two first questions of a
new conversation, each of which would get the first-contact greeting if decided alone) and "STOP, then
a question" pairs. Three scenarios, each run with the workers of ``REF`` (default: the commit before
per-conversation order, checked out in a temporary git worktree) and of this checkout, one after the
other on the same machine, each on its own private redis-server:

1. ordinary batching (batches of 64, held at most 50 ms), 2 workers: 128 + 128 pairs, each pair split
   across two adjacent batches;
2. batch size 1, 2 workers: 100 + 100 pairs, a pair's two messages in adjacent jobs;
3. the same with 3 workers, one killed with kill -9 (with its work-horse) a quarter of the way in.

Reported: conversations greeted twice, automated answers after a STOP, messages decided twice /
replied twice / left undecided / decided out of order, seconds to decide everything and the workers'
CPU time per message (workers and their reaped work-horses; not measured when a worker is killed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.readme_table import load_note, save_results, update_readme  # noqa: E402
from tests.faults import ORDER_BRAND, RedisServer, Workers, check_order, horse_of, racing_pairs  # noqa: E402
from worker.ingest import ingest_events  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.store import Store  # noqa: E402

SCENARIOS: dict[str, dict[str, Any]] = {
    "ordinary": {"workers": 2, "batch_size": 64, "batch_wait": 0.05, "hellos": 128, "stops": 128, "split": 64},
    "batch1": {"workers": 2, "batch_size": 1, "batch_wait": 0.0, "hellos": 100, "stops": 100},
    "batch1_kill": {"workers": 3, "batch_size": 1, "batch_wait": 0.0, "hellos": 100, "stops": 100, "kill": True},
}


def scenario(
    root: Path,
    tmp: Path,
    name: str,
    *,
    workers: int,
    batch_size: int,
    batch_wait: float,
    hellos: int,
    stops: int,
    split: int = 0,
    kill: bool = False,
) -> dict[str, Any]:
    server = RedisServer(tmp / f"{name}-redis").start()
    client = redis.Redis.from_url(server.url)
    procs = Workers(server.url, tmp / f"{name}-logs", root=root)
    try:
        procs.start(workers)
        procs.wait_registered(client, workers)
        events, hello, stop = racing_pairs(hellos, stops, split=split)
        cpu_before = procs.cpu_seconds()
        started = time.monotonic()
        report = ingest_events(
            events,
            client,
            Settings(redis_url=server.url, home=tmp / "home"),
            batch_size=batch_size,
            batch_wait=batch_wait,
        )
        store = Store(client)
        if kill:
            while client.zcard(store.keys.decisions(ORDER_BRAND)) < len(events) // 4:
                time.sleep(0.01)
            victim = next((p for p in procs.alive() if horse_of(p.pid)), procs.alive()[0])
            procs.kill_worker(victim)
        deadline = started + 300
        while time.monotonic() < deadline and not all(store.decided(report.accepted)):
            time.sleep(0.1)
        seconds = time.monotonic() - started
        cpu = procs.cpu_seconds() - cpu_before
        time.sleep(1.0)  # anything decided or replied twice after the last message shows up
        problems = check_order(client, store, events, hello, stop)
        decided = sum(store.decided(report.accepted))
        return {
            "messages": len(events),
            "hello_pairs": hellos,
            "stop_pairs": stops,
            "greeted_twice": len(problems["greeted_twice"]),
            "answered_after_stop": len(problems["answered_after_stop"]),
            "decided_twice": int(store.stats(ORDER_BRAND).get("decisions", 0)) - decided,
            "replied_twice": len(problems["replied_twice"]),
            "undecided": len(events) - decided,
            "out_of_order": len(problems["out_of_order"]) + len(problems["greeted_not_first"]),
            "seconds": round(seconds, 1),
            "cpu_ms_per_message": None if kill else round(cpu * 1000 / len(events), 1),
        }
    finally:
        procs.stop()
        server.stop()


def default_before() -> str:
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "worker/lua/order.lua"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not added:
        raise SystemExit("cannot find the commit that added worker/lua/order.lua; pass --before REF")
    return f"{added[-1]}~1"


def table(results: dict[str, Any]) -> str:
    before, now = results["before"], results["now"]
    rows = [
        (
            "ordinary",
            f"batches of 64, 2 workers, {now['ordinary']['hello_pairs']} + "
            f"{now['ordinary']['stop_pairs']} pairs split across adjacent batches",
        ),
        (
            "batch1",
            f"batch size 1, 2 workers, {now['batch1']['hello_pairs']} + {now['batch1']['stop_pairs']} "
            "pairs in adjacent jobs",
        ),
        ("batch1_kill", "the same, 3 workers, one killed with kill -9 mid-run"),
    ]
    lines = ["| scenario | figure | before | now |", "|---|---|---:|---:|"]
    for key, label in rows:
        b, n = before[key], now[key]
        lines.append(
            f"| {label} | conversations greeted twice | {b['greeted_twice']}/{b['hello_pairs']} | "
            f"{n['greeted_twice']}/{n['hello_pairs']} |"
        )
        lines.append(
            f"| | automated answers after STOP | {b['answered_after_stop']}/{b['stop_pairs']} | "
            f"{n['answered_after_stop']}/{n['stop_pairs']} |"
        )
        lines.append(
            f"| | decided twice / replied twice / undecided / out of order | "
            f"{b['decided_twice']} / {b['replied_twice']} / {b['undecided']} / {b['out_of_order']} | "
            f"{n['decided_twice']} / {n['replied_twice']} / {n['undecided']} / {n['out_of_order']} |"
        )
        cpu = (
            f" ({b['cpu_ms_per_message']} / {n['cpu_ms_per_message']} ms CPU per message, "
            f"×{n['cpu_ms_per_message'] / b['cpu_ms_per_message']:.2f})"
            if b["cpu_ms_per_message"]
            else ""
        )
        lines.append(f"| | seconds to decide all {n['messages']}{cpu} | {b['seconds']} | {n['seconds']} |")
    when = results["measured"]
    return (
        "\n".join(lines)
        + f"\n\nBefore = the workers of {results['before_ref']}, now = this checkout, run one after the "
        f"other on one machine shared with other work ({results['load']}); measured {when}."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--before",
        help="git ref whose workers give the 'before' column (default: the commit before per-conversation order)",
    )
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    ref = args.before or default_before()
    results: dict[str, Any] = {
        "before_ref": subprocess.run(
            ["git", "rev-parse", "--short", ref], cwd=ROOT, text=True, capture_output=True, check=True
        ).stdout.strip()
    }
    with tempfile.TemporaryDirectory(prefix="rg-ordering-") as tmp:
        checkout = Path(tmp) / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(checkout), ref], cwd=ROOT, check=True, capture_output=True
        )
        try:
            for column, root in (("before", checkout), ("now", ROOT)):
                results[column] = {}
                for name, config in SCENARIOS.items():
                    results[column][name] = scenario(root, Path(tmp) / column, name, **config)
                    print(column, name, json.dumps(results[column][name]), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(checkout)], cwd=ROOT, capture_output=True)
    results["measured"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results["load"] = load_note()
    save_results("ordering", results)
    text = table(results)
    print(text)
    if args.update_readme:
        update_readme("ordering", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
