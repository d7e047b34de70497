"""Commands that run the pipeline's processes: ingest, worker, serve, deliver, poll, the
connectors' dead letters, the embedded Redis, metrics, the demo."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from worker import defaults
from worker.commands.console import EXIT_INPUT, EXIT_REDIS, connect_redis, print_json, settings_for, short
from worker.exceptions import ConfigError, StoreError, WaitTimeout


def cmd_ingest(args: argparse.Namespace) -> int:
    from worker.ingest import Ingestor, ingest_stream, open_input, policy_brands, wait_for

    settings = settings_for(args)
    stream = open_input(args.file)
    client = connect_redis(settings)

    def on_invalid(exc) -> None:
        print(f"rejected {exc}", file=sys.stderr)

    ingestor = Ingestor(client, settings, batch_size=args.batch_size, known_brands=policy_brands(settings))
    try:
        report = ingest_stream(ingestor, stream, on_invalid)
    except StoreError as exc:
        report = ingestor.report
        print(f"error: {exc}", file=sys.stderr)
        print(
            f"enqueued {len(report.accepted)} events before the failure; {len(report.not_enqueued)} read "
            f"but not enqueued; {len(report.uncertain)} sent but not confirmed (maybe enqueued); "
            f"stopped at {report.last_source or 'the start'}. Ingesting the same input again "
            "is safe (events already enqueued or decided are not decided twice).",
            file=sys.stderr,
        )
        for label, keys in (("not enqueued", report.not_enqueued), ("unconfirmed", report.uncertain)):
            for brand, message_id in keys:
                print(f"{label}: {brand}/{message_id}", file=sys.stderr)
        return EXIT_REDIS
    out = {
        "enqueued": len(report.accepted),
        "jobs": len(report.jobs),
        "skipped": len(report.skipped),
        "invalid": len(report.invalid),
        "invalid_events": [
            {"source": e.source, "reason": "; ".join(str(p) for p in e.problems)} for e in report.invalid
        ],
    }
    print(
        f"enqueued {out['enqueued']} events in {out['jobs']} jobs; {out['skipped']} already decided or repeated; "
        f"{out['invalid']} rejected",
        file=sys.stderr if args.json else sys.stdout,
    )
    if not args.wait:
        if args.json:
            print_json(out)
        return EXIT_INPUT if report.invalid else 0

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\rdecided {done}/{total}", end="", file=sys.stderr, flush=True)

    failure = None
    try:
        result = wait_for(report, client, settings, timeout=args.timeout, progress=progress)
    except WaitTimeout as exc:
        failure, result = exc, exc.result
    if sys.stderr.isatty():
        print(file=sys.stderr)
    summary = {**out, **result.summary(), "rejected_events": result.rejected}
    for entry in result.rejected:
        print(f"rejected by the worker: {entry['brand']}/{entry['message_id']}: {entry['reason']}", file=sys.stderr)
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
    if args.json:
        print_json(summary)
    else:
        print(
            f"decided {summary['decided']} in {summary['seconds']}s; missing {summary['missing']}; "
            f"rejected by the worker {summary['rejected']}; failed jobs {len(summary['failed_jobs'])}"
        )
        for actions, n in summary["actions"].items():
            print(f"  {n:5d}  {actions}")
    if failure is not None or result.missing or result.failed_jobs or result.rejected or report.invalid:
        return EXIT_INPUT
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from worker.prefork import serve

    settings = settings_for(args)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.processes < 1:
        raise ConfigError("--processes must be at least 1")
    return serve(
        settings,
        processes=0 if args.simple else args.processes,
        queues=args.queues,
        burst=args.burst,
        max_jobs=args.max_jobs,
        fork_per_job=args.fork_per_job,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from worker.web import create_app

    settings = settings_for(args)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)  # a broken policy stops here (exit 2); Redis unreachable: exit 3
    logging.getLogger("replyguard").info(
        "serving brands %s on http://%s:%d (Redis %s)",
        sorted(app.state.deps.brands),
        args.host,
        args.port,
        settings.redacted_redis_url(),
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        server_header=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else EXIT_INPUT


def cmd_deliver(args: argparse.Namespace) -> int:
    from worker.delivery.runner import build_deliverer, stop_on_signals

    settings = settings_for(args)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    client = connect_redis(settings)
    extra = {"claim_idle_ms": args.claim_idle_ms} if args.claim_idle_ms is not None else {}
    deliverer = build_deliverer(client, settings, **extra)
    stop_on_signals(deliverer)
    modes = {b: settings.delivery_mode or p.delivery.mode for b, p in deliverer.policies.items()}
    logging.getLogger("replyguard").info("delivering for %s on %s", modes, settings.redacted_redis_url())
    handled = deliverer.run(burst=args.burst)
    if args.burst:
        print(f"handled {handled} outbox entries")
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    from worker.delivery.runner import poll_youtube

    settings = settings_for(args)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from worker import defaults

    counts = poll_youtube(
        connect_redis(settings),
        settings,
        once=args.once,
        interval=args.interval or defaults.YOUTUBE_POLL_INTERVAL_SECONDS,
    )
    print(
        f"polled {counts['channels']} channel(s): {counts['new']} new comment(s), {counts['quota_units']} quota unit(s)"
    )
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from worker.policy import load_policies
    from worker.store import Store

    settings = settings_for(args)
    store = Store(connect_redis(settings), settings.key_prefix)
    brands = [args.brand] if args.brand else sorted(load_policies(settings.policies_dir))
    rows = {b: store.dead_letters(b, args.limit) for b in brands}
    if args.json:
        print_json(rows)
        return 0
    for brand, entries in rows.items():
        print(f"{brand}: {len(entries)} dead letter(s)")
        for e in entries:
            print(
                f"  {e['at'][:19]}  {e['connector']:<20} {e['message_id']:<24} {e['attempts']} attempt(s)  "
                f"{short(e['error'], 60)}"
            )
    return 0


def cmd_redis(args: argparse.Namespace) -> int:
    from worker.connection import embedded_for

    settings = settings_for(args)
    server = embedded_for(settings)
    if args.action == "status":
        print(f"embedded Redis at {server.socket}: {'running' if server.running() else 'stopped'}")
        if settings.redis_url:
            print(f"(REDIS_URL is set, so replyguard uses {settings.redacted_redis_url()})")
    elif args.action == "start":
        server.start()
        print(f"embedded Redis running at {server.url}")
    else:
        print("stopped" if server.stop() else "was not running")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry, generate_latest, start_http_server

    from worker.metrics import RedisStatsCollector
    from worker.policy import load_policies
    from worker.store import Store

    settings = settings_for(args)
    store = Store(connect_redis(settings), settings.key_prefix)
    registry = CollectorRegistry()
    policies = {b: loaded.policy for b, loaded in load_policies(settings.policies_dir).items()}
    registry.register(RedisStatsCollector(store, sorted(policies), policies))
    if args.once:
        sys.stdout.write(generate_latest(registry).decode())
        return 0
    start_http_server(args.port, addr=args.host, registry=registry)
    print(f"serving Prometheus metrics on http://{args.host}:{args.port}/metrics")
    while True:
        time.sleep(3600)


def cmd_demo(args: argparse.Namespace) -> int:
    from worker.demo import run_demo

    return run_demo(
        workers=args.workers,
        check=args.check,
        llm=args.llm,
        llm_model=args.llm_model,
        llm_key_env=args.llm_key_env,
        webhooks=not args.no_webhooks,
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's commands to the ``replyguard`` parser."""
    p = sub.add_parser("ingest", help="validate JSONL events and enqueue them in batches")
    p.add_argument("file", help="JSONL file of inbound events, or - for stdin")
    p.add_argument("--wait", action="store_true", help="block until every event is decided, then summarise")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits at most")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print the report (and --wait summary) as JSON on stdout")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "worker", help="run RQ workers that decide batches (forked once from a parent that loaded the models)"
    )
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    p.add_argument(
        "--processes",
        type=int,
        default=defaults.WORKER_PROCESSES,
        help=f"worker processes to fork from the loaded parent (default {defaults.WORKER_PROCESSES}; "
        "one per core is usual)",
    )
    p.add_argument("--simple", action="store_true", help="one RQ worker in this process, no supervisor (tests)")
    p.add_argument(
        "--fork-per-job",
        action="store_true",
        help="RQ's forking worker in this process: a work-horse forked for every job (the old model, slower)",
    )
    p.add_argument("--max-jobs", type=int, default=None)
    p.add_argument(
        "--queues",
        choices=["all", "batches", "llm"],
        default="all",
        help="all: batches first, then LLM tasks (default); or only one of them",
    )
    p.add_argument("--policies", default=None, help="policies directory (default: REPLYGUARD_POLICIES_DIR)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("deliver", help="run a delivery worker over the outbox streams (Procfile: deliver)")
    p.add_argument("--burst", action="store_true", help="exit when nothing is left to deliver")
    p.add_argument(
        "--claim-idle-ms",
        type=int,
        default=None,
        help="take over entries another deliverer left pending this long (default: defaults.py)",
    )
    p.add_argument("--policies", default=None, help="policies directory (default: REPLYGUARD_POLICIES_DIR)")
    p.set_defaults(func=cmd_deliver)

    p = sub.add_parser("poll", help="poll a platform without webhooks for new comments")
    p.add_argument("platform", choices=["youtube"])
    p.add_argument("--once", action="store_true", help="poll every channel once and exit")
    p.add_argument("--interval", type=float, default=None, help="seconds between polls (default: defaults.py)")
    p.add_argument("--policies", default=None)
    p.set_defaults(func=cmd_poll)

    p = sub.add_parser("connectors", help="outbound connectors")
    conn = p.add_subparsers(dest="connectors_command", required=True)
    q = conn.add_parser("dead-letters", help="webhook deliveries that failed for good")
    q.add_argument("--brand")
    q.add_argument("--limit", type=int, default=50)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_dead_letters)

    p = sub.add_parser("serve", help="the HTTP service: webhooks, /v1/events, health, metrics")
    p.add_argument("--host", default=defaults.SERVE_HOST)
    p.add_argument("--port", type=int, default=defaults.SERVE_PORT)
    p.add_argument("--policies", default=None, help="policies directory (default: REPLYGUARD_POLICIES_DIR)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("redis", help="manage the embedded Redis server")
    p.add_argument("action", choices=["status", "start", "stop"])
    p.set_defaults(func=cmd_redis)

    p = sub.add_parser("metrics", help="serve Prometheus metrics (from the counters in Redis)")
    p.add_argument("--port", type=int, default=9108)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--once", action="store_true", help="print the metrics once and exit")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("demo", help="run the demo brand end to end and print the decisions")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--llm",
        metavar="standin|URL",
        help="switch LLM drafting on: 'standin' (a scripted local server, not a real model) or the "
        "base URL of an OpenAI-compatible server (with --llm-model, --llm-key-env)",
    )
    p.add_argument("--llm-model", default="gpt-4o-mini")
    p.add_argument("--llm-key-env", default=None, help="environment variable holding the API key")
    p.add_argument("--check", action="store_true", help="exit 1 unless every decision matches the sample's expectation")
    p.add_argument(
        "--no-webhooks",
        action="store_true",
        help="skip the second part (platform webhooks through replyguard serve to a Graph API stand-in)",
    )
    p.set_defaults(func=cmd_demo)
