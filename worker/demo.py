"""``replyguard demo``: the demo brand end to end, on real RQ workers and a real Redis.

It checks the configuration, starts worker processes, feeds a realistic sample
of Komorebi Store traffic (``worker/demo/traffic.jsonl``: English and Japanese,
spam, abuse, FAQs, opt-out, VIP, out of hours, gibberish), shows progress, and
prints one row per decision next to what the sample expects. Message, author
and conversation ids get a per-run prefix, so the demo can run again against
the same Redis. The sample arrives in phases (``metadata.demo_phase``): a
follow-up from a customer who opted out is sent after their opt-out is decided.

The demo is isolated: its own queue (``replyguard-demo``) and key prefix
(``rg-demo``), so a worker already running elsewhere on the usual queue cannot
take its batches and decide them with another policy. It stops the workers (and
LLM stand-in) it started; an embedded Redis keeps running so the decisions can be
inspected, and the demo prints the exact command that stops it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unicodedata
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from rq import Worker

from worker.brands import load_brands
from worker.connection import connect, embedded_for
from worker.exceptions import WaitTimeout
from worker.ingest import Ingestor, wait_for
from worker.llm_standin import StandInLLM
from worker.models import Decision
from worker.queues import batch_queue
from worker.settings import Settings
from worker.yaml_source import read_yaml


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


def _print_sla(client: Any, settings: Any, sample: list[dict[str, Any]]) -> None:
    """The SLA breaches the sample's (old) escalations ran into, with what they did (a re-route, ...)."""
    from worker.sla.tracker import SlaTracker
    from worker.store import Store

    tracker = SlaTracker(Store(client, settings.key_prefix), {})
    brands = sorted({e["brand"] for e in sample})
    lines = []
    for brand in brands:
        views = tracker.views(brand, [e["id"] for e in sample if e["brand"] == brand])
        for mid, view in views.items():
            for b in view["breaches"]:
                moved = (
                    f"re-routed {b['role_before']} → {b['role_after']}, {b['priority_after']}"
                    if b["role_before"] != b["role_after"]
                    else (
                        f"priority {b['priority_before']} → {b['priority_after']}"
                        if b["priority_before"] != b["priority_after"]
                        else "recorded"
                    )
                )
                lines.append(
                    f"  - {mid}: {b['target'].replace('_', ' ')} target missed (SLA {view['policy']}): {moved}"
                )
    if lines:
        print(f"SLA: the sample's messages are days old, so {len(lines)} targets are already missed:")
        print("\n".join(line for line in lines if "re-routed" in line) or lines[0])
        rest = len([line for line in lines if "re-routed" not in line])
        if rest:
            print(f"  … and {rest} more (priorities raised; replyguard review list shows every clock)")


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
    """One ``replyguard worker`` that loads the models once and forks ``n`` worker processes."""
    return [
        subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "worker", "--processes", str(n)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    ]


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


PERSONALISED_INTENTS = ("order_status", "returns", "shipping_time", "opening_hours", "pricing")


def llm_policy_dir(base: Path, target: Path, url: str, model: str, key_env: str | None) -> Path:
    """A copy of the policies with LLM drafting switched on for the demo brand."""
    target.mkdir(parents=True, exist_ok=True)
    for path in base.glob("*.yaml"):
        data = read_yaml(path).data
        if data.get("brand") == "demo-shop":
            provider = {
                "base_url": url,
                "model": model,
                "timeout_seconds": 15,
                "max_retries": 2,
                "concurrency": 4,
                "monthly_token_budget": 500_000,
            }
            if key_env:
                provider["api_key_env"] = key_env
            data["llm"] = {
                "providers": {"main": provider},
                "default_provider": "main",
                "personalise": {
                    "defaults": {"temperature": 0.3, "max_tokens": 300},
                    "intents": {i: {} for i in PERSONALISED_INTENTS},
                    "deadline_seconds": 30,
                },
                "cascade": {"band_low": 0.35, "top_k": 3, "may_auto_reply": False, "deadline_seconds": 30},
            }
        (target / path.name).write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target


#: The demo's own queue and key prefix (see the module docstring).
DEMO_QUEUE = "replyguard-demo"
DEMO_KEY_PREFIX = "rg-demo"


def _command() -> str:
    """How the user can run replyguard from a shell: the console script beside this Python, if any."""
    script = Path(sys.executable).parent / "replyguard"
    return shlex.quote(str(script)) if script.exists() else f"{shlex.quote(sys.executable)} -m worker.cli"


