"""``replyguard demo``: the demo brand end to end, on real RQ workers and a real Redis.

It checks the configuration, starts worker processes, feeds a realistic sample
of Komorebi Store traffic (``worker/demo/traffic.jsonl``: English and Japanese,
spam, abuse, FAQs, opt-out, VIP, out of hours, gibberish), shows progress, and
prints one row per decision next to what the sample expects. Message, author
and conversation ids get a per-run prefix, so the demo can run again against
the same Redis. The sample arrives in phases (``metadata.demo_phase``): a
follow-up from a customer who opted out is sent after their opt-out is decided.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
import uuid
from importlib import resources
from typing import Any

from rq import Worker

from worker.brands import load_brands
from worker.connection import connect, embedded_for
from worker.ingest import Ingestor, wait_for
from worker.models import Decision
from worker.queues import batch_queue
from worker.settings import Settings


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cell(text: str, width: int) -> str:
    """Truncate/pad to a display width (CJK characters count double)."""
    text = " ".join(text.split())
    out, used = [], 0
    for c in text:
        w = 2 if unicodedata.east_asian_width(c) in "WF" else 1
        if used + w > width - (1 if _width(text) > width else 0):
            out.append("…")
            used += 1
            break
        out.append(c)
        used += w
    return "".join(out) + " " * max(0, width - used)


def load_sample() -> list[dict[str, Any]]:
    raw = resources.files("worker").joinpath("demo/traffic.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def _prefixed(event: dict[str, Any], run: str) -> dict[str, Any]:
    e = json.loads(json.dumps(event))
    e["id"] = f"{run}-{e['id']}"
    e["conversation_id"] = f"{run}-{e['conversation_id']}"
    e["author"]["id"] = f"{run}-{e['author']['id']}"
    return e


def expectation_met(decision: Decision, expect: dict[str, Any]) -> bool:
    if "actions" in expect and sorted(a.value for a in decision.actions) != sorted(expect["actions"]):
        return False
    if "rule" in expect and decision.rule != expect["rule"]:
        return False
    if "template_intent" in expect:
        intents = {t.id.split(".")[0] for t in decision.templates}
        if expect["template_intent"] not in intents:
            return False
    return True


def _start_workers(n: int, env: dict[str, str]) -> list[subprocess.Popen]:
    procs = []
    for _ in range(n):
        procs.append(subprocess.Popen([sys.executable, "-m", "worker.cli", "worker"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    return procs


def _stop_workers(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


def _progress(done: int, total: int, tty: bool, state: dict[str, int]) -> None:
    if tty:
        bar = int(30 * done / max(1, total))
        print(f"\r  deciding {done:3d}/{total} [{'#' * bar}{'.' * (30 - bar)}]", end="", flush=True)
    elif done * 4 // max(1, total) > state.get("q", -1):
        state["q"] = done * 4 // max(1, total)
        print(f"  decided {done}/{total}", flush=True)


def run_demo(workers: int = 2, check: bool = False) -> int:
    settings = Settings.from_env()
    tty = sys.stdout.isatty()
    print("replyguard demo: Komorebi Store (brand demo-shop)\n")
    brands = load_brands(settings)
    brand = brands["demo-shop"]
    print(f"  policy     {brand.loaded.path.name} {brand.policy_version}")
    print(f"  templates  {len(brand.templates.versions())} approved ({brand.templates.path})")
    print(f"  models     {', '.join(brand.model_versions().values())}")
    client = connect(settings)
    env = dict(os.environ)
    if not settings.redis_url:
        server = embedded_for(settings)
        env["REDIS_URL"] = server.url
        print(f"  redis      embedded redis-server at {server.socket} (stop it with: replyguard redis stop)")
    else:
        print(f"  redis      {settings.redacted_redis_url()}")

    procs = _start_workers(workers, env)
    queue = batch_queue(client, settings)
    try:
        deadline = time.monotonic() + 60
        while len(Worker.all(queue=queue)) < workers:
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                print("\na worker failed to start:\n" + (dead[0].stderr.read() if dead[0].stderr else ""), file=sys.stderr)
                return 2
            if time.monotonic() > deadline:
                print("\nworkers did not start within 60s", file=sys.stderr)
                return 2
            time.sleep(0.1)
        print(f"  workers    {workers} RQ workers on queue {settings.queue!r}\n")

        run = uuid.uuid4().hex[:6]
        sample = [_prefixed(e, run) for e in load_sample()]
        phases = sorted({e["metadata"].get("demo_phase", 1) for e in sample})
        decisions: dict[str, Decision] = {}
        state: dict[str, int] = {}
        total = len(sample)
        started = time.monotonic()
        for phase in phases:
            batch = [e for e in sample if e["metadata"].get("demo_phase", 1) == phase]
            ingestor = Ingestor(client, settings)
            for e in batch:
                ingestor.submit(e, e["id"])
            report = ingestor.close()
            result = wait_for(client, settings, report, timeout=120,
                              progress=lambda d, t: _progress(len(decisions) + d, total, tty, state))
            decisions.update({d.message_id: d for d in result.decisions})
            if result.missing:
                print(f"\n{len(result.missing)} messages were not decided (failed jobs: {result.failed_jobs})", file=sys.stderr)
        if tty:
            print()
        elapsed = time.monotonic() - started
    finally:
        _stop_workers(procs)

    columns = shutil.get_terminal_size((160, 40)).columns
    text_w = max(24, min(40, (columns - 92) // 2))
    out_w = max(24, columns - 92 - text_w)
    header = (f"{'#':>3} {'channel':17} {'lang':4} {_cell('message', text_w)} {'actions':22} {'rule':24} "
              f"{_cell('reply / escalation', out_w)} ok")
    print(header)
    print("-" * min(columns, _width(header)))
    ok = 0
    for n, event in enumerate(sample, start=1):
        d = decisions.get(event["id"])
        expect = event["metadata"].get("expect", {})
        if d is None:
            print(f"{n:3d} {'(not decided)':17}")
            continue
        met = expectation_met(d, expect)
        ok += met
        channel = f"{d.platform} {d.kind}"
        if d.reply:
            outcome = f"“{d.reply}”"
        elif d.escalation:
            outcome = f"→ {d.escalation.role}/{d.escalation.priority}: {d.escalation.reason}"
        else:
            outcome = ""
        if d.reply and d.escalation:
            outcome = f"→ {d.escalation.role} + “{d.reply}”"
        actions = "+".join(a.value for a in d.actions)
        print(f"{n:3d} {_cell(channel, 17)} {d.language:4} {_cell(event['text'] or '(no text)', text_w)} "
              f"{_cell(actions, 22)} {_cell(d.rule, 24)} {_cell(outcome, out_w)} {'✓' if met else '✗'}")
    print()
    print(f"{len(decisions)}/{total} messages decided in {elapsed:.1f}s; {ok}/{total} match the sample's expected outcome.")
    first = sample[0]["id"]
    print(f"Look closer: replyguard show {first}   ·   replyguard review list   ·   replyguard stats")
    if check and ok != total:
        return 1
    return 0
