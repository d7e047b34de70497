"""Commands about people: review-app users, the audit trail, forgetting a person, retention."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from worker import defaults
from worker.commands.console import EXIT_CONFIG, EXIT_INPUT, connect_redis, print_json, settings_for
from worker.exceptions import ReplyguardError

if TYPE_CHECKING:
    import redis

    from worker.privacy.config import Retention
    from worker.settings import Settings


def _read_password(prompt: str = "password: ") -> str:
    """The new user's password from stdin: asked twice on a terminal, else the first line (never an argument)."""
    import getpass

    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("again: ") != first:
            raise ReplyguardError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_users(args: argparse.Namespace) -> int:
    from worker.accounts import Accounts

    settings = settings_for(args)
    accounts = Accounts(connect_redis(settings), settings.key_prefix)
    if args.users_command == "add":
        password = _read_password()
        user = accounts.add(args.name, password, args.role, args.brand, replace=args.replace)
        print(f"{'replaced' if args.replace else 'added'} {user.name} ({user.role}; brands {', '.join(user.brands)})")
        return 0
    if args.users_command in ("disable", "enable"):
        user = accounts.set_disabled(args.name, args.users_command == "disable")
        print(f"{user.name} is {'disabled: their sessions end now' if user.disabled else 'enabled'}")
        return 0
    users = accounts.all()
    if args.json:
        print_json([u.public() for u in users])
        return 0
    if not users:
        print("no users yet: replyguard users add NAME --brand BRAND --role ROLE (password on stdin)")
    for u in users:
        print(f"{u.name:20} {u.role:10} {'disabled' if u.disabled else 'active':8} {', '.join(u.brands)}")
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    from worker.audit import AuditLog, platform_answer
    from worker.store import Store

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            print(
                f"--since {args.since!r}: not an ISO date or time (e.g. 2026-11-24 or 2026-11-24T09:00:00+09:00)",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        if since.tzinfo is None:
            since = since.replace(tzinfo=timezone.utc)
    settings = settings_for(args)
    client = connect_redis(settings)
    store = Store(client, settings.key_prefix)
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    deliveries: dict[str, list] = {}
    count = 0
    try:
        for entry in AuditLog(client, settings.key_prefix).export(args.brand, since):
            record = entry.as_dict()
            if entry.outbox and entry.message_id:
                if entry.message_id not in deliveries:
                    decision = store.decision(args.brand, entry.message_id)
                    deliveries[entry.message_id] = (
                        decision.model_dump(mode="json").get("deliveries", []) if decision else []
                    )
                record["platform_answer"] = platform_answer(entry, deliveries[entry.message_id])
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    finally:
        if args.out:
            out.close()
    if args.out:
        print(f"wrote {count} audit entries to {args.out}", file=sys.stderr)
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from worker.policy import load_policies
    from worker.privacy.forget import forget_person

    settings = settings_for(args)
    policies = load_policies(settings.policies_dir)  # a broken policy: exit 2
    author = (args.author or "").strip()
    if args.brand not in policies or not author:
        problem = (
            f"no policy for brand {args.brand!r} (known: {sorted(policies)})"
            if args.brand not in policies
            else "--author must be a non-empty author id"
        )
        if args.json:
            print_json({"error": problem})
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_INPUT
    client = connect_redis(settings)
    report = forget_person(
        client, args.brand, author, prefix=settings.key_prefix, archive_dir=settings.archive_path, by=args.by
    )
    out = report.as_dict()
    if args.json:
        print_json(out)
    else:
        print(
            f"forgot one person of {args.brand}: {out['total']} items deleted or redacted "
            f"(request {out['request_id']}, recorded in the audit trail)"
        )
        for what, n in out["counts"].items():
            print(f"  {n:6d}  {what}")
    return 0


def cmd_retention_sweep(args: argparse.Namespace) -> int:
    from worker.policy import load_policies

    settings = settings_for(args)
    policies = load_policies(settings.policies_dir)  # a broken retention value: exit 2
    if args.brand and args.brand not in policies:
        print(f"error: no policy for brand {args.brand!r} (known: {sorted(policies)})", file=sys.stderr)
        return EXIT_INPUT
    retention = {b: loaded.policy.retention for b, loaded in policies.items() if not args.brand or b == args.brand}
    client = connect_redis(settings)
    if args.every is None:
        _sweep_and_print(client, settings, retention, as_json=args.json)
        return 0
    if args.every <= 0:
        print(f"error: --every must be a positive number of seconds, not {args.every}", file=sys.stderr)
        return EXIT_INPUT
    _sweep_repeatedly(client, settings, retention, every=args.every, as_json=args.json)
    return 0


def _sweep_and_print(
    client: redis.Redis,
    settings: Settings,
    retention: Mapping[str, Retention],
    *,
    as_json: bool,
    one_line: bool = False,
) -> None:
    from worker.privacy.archive import sweep

    counts = sweep(client, retention, prefix=settings.key_prefix, archive_dir=settings.archive_path)
    out = {"brands": sorted(retention), "archive_dir": str(settings.archive_path), "counts": counts}
    if as_json and one_line:  # repeated sweeps: one JSON object a line
        print(json.dumps({"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **out}))
    elif as_json:
        print_json(out)
    else:
        print(f"retention sweep of {', '.join(sorted(retention))} (archive {settings.archive_path}):")
        for what, n in counts.items():
            print(f"  {n:6d}  {what}")
    sys.stdout.flush()


def _sweep_repeatedly(
    client: redis.Redis, settings: Settings, retention: Mapping[str, Retention], *, every: float, as_json: bool
) -> None:
    """Sweep now and then every ``every`` seconds until SIGTERM / SIGINT; Redis going away is waited
    out (:func:`worker.connection.keep_serving`) and the round is run again when it is back."""
    import logging
    import signal
    import threading

    from worker.connection import keep_serving

    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        logging.getLogger("replyguard").info("retention sweep stopping (signal %d)", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def serve() -> bool:
        while not stopping.is_set():
            _sweep_and_print(client, settings, retention, as_json=as_json, one_line=True)
            stopping.wait(every)
        return True

    keep_serving(client, serve, what="retention sweep", stop=stopping.is_set)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's commands to the ``replyguard`` parser."""
    p = sub.add_parser("users", help="review-app users: add (password on stdin), list, disable, enable")
    users = p.add_subparsers(dest="users_command", required=True)
    q = users.add_parser("add", help="add a user; the password is read from stdin (asked twice on a terminal)")
    q.add_argument("name")
    q.add_argument(
        "--brand",
        action="append",
        required=True,
        help="a brand the user may see (repeat for several; '*' for every brand)",
    )
    q.add_argument("--role", required=True, choices=list(defaults.USER_ROLES))
    q.add_argument("--replace", action="store_true", help="replace an existing user's password, role and brands")
    q.set_defaults(func=cmd_users)
    q = users.add_parser("list", help="every user, their role and brands")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_users)
    for name, text in (("disable", "disable a user (their sessions end at once)"), ("enable", "enable a user again")):
        q = users.add_parser(name, help=text)
        q.add_argument("name")
        q.set_defaults(func=cmd_users)

    p = sub.add_parser("audit", help="the audit trail of human actions")
    audit = p.add_subparsers(dest="audit_command", required=True)
    q = audit.add_parser("export", help="every human action of a brand as JSONL, oldest first")
    q.add_argument("--brand", required=True)
    q.add_argument("--since", help="only entries at or after this ISO date/time (UTC unless it has an offset)")
    q.add_argument("--out", help="write to this file instead of stdout")
    q.set_defaults(func=cmd_audit_export)

    p = sub.add_parser("forget", help="delete every copy of one person's data (GDPR erasure); audited")
    p.add_argument("--brand", required=True)
    p.add_argument("--author", required=True, help="the person's author id on the platform")
    p.add_argument("--by", default=os.environ.get("USER") or "operator", help="who asked (for the audit entry)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("retention", help="personal-data retention (policy retention)")
    retention = p.add_subparsers(dest="retention_command", required=True)
    q = retention.add_parser(
        "sweep",
        help="archive (if on) and delete data older than active_days; delete archive files older than archive_days",
    )
    q.add_argument("--brand", help="only this brand")
    q.add_argument("--json", action="store_true")
    q.add_argument(
        "--every",
        type=float,
        nargs="?",
        const=defaults.RETENTION_SWEEP_INTERVAL_SECONDS,
        metavar="SECONDS",
        help="keep running: sweep now and then every SECONDS (--json: one JSON object a line) "
        f"(default {defaults.RETENTION_SWEEP_INTERVAL_SECONDS:g}) until SIGTERM; waits out a Redis outage",
    )
    q.set_defaults(func=cmd_retention_sweep)
