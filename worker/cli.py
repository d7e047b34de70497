"""``replyguard`` command line.

Exit codes: 0 done; 1 some input was rejected (or missing, unreadable, or not
decided: no worker, a failed job, a timeout); 2 usage or configuration error
(broken policy, template, model, settings); 3 Redis unreachable. No command
prints a traceback. With ``--json`` stdout holds only JSON; progress and
messages go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from worker import defaults
from worker.exceptions import ArtifactError, ConfigError, ReplyguardError, StoreError, WaitTimeout

EXIT_INPUT = 1
EXIT_CONFIG = 2
EXIT_REDIS = 3


def _settings(args: argparse.Namespace):
    from worker.settings import Settings

    return Settings.from_env(policies_dir=getattr(args, "policies", None))


def _connect(settings):
    from worker.connection import connect

    return connect(settings)


def _print_json(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _short(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


# -- commands -------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace) -> int:
    from worker.ingest import Ingestor, ingest_stream, open_input, policy_brands, wait_for

    settings = _settings(args)
    stream = open_input(args.file)
    client = _connect(settings)

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
            _print_json(out)
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
        _print_json(summary)
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

    settings = _settings(args)
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


def cmd_show(args: argparse.Namespace) -> int:
    from worker.store import Store

    settings = _settings(args)
    store = Store(_connect(settings), settings.key_prefix)
    decision, problem = _find_decision(store, args.message_id, args.brand)
    if problem is None and decision is None:
        where = f" for brand {args.brand!r}" if args.brand else ""
        problem = f"no decision for message {args.message_id!r}{where}"
    if problem is not None:
        if args.json:
            _print_json({"error": problem, "message_id": args.message_id})
        print(problem, file=sys.stderr)
        return EXIT_INPUT
    receipts = _receipts(store, decision)
    if args.json:
        _print_json({**json.loads(decision.to_json()), "receipts": receipts})
        return 0
    d = decision
    print(f"message   {d.message_id}  (brand {d.brand}, {d.platform} {d.kind}, language {d.language})")
    print(f"text      {_short(d.event.get('text'), 200)}")
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


def _sla_tracker(settings, client):
    from worker.policy import load_policies
    from worker.sla.tracker import SlaTracker
    from worker.store import Store

    policies = {b: loaded.policy for b, loaded in load_policies(settings.policies_dir).items()}
    return SlaTracker(Store(client, settings.key_prefix), policies)


def cmd_review_list(args: argparse.Namespace) -> int:
    from worker.store import Store

    settings = _settings(args)
    client = _connect(settings)
    store = Store(client, settings.key_prefix)
    items, total = store.review_page(args.limit, brand=args.brand, role=args.role, offset=args.offset)
    remaining = max(0, total - args.offset - len(items))
    tracker = _sla_tracker(settings, client)
    sla: dict[tuple[str, str], dict] = {}
    for brand in {i.brand for i in items}:
        views = tracker.views(brand, [i.message_id for i in items if i.brand == brand])
        sla.update({(brand, mid): v for mid, v in views.items()})
    if args.json:
        _print_json(
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
            f"{i.priority:8} {_age(i.waiting_seconds):>7}  {_short(i.brand, 12):12} {_short(i.message_id, 22):22} "
            f"{_short(role, 10):10} {_short(reason, 60)}"
        )
        view = sla.get((i.brand, i.message_id))
        if view:
            clocks = "; ".join(
                f"{c['target']} {c['state']}" + (f" due {c['due_at'][:16]}" if c["due_at"] else "")
                for c in view["clocks"]
            )
            print(f"{'':60}SLA {view['policy']}: {clocks}")
        if d:
            print(f"{'':60}“{_short(d.event.get('text'), 70)}”")
    print(
        f"showing {args.offset + 1}–{args.offset + len(items)} of {total}"
        + (f"; {remaining} more: replyguard review list --offset {args.offset + len(items)}" if remaining else "")
    )
    return 0


def cmd_review_resolve(args: argparse.Namespace) -> int:
    from worker.brands import load_brands
    from worker.models import Correction
    from worker.store import Store

    settings = _settings(args)
    store = Store(_connect(settings), settings.key_prefix)
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
            f"{k}={v}" for k, v in correction.model_dump(include={"intent", "spam", "abuse"}).items() if v is not None
        )
    )
    return 0


def cmd_sla_sweep(args: argparse.Namespace) -> int:
    from worker.queues import batch_queue

    settings = _settings(args)
    client = _connect(settings)
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

    settings = _settings(args)
    tracker = _sla_tracker(settings, _connect(settings))
    if args.brand not in tracker.policies:
        print(f"no policy for brand {args.brand!r} (known: {', '.join(sorted(tracker.policies))})", file=sys.stderr)
        return EXIT_INPUT
    rows = kpi.load(tracker.store, tracker, args.brand, tracker.policies[args.brand], days=args.days)
    if args.csv:
        sys.stdout.write(kpi.to_csv(rows))
    else:
        _print_json([r.row() for r in rows])
    return 0


def _policy_model(policy_path: Path, task: str, settings):
    """The model ``policy_path`` names for ``task``, or None (with the reason) when it cannot be loaded."""
    from classifiers.registry import ModelRegistry
    from worker.exceptions import ReplyguardError
    from worker.policy import load_policy

    policy = load_policy(policy_path, name_must_match=False).policy
    name = getattr(policy.models, task)
    try:
        return ModelRegistry(settings.models_dirs).get(name, task), None
    except ReplyguardError as exc:
        return None, f"the policy's {task} model {name!r} cannot be loaded ({exc}); thresholds are proposed without it"


def cmd_rejected(args: argparse.Namespace) -> int:
    from worker.store import Store

    settings = _settings(args)
    store = Store(_connect(settings), settings.key_prefix)
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
        _print_json(rows)
        return 0
    if not rows:
        print("no rejected events")
        return 0
    for r in rows:
        print(f"{r['at']}  {r['brand'] or '?'}/{r['message_id'] or '?'}  ({r['source']})")
        print(f"    {_short(r['reason'], 200)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if args.replay:
        return _eval_replay(args)
    if args.compare:
        return _eval_compare(args)
    from classifiers.datasets import read_dataset
    from eval.evaluate import evaluate
    from eval.report import write_report

    if not args.task or not args.data or not args.report:
        print("eval needs --task, --data and --report (or --replay, or --compare A B)", file=sys.stderr)
        return EXIT_CONFIG
    settings = _settings(args)
    policy = Path(args.policy) if args.policy else settings.policies_dir / "demo-shop.yaml"
    dataset = read_dataset(args.data)
    policy_model, model = None, args.model
    if policy.exists():
        policy_model, why = _policy_model(policy, args.task, settings)
        if why:
            print(f"note: {why}", file=sys.stderr)
        data_labels = set(dataset.label_set)
        if model is None and not args.train and policy_model is not None and data_labels <= set(policy_model.labels):
            # thresholds are proposed for the model the policy actually uses
            model = policy_model
            print(
                f"evaluating the policy's {args.task} model {policy_model.ref} (--train trains one on the data instead)"
            )
    evaluation = evaluate(
        args.task,
        dataset,
        model=model,
        target_precision=args.target_precision,
        oos_label=args.oos_label,
        margin=args.margin,
        oos_share=args.assume_oos_share,
        models_dirs=settings.models_dirs,
    )
    written = write_report(
        evaluation, Path(args.report), policy_path=policy if policy.exists() else None, policy_model=policy_model
    )
    r = evaluation.report
    print(
        f"{r['task']} on {Path(r['data']['path']).name}: {r['n_train']} train / {r['n_val']} val / {r['n_test']} test ({r['model']})"
    )
    for note in r.get("notes") or []:
        print(f"  note: {note}")
    print(f"  accuracy {r['accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}  ECE {r['ece']:.4f}")
    if r.get("in_scope_accuracy") is not None:
        recall = "-" if r.get("oos_recall") is None else f"{r['oos_recall']:.4f}"
        print(
            f"  in-scope accuracy {r['in_scope_accuracy']:.4f}  out-of-scope recall {recall} "
            f"(reject below {r['reject_threshold']:.3f}, chosen on val)"
        )
    if r.get("tuned"):
        t = r["tuned"]
        print(
            f"  with class multipliers {t['class_multipliers']} chosen on val: accuracy {t['accuracy']:.4f}, "
            f"macro-F1 {t['macro_f1']:.4f}"
        )
    print(
        f"  at threshold {r['threshold']:.4f} (chosen on val for precision {r['target_precision']}): "
        f"coverage {r['coverage']:.4f}, precision {r['achieved_precision']:.4f} on test"
    )
    if r.get("train_seconds") is not None:
        print(f"  trained in {r['train_seconds']:.1f}s; {r['predict_per_second']:.0f} messages/s on one thread")
    pc = r.get("policy_comparison") or {}
    if pc.get("model_mismatch"):
        print(
            f"  WARNING: the proposed thresholds are for {r.get('model_ref') or 'a model this eval trained (not saved)'}, not for the policy's model {pc['policy_model']}: "
            "train and promote a model on this data before using them"
        )
    for item in pc.get("unmapped") or []:
        print(f"  not proposed: {item}")
    for path in written.values():
        print(f"  wrote {path}")
    return 0


def _eval_compare(args: argparse.Namespace) -> int:
    from eval.compare import compare_reports, write_compare_html

    first, second = (Path(p) for p in args.compare)
    table = compare_reports(first, second)
    print("\n".join(table.lines()))
    if args.report:
        out = Path(args.report)
        out.mkdir(parents=True, exist_ok=True)
        write_compare_html(table, out / "compare.html")
        print(f"wrote {out / 'compare.html'}")
    return 0


def _eval_replay(args: argparse.Namespace) -> int:
    from classifiers.registry import ModelRegistry
    from eval.replay import replay
    from worker.brands import load_brand
    from worker.policy import load_policy
    from worker.store import Store

    settings = _settings(args)
    brand_name = args.brand or "demo-shop"
    path = Path(args.policy) if args.policy else settings.policies_dir / f"{brand_name}.yaml"
    loaded = load_policy(path, name_must_match=False)
    if loaded.brand != brand_name:
        print(f"{path} is a policy for brand {loaded.brand!r}, not {brand_name!r}", file=sys.stderr)
        return EXIT_CONFIG
    brand = load_brand(loaded, settings, ModelRegistry(settings.models_dirs))
    store = Store(_connect(settings), settings.key_prefix)
    report = replay(store, brand, limit=args.limit, reclassify=args.reclassify)
    print("\n".join(report.lines()))
    if args.report:
        out = Path(args.report)
        out.mkdir(parents=True, exist_ok=True)
        from eval.replay import write_replay_html

        (out / "replay.json").write_text(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n")
        write_replay_html(report, out / "replay.html")
        print(f"wrote {out / 'replay.json'}")
        print(f"wrote {out / 'replay.html'}")
    return 0


def _models_root(args: argparse.Namespace) -> Path:
    from classifiers.registry import SHIPPED_DIR

    if getattr(args, "dir", None):
        return Path(args.dir)
    settings = _settings(args)
    return settings.models_dirs[0] if settings.models_dirs else SHIPPED_DIR


def cmd_train(args: argparse.Namespace) -> int:
    from classifiers.build import DEFAULT_CONFIGS, ModelConfig, train
    from classifiers.datasets import Dataset, read_dataset
    from classifiers.versions import ModelVersions

    dataset = read_dataset(args.data)
    config = DEFAULT_CONFIGS[args.task]
    if args.config:
        config = ModelConfig.from_dict({**config.to_dict(), **json.loads(Path(args.config).read_text())})
    name = args.name or f"{args.task}-{Path(args.data).stem.replace('_', '-').lower()}"
    if args.corrections:
        from eval.promotion import correction_examples
        from worker.store import Store

        extra = correction_examples(
            Store(_connect(_settings(args)), _settings(args).key_prefix), args.corrections, args.task
        )
        used = sum(e.split == "train" for e in extra)
        print(
            f"adding {used} reviewed corrections of {args.corrections} to the training rows "
            f"({len(extra) - used} more are held out for promotion checks)"
        )
        dataset = Dataset(path=dataset.path, sha256=dataset.sha256, examples=dataset.examples + extra)
    root = _models_root(args)
    if args.out:
        out = Path(args.out)
    elif args.candidate:
        out = ModelVersions(root, name).candidates_dir / "pending"
    else:
        out = root / name
    started = time.perf_counter()
    result = train(
        args.task, dataset, name=name, out=out, config=config, out_of_scope_label=args.oos_label, version=args.version
    )
    manifest = result.manifest
    if args.candidate and not args.out and manifest is not None:
        final = out.with_name(manifest.version)
        if final.exists():
            import shutil

            shutil.rmtree(final)
        out.rename(final)
        out = final
    m = result.metrics
    print(f"wrote {out} ({manifest.ref if manifest else name}) in {time.perf_counter() - started:.1f}s")
    if args.candidate:
        print(f"a candidate: replyguard models promote {name} --data HELD_OUT checks it against the current model")
    if "accuracy" in m:
        print(
            f"held-out ({m['n']} test rows): accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, ECE {m['ece']:.4f}"
        )
        for label, row in m["per_label"].items():
            print(
                f"  {label:24} P {row['precision']:.3f}  R {row['recall']:.3f}  F1 {row['f1']:.3f}  n={row['support']}"
            )
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from classifiers.versions import ModelVersions, names

    root = _models_root(args)
    for name in [args.name] if args.name else names(root):
        versions = ModelVersions(root, name)
        current = versions.current()
        print(f"{name}  ({root})")
        print(f"  current    {current.version if current else '-'}")
        for m in versions.candidates():
            print(f"  candidate  {m.version}  trained {m.created_at:%Y-%m-%d %H:%M}")
        stack = versions.log()["stack"]
        for m in versions.history():
            tag = "  (rollback restores this)" if stack and m.version == stack[-1] else ""
            print(f"  earlier    {m.version}  trained {m.created_at:%Y-%m-%d %H:%M}{tag}")
    return 0


def cmd_models_promote(args: argparse.Namespace) -> int:
    from classifiers.datasets import read_dataset
    from classifiers.persistence import load_artifact
    from classifiers.versions import ModelVersions
    from eval.promotion import check_promotion, correction_examples

    versions = ModelVersions(_models_root(args), args.name)
    source = versions.candidate_dir(args.version)
    candidate = load_artifact(source)
    corrections = []
    if args.corrections:
        from worker.store import Store

        settings = _settings(args)
        corrections = correction_examples(
            Store(_connect(settings), settings.key_prefix), args.corrections, candidate.task
        )
    if versions.current() is not None:
        current = load_artifact(versions.current_dir)
        check = check_promotion(
            candidate.task,
            current,
            candidate,
            read_dataset(args.data),
            target_precision=args.target_precision,
            corrections=corrections,
            oos_label=candidate.manifest.out_of_scope_label,
        )
        print("\n".join(check.lines()))
        if not check.accepted:
            print(f"not promoted: {args.name} stays at {current.manifest.version}", file=sys.stderr)
            return EXIT_CONFIG
    promoted = versions.promote(candidate.manifest.version, note=f"checked on {args.data}")
    print(
        f"promoted {args.name} to {promoted.version}; workers load it on restart "
        f"(replyguard models rollback {args.name} restores the previous one)"
    )
    return 0


def cmd_models_rollback(args: argparse.Namespace) -> int:
    from classifiers.versions import ModelVersions

    restored = ModelVersions(_models_root(args), args.name).rollback()
    print(f"rolled {args.name} back to {restored.version}; workers load it on restart")
    return 0


def cmd_build_defaults(args: argparse.Namespace) -> int:
    from classifiers.recipes import DEFAULT_SHARED, RECIPES, build_default
    from classifiers.registry import SHIPPED_DIR

    from classifiers.sentence import build_table, table_path

    shared = Path(args.shared) if args.shared else DEFAULT_SHARED
    out = Path(args.out) if args.out else SHIPPED_DIR
    if not table_path().is_file():
        started = time.perf_counter()
        print(
            f"sentence table: derived from the pinned package into {build_table()} "
            f"in {time.perf_counter() - started:.0f}s"
        )
    names = args.only.split(",") if args.only else list(RECIPES)
    for name in names:
        if name not in RECIPES:
            print(f"unknown model {name!r}; known: {', '.join(RECIPES)}", file=sys.stderr)
            return EXIT_CONFIG
        result = build_default(name, shared, out)
        m = result.metrics
        print(
            f"{name}: {result.manifest.ref if result.manifest else ''} trained in {result.train_seconds:.1f}s; "
            f"test accuracy {m.get('accuracy', 0):.4f}, macro-F1 {m.get('macro_f1', 0):.4f}"
        )
    return 0


def _in_dir(path: Path, directory: Path) -> bool:
    return path.resolve().parent == directory.resolve()


def cmd_validate(args: argparse.Namespace) -> int:
    from worker.brands import load_brands, load_one

    settings = _settings(args)
    if args.policy:
        # inside the policies directory a file must be named <brand>.yaml; a candidate elsewhere
        # (e.g. an eval report's policy.proposed.yaml) is validated as it is
        brands = {
            b.name: b
            for b in (
                load_one(Path(p), settings, name_must_match=_in_dir(Path(p), settings.policies_dir))
                for p in args.policy
            )
        }
    else:
        brands = load_brands(settings)
    for name, brand in sorted(brands.items()):
        print(
            f"ok  {name}: policy {brand.policy_version} ({brand.loaded.path}), "
            f"{len(brand.templates.versions())} approved templates, models {', '.join(brand.model_versions().values())}"
        )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from worker import models, policy

    _print_json(models.event_json_schema() if args.what == "event" else policy.schema())
    return 0


def cmd_redis(args: argparse.Namespace) -> int:
    from worker.connection import embedded_for

    settings = _settings(args)
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


def cmd_stats(args: argparse.Namespace) -> int:
    from worker.policy import load_policies
    from worker.store import Store

    settings = _settings(args)
    store = Store(_connect(settings), settings.key_prefix)
    brands = [args.brand] if args.brand else sorted(load_policies(settings.policies_dir))
    out = {b: store.stats(b) for b in brands}
    if args.json:
        _print_json(out)
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


def cmd_metrics(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry, generate_latest, start_http_server

    from worker.metrics import RedisStatsCollector
    from worker.policy import load_policies
    from worker.store import Store

    settings = _settings(args)
    store = Store(_connect(settings), settings.key_prefix)
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


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from worker.web import create_app

    settings = _settings(args)
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

    settings = _settings(args)
    accounts = Accounts(_connect(settings), settings.key_prefix)
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
        _print_json([u.public() for u in users])
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
    settings = _settings(args)
    client = _connect(settings)
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

    settings = _settings(args)
    policies = load_policies(settings.policies_dir)  # a broken policy: exit 2
    author = (args.author or "").strip()
    if args.brand not in policies or not author:
        problem = (
            f"no policy for brand {args.brand!r} (known: {sorted(policies)})"
            if args.brand not in policies
            else "--author must be a non-empty author id"
        )
        if args.json:
            _print_json({"error": problem})
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_INPUT
    client = _connect(settings)
    report = forget_person(
        client, args.brand, author, prefix=settings.key_prefix, archive_dir=settings.archive_path, by=args.by
    )
    out = report.as_dict()
    if args.json:
        _print_json(out)
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
    from worker.privacy.archive import sweep

    settings = _settings(args)
    policies = load_policies(settings.policies_dir)  # a broken retention value: exit 2
    if args.brand and args.brand not in policies:
        print(f"error: no policy for brand {args.brand!r} (known: {sorted(policies)})", file=sys.stderr)
        return EXIT_INPUT
    retention = {b: loaded.policy.retention for b, loaded in policies.items() if not args.brand or b == args.brand}
    counts = sweep(_connect(settings), retention, prefix=settings.key_prefix, archive_dir=settings.archive_path)
    if args.json:
        _print_json({"brands": sorted(retention), "archive_dir": str(settings.archive_path), "counts": counts})
    else:
        print(f"retention sweep of {', '.join(sorted(retention))} (archive {settings.archive_path}):")
        for what, n in counts.items():
            print(f"  {n:6d}  {what}")
    return 0


def cmd_deliver(args: argparse.Namespace) -> int:
    from worker.delivery.runner import build_deliverer, stop_on_signals

    settings = _settings(args)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    client = _connect(settings)
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

    settings = _settings(args)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from worker import defaults

    counts = poll_youtube(
        _connect(settings), settings, once=args.once, interval=args.interval or defaults.YOUTUBE_POLL_INTERVAL_SECONDS
    )
    print(
        f"polled {counts['channels']} channel(s): {counts['new']} new comment(s), {counts['quota_units']} quota unit(s)"
    )
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from worker.policy import load_policies
    from worker.store import Store

    settings = _settings(args)
    store = Store(_connect(settings), settings.key_prefix)
    brands = [args.brand] if args.brand else sorted(load_policies(settings.policies_dir))
    rows = {b: store.dead_letters(b, args.limit) for b in brands}
    if args.json:
        _print_json(rows)
        return 0
    for brand, entries in rows.items():
        print(f"{brand}: {len(entries)} dead letter(s)")
        for e in entries:
            print(
                f"  {e['at'][:19]}  {e['connector']:<20} {e['message_id']:<24} {e['attempts']} attempt(s)  "
                f"{_short(e['error'], 60)}"
            )
    return 0


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


# -- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="replyguard", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

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
    q.add_argument("--limit", type=int, default=50, help="items per page")
    q.add_argument("--offset", type=int, default=0, help="skip this many items (the next page)")
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
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rejected)

    p = sub.add_parser("eval", help="evaluate a classifier and propose thresholds, or replay past decisions")
    p.add_argument("--task", choices=["spam", "abuse", "intent"])
    p.add_argument("--data", help="labelled JSONL/CSV (text, label[, split])")
    p.add_argument("--report", help="output directory")
    p.add_argument(
        "--model",
        help="evaluate this artifact as is: a registry name (spam-default) or a directory "
        "(default: the policy's model when it knows the data's labels, else train on the train split)",
    )
    p.add_argument(
        "--train", action="store_true", help="train a model on the data even if the policy's model knows its labels"
    )
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="show two eval report directories side by side")
    p.add_argument("--target-precision", type=float, default=0.98)
    p.add_argument("--oos-label", help="the out-of-scope label (intent)")
    p.add_argument("--margin", type=float, default=0.0, help="extra precision demanded on val (safety margin)")
    p.add_argument(
        "--assume-oos-share",
        type=float,
        default=None,
        help="out-of-scope share of real traffic to plan the threshold for (default 0.25 with --oos-label)",
    )
    p.add_argument("--policy", help="policy to compare with / replay (default: policies/demo-shop.yaml)")
    p.add_argument("--replay", action="store_true", help="re-decide stored decisions with --policy")
    p.add_argument("--brand", help="brand to replay (default demo-shop)")
    p.add_argument("--limit", type=int, help="replay at most this many decisions")
    p.add_argument("--reclassify", action="store_true", help="replay: re-run the policy's models on the stored text")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train", help="train a classifier artifact from labelled JSONL/CSV")
    p.add_argument("task", choices=["spam", "abuse", "intent"])
    p.add_argument("--data", required=True, help="JSONL (text, label[, split]) or CSV with a header")
    p.add_argument("--name", help="artifact name (default: TASK-<file stem>)")
    p.add_argument("--out", help="artifact directory (default: classifiers/artifacts/NAME)")
    p.add_argument("--oos-label", help="the out-of-scope label (intent)")
    p.add_argument("--version", help="version string (default: a hash of the training data and config)")
    p.add_argument("--config", help="JSON file overriding model hyperparameters")
    p.add_argument(
        "--candidate", action="store_true", help="write a candidate version (promote it with replyguard models promote)"
    )
    p.add_argument("--corrections", metavar="BRAND", help="add BRAND's reviewed corrections to the training rows")
    p.add_argument(
        "--dir", help="models directory (default: the first REPLYGUARD_MODELS_DIRS entry, else classifiers/artifacts)"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("models", help="model versions: list, promote a candidate, roll back")
    models = p.add_subparsers(dest="models_command", required=True)
    q = models.add_parser("list", help="current, candidate and earlier versions")
    q.add_argument("name", nargs="?")
    q.add_argument("--dir")
    q.set_defaults(func=cmd_models_list)
    q = models.add_parser("promote", help="check a candidate against the current model on the same held-out data")
    q.add_argument("name")
    q.add_argument("--data", required=True, help="held-out labelled data (val rows choose thresholds, test rows judge)")
    q.add_argument("--version", help="candidate version (default: the newest)")
    q.add_argument("--corrections", metavar="BRAND", help="also judge on BRAND's held-out corrections")
    q.add_argument("--target-precision", type=float, default=0.98)
    q.add_argument("--dir")
    q.set_defaults(func=cmd_models_promote)
    q = models.add_parser("rollback", help="restore the version the last promotion replaced")
    q.add_argument("name")
    q.add_argument("--dir")
    q.set_defaults(func=cmd_models_rollback)

    p = sub.add_parser("build-defaults", help="rebuild the shipped default models from ../shared/datasets")
    p.add_argument("--shared", help="datasets directory (default: ../shared/datasets beside the checkout)")
    p.add_argument("--out", help="output directory (default: classifiers/artifacts)")
    p.add_argument("--only", help="comma-separated model names")
    p.set_defaults(func=cmd_build_defaults)

    p = sub.add_parser("validate", help="load and cross-check policies, templates and models")
    p.add_argument("policy", nargs="*", help="policy files (default: every policy)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print a JSON Schema")
    p.add_argument("what", choices=["event", "policy"])
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("redis", help="manage the embedded Redis server")
    p.add_argument("action", choices=["status", "start", "stop"])
    p.set_defaults(func=cmd_redis)

    p = sub.add_parser("stats", help="decision counters per brand")
    p.add_argument("--brand")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("metrics", help="serve Prometheus metrics (from the counters in Redis)")
    p.add_argument("--port", type=int, default=9108)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--once", action="store_true", help="print the metrics once and exit")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("serve", help="the HTTP service: webhooks, /v1/events, health, metrics")
    p.add_argument("--host", default=defaults.SERVE_HOST)
    p.add_argument("--port", type=int, default=defaults.SERVE_PORT)
    p.add_argument("--policies", default=None, help="policies directory (default: REPLYGUARD_POLICIES_DIR)")
    p.set_defaults(func=cmd_serve)

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
    q.set_defaults(func=cmd_retention_sweep)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    from worker.privacy import redact

    redact.install()  # customer text, names, e-mails and phones never reach a log line
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # the reader went away (`replyguard show ID | head`): not an error of ours; stay quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REDIS
    except (ConfigError, ArtifactError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ReplyguardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - no traceback ever reaches a user
        if os.environ.get("REPLYGUARD_LOG_LEVEL", "").upper() == "DEBUG":
            import traceback

            traceback.print_exc()
        print(
            f"error: unexpected {type(exc).__name__}: {_short(str(exc), 300)} "
            "(set REPLYGUARD_LOG_LEVEL=DEBUG for details)",
            file=sys.stderr,
        )
        return EXIT_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
