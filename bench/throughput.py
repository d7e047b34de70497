"""Throughput, CPU per message, latency and memory of the whole path, measured in one run.

    python bench/throughput.py [--messages 10000] [--update-readme]
    python bench/throughput.py --paced-only [--rates 1000] [--paced-seconds 8]   # latency only

Everything runs against a private redis-server on loopback (append-only file, ``appendfsync
everysec``, as production should), so its CPU time (``INFO cpu``) is this benchmark's alone;
``--redis-url`` uses another server instead (its database is FLUSHED). Side by side, in one run:

1. **Naive baseline**: one no-op RQ job per message (``builtins.len`` of the event, RQ's JSON
   serializer), drained by 2 stock ``rq worker -w rq.worker.SimpleWorker`` processes.
2. **Before**: ``replyguard worker --fork-per-job`` (RQ's forking worker) × 2, same ingest.
3. **End to end**: ``Ingestor`` (validate, batch, enqueue) → one ``replyguard worker --processes 2``
   → decision stored (the Lua write), ``--messages`` real-text messages (the shared datasets' test
   texts and the demo traffic as demo-shop DMs and comments; the demo traffic alone without
   ../shared/datasets). CPU per message: the worker processes (/proc), Redis (INFO cpu), ingest
   (this process).
4. **Latency** ingest → decision stored at a paced 200, 500 and 1,000 messages/s offered: each
   message's submit time against the Redis timestamp of its decision's outbox entry. The rows start
   after an AOF rewrite of the drains' writes (a server between its rewrites); one more row at the
   highest rate starts a rewrite as it begins (what a rewrite costs the latency).
5. **Memory**: RSS, PSS and USS of the worker's parent and processes (PSS splits pages shared
   copy-on-write among the processes sharing them, so the sum of PSS is the honest total).
6. **Scaling**: 1, 2, 3 and 4 worker processes (3 on 2 cores: does a third process fill the time the others wait for Redis?).
7. **Where the time goes**: ``Pipeline.process`` in this process, batches of 256, per stage.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
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
from rq import Queue, Worker  # noqa: E402
from rq.serializers import JSONSerializer  # noqa: E402

from bench.readme_table import load_note, save_results, update_readme  # noqa: E402
from tests.faults import RedisServer, children  # noqa: E402
from worker import defaults  # noqa: E402
from worker.demo import load_sample  # noqa: E402
from worker.ingest import Ingestor  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.store import Keys  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
TICK = os.sysconf("SC_CLK_TCK")
BRAND = "demo-shop"
COMMAND = "python bench/throughput.py --update-readme"


# -- traffic ---------------------------------------------------------------------------------


def texts() -> tuple[list[str], str]:
    """Real texts: the shared datasets' test splits interleaved with the demo traffic's texts."""
    demo = [e["text"] for e in load_sample() if e.get("text")]
    files = sorted(DATASETS.glob("*.jsonl")) if DATASETS.is_dir() else []
    pools = []
    for path in files:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        pools.append([r["text"] for r in rows if r.get("split") == "test" and r.get("text")][:4000])
    if not pools:
        return demo, "the demo traffic (../shared/datasets absent)"
    out = []
    for i in range(max(map(len, pools))):
        out += [p[i] for p in pools if i < len(p)]
        out.append(demo[i % len(demo)])
    names = ", ".join(p.stem for p in files)
    valid = [t for t in out if _acceptable(t)]  # a few SMS texts hold C1 controls: ingest rejects them
    return (
        valid,
        f"test texts of {names} and the demo traffic ({len(valid):,} distinct; "
        f"{len(out) - len(valid)} that ingest rejects left out)",
    )


def _acceptable(text: str) -> bool:
    from worker.exceptions import InvalidEvent
    from worker.models import parse_event

    try:
        parse_event(messages(1, "check", [text])[0])
        return True
    except InvalidEvent:
        return False


def messages(n: int, tag: str, pool: list[str]) -> list[dict[str, Any]]:
    """``n`` demo-shop DMs and comments, each its own conversation, written now (as live traffic is:
    an escalation's SLA timer then starts with its steps ahead, not already breached)."""
    created_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    out = []
    for i in range(n):
        comment = i % 3 == 0
        out.append(
            {
                "id": f"{tag}-{i}",
                "brand": BRAND,
                "platform": "instagram",
                "kind": "comment" if comment else "dm",
                "conversation_id": f"{tag}-c{i}",
                "post_id": f"{tag}-p{i % 50}" if comment else None,
                "author": {"id": f"{tag}-a{i}", "name": "Aiko Tanaka", "locale": None, "tags": []},
                "text": pool[i % len(pool)][:2000],
                "created_at": created_at,
                "metadata": {},
            }
        )
    return out


# -- processes -------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, and those of its children already reaped (RQ's work-horses, forked per job)
        total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICK
    return total


def memory(pid: int) -> dict[str, int]:
    """RSS, PSS and USS (private clean + dirty) of one process, MB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0])
    return {
        "rss_mb": round(values["Rss"] / 1024),
        "pss_mb": round(values["Pss"] / 1024),
        "uss_mb": round((values["Private_Clean"] + values["Private_Dirty"]) / 1024),
    }


def redis_calls(client: redis.Redis) -> int:
    """Commands Redis has run (INFO commandstats; a script's own commands count too)."""
    return sum(redis_mix(client).values())


def redis_mix(client: redis.Redis) -> dict[str, int]:
    """Commands Redis has run, by command."""
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in client.info("commandstats").items()}


def machine_cpu() -> dict[str, float]:
    """Seconds of CPU the whole machine spent since boot, by kind (/proc/stat's first line): what the
    processes' own counters leave out (the kernel's loopback networking in soft interrupts, charged
    to whichever process was running or to ksoftirqd) and what other work on the machine used."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:9]
    tick = os.sysconf("SC_CLK_TCK")
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {name: int(value) / tick for name, value in zip(names, fields, strict=True)}


def busy_cores(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Cores busy on the whole machine between two :func:`machine_cpu` readings, and the soft
    interrupts' share of them."""
    spent = {name: after[name] - before[name] for name in before}
    busy = sum(v for name, v in spent.items() if name not in ("idle", "iowait"))
    return {name: round(spent[name] / seconds, 2) for name in ("softirq", "steal")} | {"busy": round(busy / seconds, 2)}


def redis_persistence(client: redis.Redis) -> dict[str, int]:
    """Redis's forks (AOF rewrites, snapshots) and delayed AOF fsyncs so far: a fork copies the page
    tables of the whole dataset and stalls every command meanwhile, a delayed fsync stalls writes."""
    stats, persistence = client.info("stats"), client.info("persistence")
    return {
        "forks": int(stats.get("total_forks", 0)),
        "latest_fork_us": int(stats.get("latest_fork_usec", 0)),
        "aof_delayed_fsync": int(persistence.get("aof_delayed_fsync", 0)),
        "used_memory_mb": round(int(client.info("memory").get("used_memory", 0)) / 2**20),
    }


def rewrite_aof(client: redis.Redis, wait: bool = True) -> dict[str, Any]:
    """Start an AOF rewrite (BGREWRITEAOF, as Redis starts one itself whenever the file has doubled since
    the last); with ``wait``, until it has finished. The paced rows run on a freshly rewritten file, as a
    running server is between its rewrites; the row during a rewrite shows what one costs the latency."""
    started = time.perf_counter()
    client.bgrewriteaof()
    if not wait:
        return {}
    while True:
        info = client.info("persistence")
        if not int(info.get("aof_rewrite_in_progress", 0)) and not int(info.get("aof_rewrite_scheduled", 0)):
            break
        time.sleep(0.05)
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "fork_ms": round(int(client.info("stats").get("latest_fork_usec", 0)) / 1000, 1),
        "used_memory_mb": round(int(client.info("memory").get("used_memory", 0)) / 2**20),
    }


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def schedstat(pids: list[int]) -> dict[int, tuple[float, float]]:
    """Per process: seconds on a CPU and seconds runnable but waiting for one (/proc/PID/schedstat)."""
    out = {}
    for pid in pids:
        try:
            on_cpu, waiting, _ = (int(x) for x in Path(f"/proc/{pid}/schedstat").read_text().split())
        except (OSError, ValueError):
            continue
        out[pid] = (on_cpu / 1e9, waiting / 1e9)
    return out