def run_demo(
    workers: int = 2,
    check: bool = False,
    llm: str | None = None,
    llm_model: str = "gpt-4o-mini",
    llm_key_env: str | None = None,
    webhooks: bool = True,
) -> int:
    settings = Settings.from_env().model_copy(update={"queue": DEMO_QUEUE, "key_prefix": DEMO_KEY_PREFIX})
    tty = sys.stdout.isatty()
    print("replyguard demo: Komorebi Store (brand demo-shop)\n")
    standin = None
    workdir = None
    if llm:
        workdir = Path(tempfile.mkdtemp(prefix="replyguard-demo-"))
        if llm == "standin":
            standin = StandInLLM().start()
            url, llm_model = standin.base_url, "replyguard-standin"
            print(
                f"  llm        stand-in OpenAI-compatible server at {url} (rule-based, NOT a language model;\n"
                "             use --llm URL for a real one)"
            )
        else:
            url = llm
            print(f"  llm        {url} model {llm_model}")
        policies = llm_policy_dir(settings.policies_dir, workdir / "policies", url, llm_model, llm_key_env)
        settings = settings.model_copy(update={"policies_dir": policies})
    try:
        return _run(settings, workers, check, tty, llm_on=bool(llm), webhooks=webhooks)
    finally:
        if standin is not None:
            standin.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(settings: Settings, workers: int, check: bool, tty: bool, llm_on: bool, webhooks: bool = True) -> int:
    brands = load_brands(settings)
    brand = brands["demo-shop"]
    print(f"  policy     {brand.loaded.path.name} {brand.policy_version}")
    print(f"  templates  {len(brand.templates.versions())} approved ({brand.templates.path})")
    print(f"  models     {', '.join(brand.model_versions().values())}")
    client = connect(settings)
    env = {
        **os.environ,
        "REPLYGUARD_QUEUE": settings.queue,
        "REPLYGUARD_KEY_PREFIX": settings.key_prefix,
        "REPLYGUARD_POLICIES_DIR": str(settings.policies_dir),
    }
    if not settings.redis_url:
        server = embedded_for(settings)
        env["REDIS_URL"] = server.url
        stop = f"REPLYGUARD_HOME={shlex.quote(str(settings.home))} {_command()} redis stop"
        print(
            f"  redis      embedded redis-server at {server.socket}\n"
            f"             (it keeps running for `show` / `review`; stop it with: {stop})"
        )
    else:
        print(f"  redis      {settings.redacted_redis_url()}")

    procs = _start_workers(workers, env)
    queue = batch_queue(client, settings)
    try:
        deadline = time.monotonic() + 60
        while len(Worker.all(queue=queue)) < workers:
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                print(
                    "\na worker failed to start:\n" + (dead[0].stderr.read() if dead[0].stderr else ""), file=sys.stderr
                )
                return 2
            if time.monotonic() > deadline:
                print("\nworkers did not start within 60s", file=sys.stderr)
                return 2
            time.sleep(0.1)
        print(
            f"  workers    {workers} RQ worker processes (replyguard worker --processes {workers}) on the demo's own queue {settings.queue!r}, "
            f"key prefix {settings.key_prefix!r}\n"
        )

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
            try:
                result = wait_for(
                    report,
                    client,
                    settings,
                    timeout=120,
                    until_final=True,
                    progress=lambda d, t: _progress(len(decisions) + d, total, tty, state),
                )
            except WaitTimeout as exc:
                print(f"\n{exc}", file=sys.stderr)
                result = exc.result
            decisions.update({d.message_id: d for d in result.decisions})
            if result.missing:
                print(
                    f"\n{len(result.missing)} messages were not decided (failed jobs: {result.failed_jobs})",
                    file=sys.stderr,
                )
        if tty:
            print()
        elapsed = time.monotonic() - started
        ok = _print_table(sample, decisions, llm_on, total, elapsed)
        if webhooks:
            from worker.demo_webhooks import run_webhooks

            columns = shutil.get_terminal_size((160, 40)).columns
            ok -= run_webhooks(
                env.get("REDIS_URL") or settings.redis_url or "",
                run,
                _cell,
                columns,
                {k: env[k] for k in ("REPLYGUARD_QUEUE", "REPLYGUARD_KEY_PREFIX", "REPLYGUARD_POLICIES_DIR")},
                settings.key_prefix,
            )
    finally:
        _stop_workers(procs)
    _print_sla(client, settings, sample)
    first = sample[0]["id"]
    cmd = f"REPLYGUARD_KEY_PREFIX={settings.key_prefix} {_command()}"
    print(
        f"Look closer (the demo's decisions are under key prefix {settings.key_prefix!r}):\n"
        f"  {cmd} show {first}\n  {cmd} review list\n  {cmd} stats"
    )
    if check and ok != total:
        return 1
    return 0


def _print_table(
    sample: list[dict[str, Any]], decisions: dict[str, Decision], llm_on: bool, total: int, elapsed: float
) -> int:
    columns = shutil.get_terminal_size((160, 40)).columns
    text_w = max(24, min(40, (columns - 92) // 2))
    out_w = max(24, columns - 92 - text_w)
    header = (
        f"{'#':>3} {'channel':17} {'lang':4} {_cell('message', text_w)} {'actions':22} {'rule':24} "
        f"{_cell('reply / escalation', out_w)} ok"
    )
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
        print(
            f"{n:3d} {_cell(channel, 17)} {d.language:4} {_cell(event['text'] or '(no text)', text_w)} "
            f"{_cell(actions, 22)} {_cell(d.rule, 24)} {_cell(outcome, out_w)} {'✓' if met else '✗'}"
        )
        if llm_on and d.llm is not None:
            what = {
                "used": "LLM result used",
                "fallback": "plain template kept",
                "escalated": "escalated instead",
                "unchanged": "unchanged",
            }.get(d.llm.outcome or "", d.llm.outcome or "pending")
            why = f" (reason: {d.llm.reason}{': ' + d.llm.detail if d.llm.detail else ''})" if d.llm.reason else ""
            print(f"{'':4}↳ {d.llm.task}: {what}{why}")
            if d.llm.outcome == "used" and d.llm.task == "personalise":
                print(f"{'':6}“{_cell(d.reply or '', max(40, columns - 10)).rstrip()}”")
            if d.llm.choice:
                print(
                    f"{'':6}LLM chose {d.llm.choice.get('intent')} ({d.llm.choice.get('confidence')}); "
                    f"classifier said {d.llm.classifier}"
                )
    print()
    print(
        f"{len(decisions)}/{total} messages decided in {elapsed:.1f}s; {ok}/{total} match the sample's expected outcome."
    )
    if llm_on:
        results: dict[str, int] = {}
        for d in decisions.values():
            if d.llm:
                key = f"{d.llm.task} {d.llm.outcome}" + (f" ({d.llm.reason})" if d.llm.reason else "")
                results[key] = results.get(key, 0) + 1
        print("LLM: " + "; ".join(f"{k}: {v}" for k, v in sorted(results.items())))
    return ok
