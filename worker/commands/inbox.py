"""Commands that read and work the inbox: show a decision, the review queue, SLA sweeps, KPIs,
rejected events, counters."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone

from worker.ages import age_text
from worker.commands.console import (
    EXIT_CONFIG,
    EXIT_INPUT,
    at_least_one,
    connect_redis,
    not_negative,
    print_json,
    settings_for,
    short,
)

#: What ``review resolve`` records; at least one must be given (as the review app's correct_labels asks).
RESOLVE_FIELDS = ("intent", "spam", "abuse", "note")


def _find_decision(store, message_id: str, brand: str | None):
    if brand:
        return store.decision(brand, message_id), None
    brands = store.brands_for(message_id)
    if len(brands) > 1:
        return None, f"message id {message_id!r} was decided for several brands ({', '.join(brands)}); pass --brand"
    if not brands:
        return None, None
    return store.decision(brands[0], message_id), None


def _receipts(store, decision) -> dict[str, dict[str, str]]:
    """Delivery / read receipts the platform sent for the messages this decision sent."""
    from worker.inbound.receipts import receipts_for

    ids = [r.platform_message_id for r in getattr(decision, "deliveries", []) if r.platform_message_id]
    return receipts_for(store.client, store.keys, decision.platform, ids)


def _sla_tracker(settings, client):
    from worker.policy import load_policies
    from worker.sla.tracker import SlaTracker
    from worker.store import Store

    policies = {b: loaded.policy for b, loaded in load_policies(settings.policies_dir).items()}
    return SlaTracker(Store(client, settings.key_prefix), policies)


def cmd_show(args: argparse.Namespace) -> int:
    from worker.store import Store

    settings = settings_for(args)
    store = Store(connect_redis(settings), settings.key_prefix)
    decision, problem = _find_decision(store, args.message_id, args.brand)
    if problem is None and decision is None:
        where = f" for brand {args.brand!r}" if args.brand else ""
        problem = f"no decision for message {args.message_id!r}{where}"
    if problem is not None:
        if args.json:
            print_json({"error": problem, "message_id": args.message_id})
        print(problem, file=sys.stderr)
        return EXIT_INPUT
    receipts = _receipts(store, decision)
    if args.json:
        print_json({**json.loads(decision.to_json()), "receipts": receipts})
        return 0
    d = decision
    print(f"message   {d.message_id}  (brand {d.brand}, {d.platform} {d.kind}, language {d.language})")
    print(f"text      {short(d.event.get('text'), 200)}")
    print(f"actions   {', '.join(a.value for a in d.actions)}")
    threshold = (
        f" (score {d.score:.3f} vs threshold {d.threshold:.2f})"
        if d.score is not None and d.threshold is not None
        else ""
    )
    print(f"rule      {d.rule}{threshold}")
    for hit in d.rules:
        extra = " ".join(
            x
            for x in [
                f"score={hit.score:.3f}" if hit.score is not None else "",
                f"threshold={hit.threshold:.2f}" if hit.threshold is not None else "",
                hit.detail or "",
            ]
            if x
        )
        print(f"          - {hit.name} {extra}".rstrip())
    if d.intent:
        print(f"intent    {d.intent.label} ({d.intent.score:.3f})")
    for task, scores in d.scores.items():
        top = sorted(scores.items(), key=lambda kv: -kv[1])[:4]
        print(f"scores    {task}: " + ", ".join(f"{k} {v:.3f}" for k, v in top))
    if d.template:
        print(
            f"template  {', '.join(f'{t.id}@{t.version}' + (' (fallback body)' if t.fallback else '') for t in d.templates)}"
        )
    if d.reply:
        print("reply     " + d.reply.replace("\n", "\n          "))
    if d.escalation:
        print(f"escalated to {d.escalation.role} ({d.escalation.priority}): {d.escalation.reason}")
    if d.tags or d.untags:
        print(f"tags      +{d.tags} -{d.untags}")
    print(f"policy    {d.policy_version}")
    print(f"models    {', '.join(f'{k}={v}' for k, v in d.model_versions.items())}")
    print(f"timings   {', '.join(f'{k} {v}' for k, v in d.timings.items())}")
    print(f"decided   {d.decided_at.isoformat()}")
    for record in getattr(d, "deliveries", []):
        extra = f" {record.platform_message_id}" if record.platform_message_id else ""
        error = f" ({record.error})" if record.error else ""
        print(f"delivery  {record.action} → {record.target}: {record.status}{extra}{error}")
        for field, value in sorted(receipts.get(record.platform_message_id or "", {}).items()):
            if field.startswith("status:"):
                at = datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc).isoformat(timespec="seconds")
                print(f"          {field[7:]} at {at}")
    return 0


def cmd_review_list(args: argparse.Namespace) -> int:
    from worker.store import Store

    settings = settings_for(args)
    client = connect_redis(settings)
    store = Store(client, settings.key_prefix)
    items, total = store.review_page(args.limit, brand=args.brand, role=args.role, offset=args.offset)
    remaining = max(0, total - args.offset - len(items))
    tracker = _sla_tracker(settings, client)
    sla: dict[tuple[str, str], dict] = {}
    for brand in {i.brand for i in items}:
        views = tracker.views(brand, [i.message_id for i in items if i.brand == brand])
        sla.update({(brand, mid): v for mid, v in views.items()})
    if args.json:
        print_json(
            {
                "total": total,
                "offset": args.offset,
                "remaining": remaining,
                "items": [
                    {
                        "brand": i.brand,
                        "message_id": i.message_id,
                        "priority": i.priority,
                        "waiting_seconds": round(i.waiting_seconds, 1),
                        "role": i.decision.escalation.role if i.decision and i.decision.escalation else None,
                        "reason": i.decision.escalation.reason if i.decision and i.decision.escalation else None,
                        "text": i.decision.event.get("text") if i.decision else None,
                        "sla": sla.get((i.brand, i.message_id)),
                    }
                    for i in items
                ],
            }
        )
        return 0
    if not items:
        print("review queue is empty" if not total else f"no items after the first {args.offset} (of {total})")
        return 0
    print(f"{'priority':8} {'waiting':>7}  {'brand':12} {'message':22} {'role':10} reason / text")
    for i in items:
        d = i.decision
        role = d.escalation.role if d and d.escalation else "?"
        reason = d.escalation.reason if d and d.escalation else "(decision missing)"
        print(
            f"{i.priority:8} {age_text(i.waiting_seconds):>7}  {short(i.brand, 12):12} {short(i.message_id, 22):22} "
            f"{short(role, 10):10} {short(reason, 60)}"
        )
        view = sla.get((i.brand, i.message_id))
        if view:
            clocks = "; ".join(
                f"{c['target']} {c['state']}" + (f" due {c['due_at'][:16]}" if c["due_at"] else "")
                for c in view["clocks"]
            )
            print(f"{'':60}SLA {view['policy']}: {clocks}")
        if d:
            print(f"{'':60}“{short(d.event.get('text'), 70)}”")
    print(
        f"showing {args.offset + 1}–{args.offset + len(items)} of {total}"
        + (f"; {remaining} more: replyguard review list --offset {args.offset + len(items)}" if remaining else "")
    )
    return 0


def cmd_review_resolve(args: argparse.Namespace) -> int:
    from worker.brands import load_brands
    from worker.models import Correction
    from worker.store import Store

    if all(getattr(args, name) is None for name in RESOLVE_FIELDS):
        # an empty verdict would take the message off the queue with nothing recorded
        print(
            "review resolve: nothing to record; give at least one of "
            "--intent LABEL, --spam yes|no, --abuse hate|offensive|neither, --note TEXT",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    settings = settings_for(args)
    store = Store(connect_redis(settings), settings.key_prefix)
    decision, problem = _find_decision(store, args.message_id, args.brand)
    if problem or decision is None:
        print(problem or f"no decision for message {args.message_id!r}", file=sys.stderr)
        return EXIT_INPUT
    brand = load_brands(settings).get(decision.brand)
    if brand is None:
        print(f"no policy for brand {decision.brand!r} in {settings.policies_dir}", file=sys.stderr)
        return EXIT_CONFIG
    checks = [("intent", args.intent, brand.intent), ("abuse", args.abuse, brand.abuse)]
    for what, value, model in checks:
        known = [*model.labels, "neither"] if what == "abuse" else list(model.labels)
        if value is not None and value not in known:
            print(
                f"{value!r} is not an {what} of {decision.brand} (model {model.ref}); known: {', '.join(known)}",
                file=sys.stderr,
            )
            return EXIT_INPUT
    spam = None if args.spam is None else args.spam == "yes"
    correction = Correction(
        brand=decision.brand,
        message_id=decision.message_id,
        intent=args.intent,
        spam=spam,
        abuse=args.abuse,
        note=args.note,
        by=args.by,
        at=datetime.now(timezone.utc),
    )
    if store.resolve(correction):
        _sla_tracker(settings, store.client).resolved(decision.brand, decision.message_id, correction.at, args.by)
    print(
        f"resolved {decision.brand}/{decision.message_id}: "
        + ", ".join(
            f"{k}={v!r}" if k == "note" else f"{k}={v}"
            for k, v in correction.model_dump(include=set(RESOLVE_FIELDS)).items()
            if v is not None
        )
    )
    return 0


def cmd_sla_sweep(args: argparse.Namespace) -> int:
    from worker.queues import batch_queue

    settings = settings_for(args)
    client = connect_redis(settings)
    tracker = _sla_tracker(settings, client)
    tracker.queue = batch_queue(client, settings)
    while True:
        for line in tracker.fire_due():
            print(line)
        if not args.every:
            return 0
        time.sleep(args.every)


def cmd_kpi(args: argparse.Namespace) -> int:
    from worker import kpi

    settings = settings_for(args)
    tracker = _sla_tracker(settings, connect_redis(settings))
    if args.brand not in tracker.policies:
        print(f"no policy for brand {args.brand!r} (known: {', '.join(sorted(tracker.policies))})", file=sys.stderr)
        return EXIT_INPUT
    rows = kpi.load(tracker.store, tracker, args.brand, tracker.policies[args.brand], days=args.days)
    if args.csv:
        sys.stdout.write(kpi.to_csv(rows))
    else:
        print_json([r.row() for r in rows])
    return 0


def cmd_rejected(args: argparse.Namespace) -> int:
    from worker.store import Store

    settings = settings_for(args)
    store = Store(connect_redis(settings), settings.key_prefix)
    rows = [
        {
            "at": datetime.fromtimestamp(e.get("at", 0), timezone.utc).isoformat(timespec="seconds"),
            "brand": e.get("brand"),
            "message_id": e.get("message_id"),
            "source": e.get("source"),
            "reason": e.get("reason"),
        }
        for e in store.rejected(limit=args.limit)
    ]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no rejected events")
        return 0
    for r in rows:
        print(f"{r['at']}  {r['brand'] or '?'}/{r['message_id'] or '?'}  ({r['source']})")
        print(f"    {short(r['reason'], 200)}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from worker.policy import load_policies
    from worker.store import Store

    settings = settings_for(args)
    store = Store(connect_redis(settings), settings.key_prefix)
    brands = [args.brand] if args.brand else sorted(load_policies(settings.policies_dir))
    out = {b: store.stats(b) for b in brands}
    if args.json:
        print_json(out)
        return 0
    for brand, counters in out.items():
        print(f"{brand}: {counters.get('decisions', 0)} decisions")
        for prefix, title in (("action:", "actions"), ("rule:", "rules")):
            rows = {k[len(prefix) :]: v for k, v in counters.items() if k.startswith(prefix)}
            if rows:
                print(f"  {title}: " + ", ".join(f"{k} {v}" for k, v in sorted(rows.items(), key=lambda kv: -kv[1])))
        calls = counters.get("llm:calls", 0)
        llm = {k[4:]: v for k, v in counters.items() if k.startswith("llm:") and ":" in k[4:]}
        if calls or llm:
            mean = counters.get("llm:latency_ms_sum", 0) / calls if calls else 0
            print(
                f"  llm: {calls} calls ({counters.get('llm:attempts', 0)} attempts), tokens in "
                f"{counters.get('llm:tokens_in', 0)}, out {counters.get('llm:tokens_out', 0)}, mean latency {mean:.0f} ms"
            )
            for key, value in sorted(llm.items()):
                if not key.startswith("latency_le"):
                    print(f"    {key:40} {value}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's commands to the ``replyguard`` parser."""
    p = sub.add_parser("show", help="print the decision for a message")
    p.add_argument("message_id")
    p.add_argument("--brand")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("review", help="the human review queue")
    review = p.add_subparsers(dest="review_command", required=True)
    q = review.add_parser("list", help="escalations by priority, then age")
    q.add_argument("--brand")
    q.add_argument("--role")
    q.add_argument("--limit", type=at_least_one, default=50, help="items per page")
    q.add_argument("--offset", type=not_negative, default=0, help="skip this many items (the next page)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_review_list)

    q = review.add_parser("resolve", help="record a reviewer's verdict and take the message off the queue")
    q.add_argument("message_id")
    q.add_argument("--brand")
    q.add_argument("--intent", help="the intent the message really has")
    q.add_argument("--spam", choices=["yes", "no"])
    q.add_argument("--abuse", choices=["hate", "offensive", "neither"])
    q.add_argument("--note")
    q.add_argument("--by", default=os.environ.get("USER", "reviewer"))
    q.set_defaults(func=cmd_review_resolve)

    p = sub.add_parser("sla", help="SLA timers")
    sla_sub = p.add_subparsers(dest="sla_command", required=True)
    q = sla_sub.add_parser("sweep", help="record every due SLA warning and breach (workers also do this)")
    q.add_argument("--every", type=float, default=0, help="repeat every N seconds (a standalone sweeper)")
    q.set_defaults(func=cmd_sla_sweep)

    p = sub.add_parser("kpi", help="inbox KPIs per day (JSON, or --csv)")
    p.add_argument("--brand", required=True)
    p.add_argument("--days", type=int, default=14, choices=range(1, 181), metavar="1..180")
    p.add_argument("--csv", action="store_true")
    p.set_defaults(func=cmd_kpi)

    p = sub.add_parser("rejected", help="events the worker could not decide, newest first, with the reason")
    p.add_argument("--limit", type=at_least_one, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rejected)

    p = sub.add_parser("stats", help="decision counters per brand")
    p.add_argument("--brand")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)