def wall_split(before: dict[int, tuple[float, float]], seconds: float) -> dict[str, float]:
    """How the worker processes that ran the drain spent its wall time, in fractions summed over
    them: on a CPU, waiting for a CPU (other work, or each other and Redis), blocked (mostly waiting
    for Redis's replies, or for work). Processes that used under 5 % of a core (the idle parent)
    are left out."""
    after = schedstat(list(before))
    busy = [pid for pid in after if after[pid][0] - before[pid][0] > 0.05 * seconds]
    if not busy:
        return {}
    on_cpu = sum(after[pid][0] - before[pid][0] for pid in busy)
    waiting = sum(after[pid][1] - before[pid][1] for pid in busy)
    wall = seconds * len(busy)
    return {
        "processes": len(busy),
        "on_cpu": round(on_cpu / wall, 2),
        "waiting_for_cpu": round(waiting / wall, 2),
        "blocked": round(max(0.0, wall - on_cpu - waiting) / wall, 2),
    }


class Fleet:
    """Worker processes started for one measurement; CPU counted over them and their descendants."""

    def __init__(self, argv_list: list[list[str]], env: dict[str, str], client: redis.Redis, registered: int):
        self.procs = [
            subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
            for argv in argv_list
        ]
        deadline = time.monotonic() + 180
        while len(Worker.all(connection=client)) < registered:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                self.stop()
                raise SystemExit(f"workers did not start: {argv_list[0]}")
            time.sleep(0.1)
        time.sleep(1.0)  # let start-up work (registry cleaning, the scheduler) settle

    def pids(self) -> list[int]:
        return [pid for p in self.procs for pid in [p.pid, *descendants(p.pid)]]

    def cpu(self) -> float:
        return cpu_seconds(self.pids())

    def stop(self) -> None:
        import signal

        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)


def clean(client: redis.Redis) -> None:
    """An empty database on a freshly rewritten append-only file: every measurement starts on a server
    between its rewrites, as the paced rows do. Without the rewrite the file kept growing through the
    runs before, and Redis started a rewrite of its own inside a later drain (the end-to-end drain of
    2026-11-29 21:43 and 22:08 UTC, 1 fork each; never in a `--quick` run): the child competes for the
    two cores for a part of a 2-second drain. Each drain's ``redis_forks`` counts such rewrites; what
    one costs is the paced row *during an AOF rewrite*."""
    client.flushdb()
    rewrite_aof(client)


# -- measurements ----------------------------------------------------------------------------


def naive(client: redis.Redis, url: str, msgs: list[dict[str, Any]], env: dict[str, str]) -> dict[str, Any]:
    """One no-op RQ job per message, 2 stock SimpleWorkers."""
    clean(client)
    rq = str(Path(sys.executable).with_name("rq"))
    argv = [
        rq,
        "worker",
        "--url",
        url,
        "-w",
        "rq.worker.SimpleWorker",
        "--serializer",
        "rq.serializers.JSONSerializer",
        "bench-naive",
    ]
    fleet = Fleet([argv, argv], env, client, 2)
    try:
        queue = Queue("bench-naive", connection=client, serializer=JSONSerializer)
        cpu0, rcpu0, own0, calls0 = fleet.cpu(), redis_cpu(client), time.process_time(), redis_calls(client)
        started = time.perf_counter()
        for i in range(0, len(msgs), 500):
            queue.enqueue_many([Queue.prepare_data("builtins.len", (m,)) for m in msgs[i : i + 500]])
        own = time.process_time() - own0
        registry = queue.finished_job_registry
        while registry.count < len(msgs):
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        return _row(
            "naive",
            len(msgs),
            seconds,
            fleet.cpu() - cpu0,
            redis_cpu(client) - rcpu0,
            own,
            processes=2,
            redis_commands=round((redis_calls(client) - calls0) / len(msgs), 1),
        )
    finally:
        fleet.stop()


def _row(
    name: str, n: int, seconds: float, worker: float, redis_s: float, ingest: float, **extra: Any
) -> dict[str, Any]:
    row = {
        "mode": name,
        "messages": n,
        "seconds": round(seconds, 2),
        "msg_per_s": round(n / seconds),
        "cpu_us": {
            "worker": round(worker / n * 1e6),
            "redis": round(redis_s / n * 1e6),
            "ingest": round(ingest / n * 1e6),
        },
        **extra,
    }
    row["cpu_us"]["total"] = sum(row["cpu_us"].values())
    print(name, row, flush=True)
    return row


def worker_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "worker.cli", "worker", *args]


def decided(client: redis.Redis) -> int:
    return int(client.zcard(Keys(Settings().key_prefix).decisions(BRAND)))


def drain(
    client: redis.Redis, settings: Settings, msgs: list[dict[str, Any]], fleet: Fleet, name: str, processes: int
) -> dict[str, Any]:
    """Ingest ``msgs`` at once and wait until every one is decided and stored."""
    before = decided(client)
    cpu0, rcpu0, mix0 = fleet.cpu(), redis_cpu(client), redis_mix(client)
    forks0 = redis_persistence(client)["forks"]
    started = time.perf_counter()
    own0 = time.process_time()
    machine0 = machine_cpu()
    sched0 = schedstat(fleet.pids())
    with Ingestor(client, settings) as ingestor:
        for m in msgs:
            ingestor.submit(m)
    own = time.process_time() - own0
    jobs = len(ingestor.report.jobs)
    deadline = time.monotonic() + 1200
    while decided(client) < before + len(msgs):
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: only {decided(client) - before} of {len(msgs)} decided")
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    machine = busy_cores(machine0, machine_cpu(), seconds)
    worker_wall = wall_split(sched0, seconds)  # long-lived processes only: not RQ's per-job horses
    mix = {name: (n - mix0.get(name, 0)) / len(msgs) for name, n in redis_mix(client).items()}
    return _row(
        name,
        len(msgs),
        seconds,
        fleet.cpu() - cpu0,
        redis_cpu(client) - rcpu0,
        own,
        processes=processes,
        redis_commands=round(sum(mix.values()), 1),
        batch_mean=round(len(msgs) / max(1, jobs), 1),
        machine_cores=machine,
        worker_wall=worker_wall,
        redis_command_mix={name: round(n, 2) for name, n in sorted(mix.items(), key=lambda kv: -kv[1]) if n >= 0.01},
        # AOF rewrites Redis started itself during the drain (its file doubled): the child competes for the cores
        redis_forks=redis_persistence(client)["forks"] - forks0,
    )


def paced(
    client: redis.Redis,
    settings: Settings,
    pool: list[str],
    fleet: Fleet,
    rate: int,
    seconds: float,
    most: int,
    during_rewrite: bool = False,
) -> dict[str, Any]:
    """Offer ``rate`` messages/s for ``seconds`` (at most ``most`` messages); latency = the decision's
    outbox entry time (Redis clock, when it was stored) - the submit time. ``during_rewrite``: an AOF
    rewrite is started as the row starts (Redis forks, and the child competes for the cores).

    Each message's latency is split by stage from its batch job (RQ's job record): *hold*, submit →
    the batch enqueued (ingest's batching, the numbering script, the enqueue); *queue*, enqueued →
    a worker started the job (RQ's ``started_at``); *processing*, started → this decision stored.
    ``from_schedule`` measures from when the message was due to be offered instead of when the load
    generator got to submit it (it differs only when the generator falls behind its pace)."""
    n = max(1, min(int(rate * seconds), most))
    msgs = messages(n, f"paced{rate}{'-rewrite' if during_rewrite else ''}", pool)  # new ids: never deduplicated
    outbox = Keys(settings.key_prefix).outbox(BRAND)
    before = decided(client)
    start_id = f"{int(time.time() * 1000)}-0"
    submitted: dict[str, float] = {}
    due: dict[str, float] = {}
    cpu0, rcpu0, own0 = fleet.cpu(), redis_cpu(client), time.process_time()
    persisted0 = redis_persistence(client)
    behind = 0.0
    if during_rewrite:
        rewrite_aof(client, wait=False)
    with Ingestor(client, settings) as ingestor:
        t0 = time.perf_counter()
        wall0 = time.time()
        for i, m in enumerate(msgs):
            target = t0 + i / rate
            now = time.perf_counter()
            if target > now:
                time.sleep(target - now)
            else:
                behind = max(behind, now - target)
            submitted[m["id"]] = wall0 + (time.perf_counter() - t0)
            due[m["id"]] = wall0 + (target - t0)
            ingestor.submit(m)
    own = time.process_time() - own0
    while decided(client) < before + n:
        time.sleep(0.02)
    worker_cpu, redis_s = fleet.cpu() - cpu0, redis_cpu(client) - rcpu0
    persisted = redis_persistence(client)
    stored: dict[str, float] = {}
    for entry_id, fields in client.xrange(outbox, min=start_id):
        payload = json.loads(fields[b"payload"])
        if payload.get("type") == "decision" and payload["message_id"] in submitted:
            stored[payload["message_id"]] = int(entry_id.split(b"-")[0]) / 1000
    breakdown = stage_breakdown(client, ingestor.report.jobs, submitted, stored)
    latencies = sorted((stored[k] - submitted[k]) * 1000 for k in stored)
    scheduled = sorted((stored[k] - due[k]) * 1000 for k in stored)
    row = {
        "offered_per_s": rate,
        "during_rewrite": during_rewrite,
        "messages": n,
        "measured": len(latencies),
        "p50_ms": percentile(latencies, 0.50),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": round(latencies[-1], 1),
        "from_schedule_p99_ms": percentile(scheduled, 0.99),
        "pacing_behind_ms": round(behind * 1000, 1),
        "cpu_us_worker": round(worker_cpu / n * 1e6),
        "cpu_us_redis": round(redis_s / n * 1e6),
        "cpu_us_ingest": round(own / n * 1e6),
        "redis_forks": persisted["forks"] - persisted0["forks"],
        "redis_latest_fork_ms": round(persisted["latest_fork_us"] / 1000, 1),
        "aof_delayed_fsyncs": persisted["aof_delayed_fsync"] - persisted0["aof_delayed_fsync"],
        "redis_used_memory_mb": persisted["used_memory_mb"],
        **breakdown,
    }
    print("paced", row, flush=True)
    return row


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` (nearest rank), 0.1 ms precision."""
    return round(values[min(len(values) - 1, int(q * len(values)))], 1) if values else 0.0


def stage_breakdown(
    client: redis.Redis, job_ids: list[str], submitted: dict[str, float], stored: dict[str, float]
) -> dict[str, Any]:
    """Per stage (hold, queue, processing; ms): p50 and p99 over the messages, the mean of each over
    the slowest 1 % of messages (what their latency is made of), and the batches' sizes."""
    from rq.job import Job

    parts: dict[str, list[float]] = {"hold": [], "queue": [], "processing": []}
    per_message: list[tuple[float, float, float, float]] = []
    sizes = []
    for job in Job.fetch_many(job_ids, connection=client, serializer=JSONSerializer):
        if job is None or job.started_at is None:
            continue
        batch, enqueued = job.args[0], float(job.args[1])
        started = job.started_at.timestamp()
        sizes.append(len(batch))
        for m in batch:
            key = m["id"]
            if key not in stored or key not in submitted:
                continue
            hold, queue, work = enqueued - submitted[key], started - enqueued, stored[key] - started
            per_message.append((stored[key] - submitted[key], hold, queue, work))
            for name, value in zip(parts, (hold, queue, work), strict=True):
                parts[name].append(value * 1000)
    out: dict[str, Any] = {}
    for name, values in parts.items():
        values.sort()
        out[f"{name}_p50_ms"] = percentile(values, 0.50)
        out[f"{name}_p99_ms"] = percentile(values, 0.99)
    per_message.sort()
    slowest = per_message[-max(1, len(per_message) // 100) :] if per_message else []
    for k, name in enumerate(parts, start=1):
        out[f"slowest_1pc_{name}_ms"] = round(sum(p[k] for p in slowest) * 1000 / max(1, len(slowest)), 1)
    out["jobs"] = len(sizes)
    out["batch_mean"] = round(sum(sizes) / max(1, len(sizes)), 1)
    out["batch_max"] = max(sizes, default=0)
    return out


def stages(settings: Settings, msgs: list[dict[str, Any]]) -> dict[str, Any]:
    """Pipeline.process in this process on batches of 256, SLA timers included as a worker's job
    does (worker.jobs.process_batch, without RQ): wall ms per message by stage."""
    from threadpoolctl import threadpool_limits

    from worker.brands import load_brands
    from worker.jobs import sla_tracker
    from worker.pipeline import Pipeline
    from worker.store import Store

    threadpool_limits(1)  # as in a worker process
    client = redis.Redis.from_url(settings.redis_url)
    pipeline = Pipeline(load_brands(settings))
    store = Store(client, settings.key_prefix)
    # garbage collection as in a worker process (worker.prefork): what is loaded is frozen out of every
    # collection and the young generation is larger; untuned, a full collection walking the loaded models
    # (80-100 ms) landed in whichever stage allocated at the time, and moved that stage by 30-40 us a message
    gc.collect()
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(defaults.WORKER_GC_THRESHOLD, *threshold[1:])

    def job(batch: list[dict[str, Any]]) -> dict[str, float]:
        sla = sla_tracker(client, pipeline, settings)
        timings = pipeline.process(batch, store, sla=sla).timings
        t0 = time.perf_counter()
        sla.fire_due()
        timings["sla_ms"] = timings.get("sla_ms", 0.0) + (time.perf_counter() - t0) * 1000
        return timings

    job(msgs[:256])  # warm
    totals: dict[str, float] = {}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    rest = msgs[256:]
    for i in range(0, len(rest), 256):
        for name, ms in job(rest[i : i + 256]).items():
            totals[name] = totals.get(name, 0.0) + ms
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    row = {
        "messages": len(rest),
        "cpu_us_per_message": round(cpu / len(rest) * 1e6),
        # the process off its core: waiting for Redis's replies (or, on a busy machine, for a core)
        "off_cpu_us_per_message": round((wall - cpu) / len(rest) * 1e6),
        "wall_us_per_message": {k.removesuffix("_ms"): round(v * 1000 / len(rest)) for k, v in totals.items()},
    }
    gc.set_threshold(*threshold)
    gc.unfreeze()
    print("stages", row, flush=True)
    return row


def quick(
    client: redis.Redis, settings: Settings, env: dict[str, str], msgs: list[dict[str, Any]], workers: int
) -> dict[str, Any]:
    """End to end with ``workers`` processes, then the in-process stages: CPU and Redis commands a message."""
    fleet = Fleet([worker_argv("--processes", str(workers))], env, client, workers)
    try:
        drain(client, settings, messages(512, "warm", [m["text"] for m in msgs]), fleet, "warm-up", workers)
        end_to_end = drain(client, settings, msgs, fleet, "end-to-end", workers)
    finally:
        fleet.stop()
    clean(client)
    texts_ = [m["text"] for m in msgs]
    return {
        "end_to_end": end_to_end,
        "stages": stages(settings, messages(min(len(msgs), 2560) + 256, "stages", texts_)),
        "load": load_note(),
    }


def paced_only(
    client: redis.Redis, settings: Settings, env: dict[str, str], pool: list[str], args: Any, rates: list[int]
) -> list[dict[str, Any]]:
    """The paced runs alone, on a warmed-up ``replyguard worker --processes N`` (as in the full run)."""
    fleet = Fleet([worker_argv("--processes", str(args.workers))], env, client, args.workers)
    try:
        drain(client, settings, messages(512, "warm", pool), fleet, "warm-up", args.workers)
        return [paced(client, settings, pool, fleet, rate, args.paced_seconds, args.messages) for rate in rates]
    finally:
        fleet.stop()


# -- the table -------------------------------------------------------------------------------


def _split(wall: dict[str, float] | None) -> str:
    if not wall:
        return "–"
    return f"{wall['on_cpu']:.0%} / {wall['waiting_for_cpu']:.0%} / {wall['blocked']:.0%}"


def table(r: dict[str, Any]) -> str:
    base = r["naive"]["msg_per_s"]
    lines = [
        "| run (2 cores, shared) | processes | messages | messages/s | × naive | CPU µs/msg worker + Redis + ingest = total | Redis commands/msg |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [("naive: 1 no-op RQ job per message, stock SimpleWorkers", r["naive"])]
    if r.get("before"):
        rows.append(("before: `replyguard worker --fork-per-job` (RQ forks per job)", r["before"]))
    rows.append(
        (f"**now: ingest → `replyguard worker --processes {r['end_to_end']['processes']}` → stored**", r["end_to_end"])
    )
    for name, row in rows:
        c = row["cpu_us"]
        lines.append(
            f"| {name} | {row['processes']} | {row['messages']:,} | {row['msg_per_s']:,} | "
            f"{row['msg_per_s'] / base:.1f}× | {c['worker']} + {c['redis']} + {c['ingest']} = **{c['total']}** | "
            f"{row['redis_commands']} |"
        )
    lines += [
        "",
        "| scaling: worker processes | messages/s | × 1 process | CPU µs/msg (worker + Redis + ingest) "
        "| worker processes' time on a CPU / waiting for one / blocked |",
        "|---:|---:|---:|---:|---:|",
    ]
    one = r["scaling"][0]["msg_per_s"]
    for row in r["scaling"]:
        c = row["cpu_us"]
        lines.append(
            f"| {row['processes']} | {row['msg_per_s']:,} | {row['msg_per_s'] / one:.2f}× | "
            f"{c['worker']} + {c['redis']} + {c['ingest']} = {c['total']} | {_split(row.get('worker_wall'))} |"
        )
    lines += [
        "",
        "| offered (paced) | messages | ingest → decision stored p50 / p95 / p99 (max) | CPU µs/msg worker, Redis |",
        "|---:|---:|---:|---:|",
    ]
    for row in r["paced"]:
        during = ", during an AOF rewrite" if row.get("during_rewrite") else ""
        lines.append(
            f"| {row['offered_per_s']:,}/s{during} | {row['messages']:,} | {row['p50_ms']} / {row['p95_ms']} / "
            f"**{row['p99_ms']}** ms ({row['max_ms']}) | {row['cpu_us_worker']}, {row['cpu_us_redis']} |"
        )
    steady = [row for row in r["paced"] if not row.get("during_rewrite")]
    top = steady[-1] if steady else {}
    if "hold_p99_ms" in top:
        lines += [
            "",
            f"Where the {top['offered_per_s']:,}/s latency goes (ms, p50 / p99 of each stage; mean over the "
            f"slowest 1 %): ingest hold {top['hold_p50_ms']} / {top['hold_p99_ms']} "
            f"({top['slowest_1pc_hold_ms']}), queue wait {top['queue_p50_ms']} / {top['queue_p99_ms']} "
            f"({top['slowest_1pc_queue_ms']}), processing {top['processing_p50_ms']} / "
            f"{top['processing_p99_ms']} ({top['slowest_1pc_processing_ms']}); {top['jobs']:,} batches of "
            f"{top['batch_mean']} messages on average (largest {top['batch_max']}); p99 from each message's "
            f"scheduled time {top['from_schedule_p99_ms']} ms (the load generator fell up to "
            f"{top['pacing_behind_ms']} ms behind its pace).",
        ]
    rewrite, during = r.get("aof_rewrite"), [row for row in r["paced"] if row.get("during_rewrite")]
    if rewrite:
        lines += [
            "",
            f"The paced rows start on a freshly rewritten append-only file (BGREWRITEAOF after the drains: "
            f"{rewrite['seconds']} s, a fork of {rewrite['fork_ms']} ms, Redis holding {rewrite['used_memory_mb']} MB), "
            "as a running server is between the rewrites it starts whenever its file has doubled; "
            + (
                f"the row marked *during an AOF rewrite* starts one as it begins ({during[0]['redis_forks']} "
                f"fork{'s' * (during[0]['redis_forks'] != 1)} in the row, the latest {during[0]['redis_latest_fork_ms']} ms): "
                "the child copies the dataset on the same two cores as the workers."
                if during
                else "no row ran during a rewrite."
            ),
        ]
    mem = r["memory"]
    procs = "; ".join(
        f"{m['role']} RSS {m['rss_mb']} / PSS {m['pss_mb']} / USS {m['uss_mb']}" for m in mem["processes"]
    )
    e2e = r["end_to_end"]
    s = r["stages"]
    lines += [
        "",
        f"Worker memory (MB, `--processes {e2e['processes']}`, after the run): {procs}; **whole worker (sum of PSS) "
        f"{mem['total_pss_mb']} MB**. In process, batches of 256: {s['cpu_us_per_message']} µs CPU a message "
        f"(wall µs: " + ", ".join(f"{k} {v}" for k, v in s["wall_us_per_message"].items()) + "). "
        f"Messages: {r['traffic']}. Measured {r['date']} ({r['machine']}; {r['load']} at the start, "
        f"{r['load_end']} at the end; above 2 means other work shared the cores).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--scaling-messages", type=int, default=5_000)
    parser.add_argument("--paced-seconds", type=float, default=8.0)
    parser.add_argument("--skip-before", action="store_true", help="leave out the --fork-per-job run")
    parser.add_argument("--redis-url", default=None, help="use this server (its database is FLUSHED)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the end-to-end and paced runs")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the end-to-end run and the in-process stages (to compare two checkouts side by side; "
        "never written to the README)",
    )
    parser.add_argument(
        "--stages-only",
        action="store_true",
        help="only the in-process stages, with the time the process spent off its core (to compare two "
        "checkouts side by side; never written to the README)",
    )
    parser.add_argument(
        "--paced-only",
        action="store_true",
        help="only the paced latency runs, with their stage breakdown (never written to the README)",
    )
    parser.add_argument("--rates", default="200,500,1000", help="offered messages/s of the paced runs, comma-separated")
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"), help="where throughput.json goes")
    args = parser.parse_args()
    args.scaling_messages = min(args.scaling_messages, args.messages)
    if (args.quick or args.paced_only or args.stages_only) and args.update_readme:
        parser.error(
            "--quick, --stages-only and --paced-only measure only part of the table: they are never written to the README"
        )
    rates = [int(r) for r in args.rates.split(",") if r.strip()]

    server = None
    url = args.redis_url
    if not url:
        server = RedisServer(Path(tempfile.mkdtemp(prefix="rg-bench-redis-"))).start()
        url = server.url
    client = redis.Redis.from_url(url)
    env = {**os.environ, "REDIS_URL": url, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    os.environ["REDIS_URL"] = url
    settings = Settings(redis_url=url)
    pool, traffic = texts()
    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} Python {platform.python_version()}",
        "load": load_note(),
        "traffic": traffic,
        "command": COMMAND,
    }
    try:
        msgs = messages(args.messages, "e2e", pool)
        if args.quick:
            print(json.dumps(quick(client, settings, env, msgs, args.workers), indent=1))
            return
        if args.stages_only:
            stages(settings, messages(min(len(msgs), 2560) + 256, "stages", [m["text"] for m in msgs]))
            return
        if args.paced_only:
            results["paced"] = paced_only(client, settings, env, pool, args, rates)
            results["load_end"] = load_note()
            print(json.dumps(results, indent=1))
            if args.results.endswith(".json"):
                Path(args.results).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
            return
        results["naive"] = naive(client, url, messages(args.messages, "naive", pool), env)
        if not args.skip_before:
            clean(client)
            fleet = Fleet([worker_argv("--fork-per-job"), worker_argv("--fork-per-job")], env, client, 2)
            try:
                results["before"] = drain(
                    client, settings, messages(args.scaling_messages, "before", pool), fleet, "before", 2
                )
            finally:
                fleet.stop()
        clean(client)
        fleet = Fleet([worker_argv("--processes", str(args.workers))], env, client, args.workers)
        try:
            drain(client, settings, messages(512, "warm", pool), fleet, "warm-up", args.workers)
            results["end_to_end"] = drain(client, settings, msgs, fleet, "end-to-end", args.workers)
            parent = fleet.procs[0].pid
            procs = [{"role": "parent", **memory(parent)}]
            procs += [
                {"role": f"process {k + 1}", **memory(pid)}
                for k, pid in enumerate(children(parent))
                if Path(f"/proc/{pid}/smaps_rollup").exists()
            ]
            everything = [parent, *descendants(parent)]
            results["memory"] = {
                "processes": procs,
                "total_pss_mb": sum(memory(pid)["pss_mb"] for pid in everything if Path(f"/proc/{pid}").exists()),
            }
            results["aof_rewrite"] = rewrite_aof(client)  # the drains' writes compacted: a server between rewrites
            results["paced"] = [
                paced(client, settings, pool, fleet, rate, args.paced_seconds, args.messages) for rate in rates
            ]
            if rates:
                results["paced"].append(
                    paced(client, settings, pool, fleet, max(rates), args.paced_seconds, args.messages, True)
                )
        finally:
            fleet.stop()
        scaling = []
        for n in (1, 2, 3, 4):
            clean(client)
            fleet = Fleet([worker_argv("--processes", str(n))], env, client, n)
            try:
                drain(client, settings, messages(256, f"warm{n}", pool), fleet, "warm-up", n)
                scaling.append(
                    drain(
                        client, settings, messages(args.scaling_messages, f"scale{n}", pool), fleet, f"scaling {n}", n
                    )
                )
            finally:
                fleet.stop()
        results["scaling"] = scaling
        clean(client)
        results["stages"] = stages(settings, messages(min(args.messages, 2560) + 256, "stages", pool))
        results["load_end"] = load_note()
        results["redis_cpu_us_per_message"] = results["end_to_end"]["cpu_us"]["redis"]
    finally:
        client.close()
        if server is not None:
            server.stop()
            shutil.rmtree(server.directory, ignore_errors=True)  # its append-only file: this run's alone
    save_results("throughput", results, Path(args.results))
    text = table(results)
    print(text)
    if args.update_readme:
        update_readme("throughput", text)


if __name__ == "__main__":
    main()
