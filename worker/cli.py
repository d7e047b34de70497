"""``replyguard`` command line.

Exit codes: 0 done; 1 some input was rejected (or missing, unreadable, or not
decided: no worker, a failed job, a timeout); 2 usage or configuration error
(broken policy, template, model, settings); 3 Redis unreachable. No command
prints a traceback. With ``--json`` stdout holds only JSON; progress and
messages go to stderr.

This module, the entry point, is the only one that sees every layer (``tests/test_layers.py``): the models and
configuration commands (eval and its --compare / --replay, train, models list / promote /
rollback, build-defaults, validate, schema) live here because eval, train and promote use
``eval/``; every other command group is a module of ``worker.commands``, which does not.
``python -m worker.cli`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from worker.ages import duration_text
from worker.commands import inbox, people, run
from worker.commands.console import (
    EXIT_CONFIG,
    EXIT_INPUT,
    EXIT_REDIS,
    at_least_one,
    connect_redis,
    print_json,
    settings_for,
    short,
)
from worker.exceptions import ArtifactError, ConfigError, ReplyguardError, StoreError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="replyguard", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (run, inbox):
        group.register(sub)
    register_models(sub)
    people.register(sub)
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
            f"error: unexpected {type(exc).__name__}: {short(str(exc), 300)} "
            "(set REPLYGUARD_LOG_LEVEL=DEBUG for details)",
            file=sys.stderr,
        )
        return EXIT_INPUT


def _policy_model(policy_path: Path, task: str, settings):
    """The model ``policy_path`` names for ``task``, or None (with the reason) when it cannot be loaded."""
    from classifiers.registry import ModelRegistry
    from worker.policy import load_policy

    policy = load_policy(policy_path, name_must_match=False).policy
    name = getattr(policy.models, task)
    try:
        return ModelRegistry(settings.models_dirs).get(name, task), None
    except ReplyguardError as exc:
        return None, f"the policy's {task} model {name!r} cannot be loaded ({exc}); thresholds are proposed without it"


def _report_dir(value: str) -> Path:
    """``--report DIR`` made ready before any work is done, or a ConfigError naming it."""
    out = Path(value)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--report {out}: not a directory (it is a file); name a directory for the report")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--report {out}: cannot create the directory: {exc.strerror or exc}") from exc
    return out


def cmd_eval(args: argparse.Namespace) -> int:
    if args.replay:
        return _eval_replay(args)
    if args.compare:
        return _eval_compare(args)
    from classifiers.datasets import read_dataset
    from eval.evaluate import binary_labels, evaluate
    from eval.report import write_report
    from eval.report_html import threshold_text

    if not args.task or not args.data or not args.report:
        print("eval needs --task, --data and --report (or --replay, or --compare A B)", file=sys.stderr)
        return EXIT_CONFIG
    settings = settings_for(args)
    policy = Path(args.policy) if args.policy else settings.policies_dir / "demo-shop.yaml"
    if args.policy and not policy.is_file():
        # a mistyped --policy must not quietly drop the proposal
        raise ConfigError(
            f"--policy {policy}: no such file" if not policy.exists() else f"--policy {policy}: not a file"
        )
    dataset = binary_labels(args.task, read_dataset(args.data))  # 1 / 0 spam data: the policy's model knows it
    report_dir = _report_dir(args.report)
    policy_model, model, oos_label = None, args.model, args.oos_label
    if policy.exists() and args.task == "intent" and oos_label is None:
        from worker.policy import load_policy

        policy_oos = load_policy(policy, name_must_match=False).policy.intents.out_of_scope_label
        if policy_oos in dataset.label_set:
            # the data says out of scope as the policy does: measure it as such (--oos-label overrides)
            oos_label = policy_oos
            print(f"reading {policy_oos!r} as the out-of-scope label, as {policy.name} does (--oos-label overrides)")
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
        oos_label=oos_label,
        margin=args.margin,
        oos_share=args.assume_oos_share,
        models_dirs=settings.models_dirs,
    )
    written = write_report(
        evaluation, report_dir, policy_path=policy if policy.exists() else None, policy_model=policy_model
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
        reject = (
            f"reject below {threshold_text(r['reject_threshold'])}, chosen on val"
            if r.get("reject_threshold") is not None
            else f"no reject threshold: {r.get('reject_threshold_not_chosen') or 'not chosen'}"
        )
        print(f"  in-scope accuracy {r['in_scope_accuracy']:.4f}  out-of-scope recall {recall} ({reject})")
    if r.get("tuned"):
        t = r["tuned"]
        print(
            f"  with class multipliers {t['class_multipliers']} chosen on val: accuracy {t['accuracy']:.4f}, "
            f"macro-F1 {t['macro_f1']:.4f}"
        )
    print(
        f"  at threshold {threshold_text(r['threshold'])} (chosen on val for precision {r['target_precision']}): "
        f"coverage {r['coverage']:.4f}, precision {r['achieved_precision']:.4f} on test"
    )
    if r.get("train_seconds") is not None:
        print(
            f"  trained in {duration_text(r['train_seconds'])}; {r['predict_per_second']:.0f} messages/s on one thread"
        )
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
    out = _report_dir(args.report) if args.report else None
    table = compare_reports(first, second)
    print("\n".join(table.lines()))
    if out is not None:
        write_compare_html(table, out / "compare.html")
        print(f"wrote {out / 'compare.html'}")
    return 0


def _eval_replay(args: argparse.Namespace) -> int:
    from classifiers.registry import ModelRegistry
    from eval.replay import replay
    from worker.brands import load_brand
    from worker.policy import load_policy
    from worker.store import Store

    settings = settings_for(args)
    out = _report_dir(args.report) if args.report else None
    brand_name = args.brand or "demo-shop"
    path = Path(args.policy) if args.policy else settings.policies_dir / f"{brand_name}.yaml"
    loaded = load_policy(path, name_must_match=False)
    if loaded.brand != brand_name:
        print(f"{path} is a policy for brand {loaded.brand!r}, not {brand_name!r}", file=sys.stderr)
        return EXIT_CONFIG
    brand = load_brand(loaded, settings, ModelRegistry(settings.models_dirs))
    store = Store(connect_redis(settings), settings.key_prefix)
    report = replay(store, brand, limit=args.limit, reclassify=args.reclassify)
    print("\n".join(report.lines()))
    if out is not None:
        from eval.replay import write_replay_html

        (out / "replay.json").write_text(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n")
        write_replay_html(report, out / "replay.html")
        print(f"wrote {out / 'replay.json'}")
        print(f"wrote {out / 'replay.html'}")
    return 0


def _inside_shipped(path: Path) -> bool:
    from classifiers.registry import SHIPPED_DIR

    shipped, resolved = SHIPPED_DIR.resolve(), path.resolve()
    return resolved == shipped or shipped in resolved.parents


def _models_root(args: argparse.Namespace, *, writing: bool) -> tuple[Path, str]:
    """The models directory a command works in, and how it was named (for messages): ``--dir``, else the first
    ``REPLYGUARD_MODELS_DIRS`` entry, else (to read) the shipped ``classifiers/artifacts``.

    A command that writes (``train``, ``models promote`` / ``rollback``) never writes into the installed package:
    without ``--dir`` or the setting it stops with a ConfigError naming both, and the shipped directory itself is
    refused (``make models`` / ``replyguard build-defaults`` rebuild it)."""
    from classifiers.registry import SHIPPED_DIR

    command = "train" if args.command == "train" else f"models {args.models_command}"
    if getattr(args, "dir", None):
        root, where = Path(args.dir), f"--dir {args.dir}"
    elif settings_for(args).models_dirs:
        root = settings_for(args).models_dirs[0]
        where = f"{root} (the first REPLYGUARD_MODELS_DIRS entry)"
    elif writing:
        raise ConfigError(
            f"replyguard {command} needs a models directory to write to: give --dir DIR, or set "
            "REPLYGUARD_MODELS_DIRS (its first entry; the workers search it, so they find the model there). "
            f"The shipped models ({SHIPPED_DIR}) are read-only; make models rebuilds them"
        )
    else:
        return SHIPPED_DIR, f"{SHIPPED_DIR} (the shipped models; set REPLYGUARD_MODELS_DIRS or give --dir for yours)"
    if writing and _inside_shipped(root):
        raise ConfigError(
            f"{where}: is the shipped models directory, read-only (make models / replyguard build-defaults "
            "rebuild it); name your own models directory with --dir or REPLYGUARD_MODELS_DIRS"
        )
    return root, where


def _config_file(path: Path) -> dict:
    """``--config FILE``: a JSON object of model config keys, or a ConfigError naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: must be a JSON object of model config keys")
    return data


def _replacing(out: Path, force: bool, option: str) -> str | None:
    """What training into ``out`` replaces, as a line for stdout (None: nothing); a ConfigError, before any work, when
    ``out`` holds something that is not a model (a file, a directory of other files) and ``force`` is off."""
    from classifiers.persistence import MANIFEST, read_manifest

    if not out.exists() and not out.is_symlink():
        return None
    if out.is_dir() and not out.is_symlink():
        if (out / MANIFEST).is_file():  # retraining into a model's directory: the usual loop
            try:
                return f"replaced the model that was in {out} ({read_manifest(out).ref})"
            except ArtifactError:
                return f"replaced the model that was in {out} (its manifest is unreadable)"
        if not any(out.iterdir()):
            return None
    what = "a symlink" if out.is_symlink() else "a directory that is not a model" if out.is_dir() else "a file"
    if not force:
        raise ConfigError(
            f"{option}{out}: is {what}; training would replace it with the model directory. "
            "Name another directory, or add --force to replace it"
        )
    return f"replaced {what} at {out} (--force)"


def _current_manifest(versions):
    """The current version's manifest of a models directory's model; None when there is none or it is unreadable
    (then training replaces it in place, as before)."""
    try:
        return versions.current()
    except ArtifactError:
        return None


def _read_labelled(task: str, path: str):
    """The labelled file at ``path``, a binary task's 1 / 0 (true / false, yes / no) read as its own labels, saying so."""
    from classifiers.datasets import read_dataset, with_splits
    from eval.evaluate import binary_labels

    dataset = binary_labels(task, read_dataset(path))
    if dataset.relabelled:
        print(f"{Path(path).name}: labels {dataset.relabelled_text()}")
    if dataset.empty_lines:
        print(f"{Path(path).name}: {dataset.empty_text()}")
    # what training measures on: its test rows against the rows it fits (train and val alike)
    for note in with_splits(dataset).overlaps().notes(splits=("test",)):
        print(f"{Path(path).name}: {note}")
    return dataset


def _check_names(args: argparse.Namespace, name: str, *, into_models_dir: bool) -> None:
    """A ConfigError, before any work, for a version that cannot name a directory, or (into a models directory)
    a model name the registry could never find, e.g. one made from a file named in Japanese or with capitals."""
    from classifiers.registry import NAME_RULE, is_model_name
    from classifiers.versions import check_version

    if args.version is not None:
        check_version(args.version)
    if into_models_dir and not is_model_name(name):
        given = f"--name {name!r}" if args.name else f"the name made from the file name, {name!r},"
        raise ConfigError(
            f"{given} is not a model name ({NAME_RULE}): policies name models by it; give one with --name"
        )


def cmd_train(args: argparse.Namespace) -> int:
    from classifiers.build import DEFAULT_CONFIGS, ModelConfig, plan_training, train
    from classifiers.versions import ModelVersions

    name = args.name or f"{args.task}-{Path(args.data).stem.replace('_', '-').lower()}"
    if args.out and _inside_shipped(Path(args.out)):
        raise ConfigError(
            f"--out {args.out}: is inside the shipped models directory, read-only (make models / "
            "replyguard build-defaults rebuild it); name a directory of your own"
        )
    root = None if args.out else _models_root(args, writing=True)[0]
    _check_names(args, name, into_models_dir=root is not None)
    # a candidate's directory is named by its version: known once the data is read
    candidate = args.candidate and root is not None
    out = Path(args.out) if root is None else root / name
    replaced = None if candidate else _replacing(out, args.force, "--out " if args.out else "")
    dataset = _read_labelled(args.task, args.data)
    config = DEFAULT_CONFIGS[args.task]
    if args.config:
        config = ModelConfig.from_dict({**config.to_dict(), **_config_file(Path(args.config))})
    extra: list = []
    if args.corrections:
        from eval.promotion import correction_examples
        from worker.store import Store

        extra = correction_examples(
            Store(connect_redis(settings_for(args)), settings_for(args).key_prefix), args.corrections, args.task
        )
        known = set(dataset.label_set)
        foreign = sorted({e.label for e in extra} - known)
        if foreign:
            # e.g. abuse corrections say hate / offensive / neither, a team's file hate / not_hate
            print(
                f"note: left out {sum(e.label in foreign for e in extra)} corrections labelled {foreign}: "
                f"{Path(args.data).name} has only {sorted(known)}"
            )
            extra = [e for e in extra if e.label in known]
        used = sum(e.split == "train" for e in extra)
        print(
            f"adding {used} reviewed corrections of {args.corrections} to the training rows "
            f"({len(extra) - used} more are held out for promotion checks)"
        )
    plan = plan_training(
        args.task,
        dataset,
        config=config,
        version=args.version,
        corrections=extra,
        corrections_name=f"reviewed corrections of {args.corrections}",
    )
    started = time.perf_counter()
    if root is None:  # --out DIR: a directory of the user's, outside any models directory's versions
        result = train(args.task, dataset, name=name, out=out, out_of_scope_label=args.oos_label, plan=plan)
    else:
        versions = ModelVersions(root, name)

        def train_into(directory: Path):  # written under the model's lock (a promotion or rollback waits for it)
            return train(
                args.task,
                dataset,
                name=name,
                out=directory,
                out_of_scope_label=args.oos_label,
                plan=plan,
                write_lock=versions.changing(),
            )

        current = None if candidate else _current_manifest(versions)
        if candidate:
            out = versions.candidates_dir / plan.version
            # one writer per candidate version (a second train of it fails here at once)
            with versions.claiming_candidate(plan.version, force=args.force) as replaced:
                result = train_into(out)
        elif current is None or current.version == plan.version:
            # nothing to keep: a first version, or the same data and config again (the same model)
            result = train_into(out)
        else:
            # a new version replaces the current one: trained as a candidate, then made current with the one it
            # replaces kept in the history, so models list shows it and models rollback restores it
            with versions.claiming_candidate(plan.version, force=True):
                result = train_into(versions.candidates_dir / plan.version)
                versions.promote(
                    plan.version,
                    note="replyguard train without --candidate: made current without a promotion check",
                    action="train",
                )
            replaced = f"replaced {current.ref} as current; it is kept (replyguard models rollback {name} restores it)"
    manifest = result.manifest
    m = result.metrics
    print(f"wrote {out} ({manifest.ref if manifest else name}) in {duration_text(time.perf_counter() - started)}")
    if replaced:
        print(replaced)
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


def _existing_models_root(args: argparse.Namespace) -> Path:
    """The models directory of ``models list / promote / rollback``; a ConfigError when there is none."""
    root, where = _models_root(args, writing=args.models_command != "list")
    if not root.exists():
        raise ConfigError(f"{where}: no such models directory (replyguard train ... --dir DIR makes one)")
    if not root.is_dir():
        raise ConfigError(f"{where}: not a directory; name a models directory")
    return root


def _known_versions(root: Path, name: str):
    """The versions of model ``name`` in ``root``; a ConfigError naming the models there when it has none at all."""
    from classifiers.registry import NAME_RULE, is_model_name
    from classifiers.versions import ModelVersions, names

    if not is_model_name(name):
        raise ConfigError(f"{name!r} is not a model name ({NAME_RULE})")
    versions = ModelVersions(root, name)
    if versions.current() is None and not versions.candidates() and not versions.history():
        there = ", ".join(names(root)) or "none"
        raise ConfigError(f"no model {name!r} in {root} (models there: {there})")
    return versions


def cmd_models_list(args: argparse.Namespace) -> int:
    from classifiers.versions import names

    root = _existing_models_root(args)
    listed = [args.name] if args.name else names(root)
    if not listed:
        print(f"no models in {root} (replyguard train TASK --data FILE --dir {root} makes one)")
    for name in listed:
        versions = _known_versions(root, name)
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
    from classifiers.persistence import load_artifact
    from eval.promotion import check_promotion, correction_examples

    versions = _known_versions(_existing_models_root(args), args.name)
    source = versions.candidate_dir(args.version)
    candidate = load_artifact(source)
    corrections = []
    if args.corrections:
        from worker.store import Store

        settings = settings_for(args)
        corrections = correction_examples(
            Store(connect_redis(settings), settings.key_prefix), args.corrections, candidate.task
        )
    now_current = versions.current()
    had_current = now_current is not None
    if now_current is not None and not args.data:
        print(
            f"models promote {args.name} needs --data HELD_OUT: the candidate is checked against the current "
            f"version ({now_current.version}) on it before it replaces it",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if had_current:
        current = load_artifact(versions.current_dir)
        check = check_promotion(
            candidate.task,
            current,
            candidate,
            _read_labelled(candidate.task, args.data),
            target_precision=args.target_precision,
            corrections=corrections,
            oos_label=candidate.manifest.out_of_scope_label,
        )
        print("\n".join(check.lines()))
        if not check.accepted:
            print(f"not promoted: {args.name} stays at {current.manifest.version}", file=sys.stderr)
            return EXIT_CONFIG
    else:
        print(f"{args.name} has no current version to check the candidate against")
    note = f"checked on {args.data}" if had_current else "the first version: nothing to check it against"
    promoted = versions.promote(candidate.manifest.version, note=note, checked=candidate.manifest)
    if had_current:
        after = f"replyguard models rollback {args.name} restores the previous one"
    else:
        after = f"the first version of {args.name}: nothing to roll back to"
    print(f"promoted {args.name} to {promoted.version}; workers load it on restart ({after})")
    return 0


def cmd_models_rollback(args: argparse.Namespace) -> int:
    restored = _known_versions(_existing_models_root(args), args.name).rollback()
    print(f"rolled {args.name} back to {restored.version}; workers load it on restart")
    return 0


def cmd_build_defaults(args: argparse.Namespace) -> int:
    from classifiers.recipes import DEFAULT_SHARED, RECIPES, build_default
    from classifiers.registry import SHIPPED_DIR

    from classifiers.contextual import build_embedding, embedding_path
    from classifiers.sentence import build_table, table_path

    shared = Path(args.shared) if args.shared else DEFAULT_SHARED
    out = Path(args.out) if args.out else SHIPPED_DIR
    if not table_path().is_file():
        started = time.perf_counter()
        print(
            f"sentence table: derived from the pinned package into {build_table()} "
            f"in {duration_text(time.perf_counter() - started)}"
        )
    if not embedding_path().is_file():  # the full network's token embeddings, for intents below the coverage floor
        print(f"full-network embedding table: written from the pinned package into {build_embedding()}")
    names = args.only.split(",") if args.only else list(RECIPES)
    for name in names:
        if name not in RECIPES:
            print(f"unknown model {name!r}; known: {', '.join(RECIPES)}", file=sys.stderr)
            return EXIT_CONFIG
        result = build_default(name, shared, out)
        m = result.metrics
        print(
            f"{name}: {result.manifest.ref if result.manifest else ''} trained in {duration_text(result.train_seconds)}; "
            f"test accuracy {m.get('accuracy', 0):.4f}, macro-F1 {m.get('macro_f1', 0):.4f}"
        )
    return 0


def _in_dir(path: Path, directory: Path) -> bool:
    return path.resolve().parent == directory.resolve()


def cmd_validate(args: argparse.Namespace) -> int:
    from worker.brands import load_brands, load_one

    settings = settings_for(args)
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

    print_json(models.event_json_schema() if args.what == "event" else policy.schema())
    return 0


def register_models(sub: argparse._SubParsersAction) -> None:
    """Add the models and configuration commands to the ``replyguard`` parser."""
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
    p.add_argument("--limit", type=at_least_one, help="replay at most this many decisions")
    p.add_argument("--reclassify", action="store_true", help="replay: re-run the policy's models on the stored text")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train", help="train a classifier artifact from labelled JSONL/CSV")
    p.add_argument("task", choices=["spam", "abuse", "intent"])
    p.add_argument("--data", required=True, help="JSONL (text, label[, split]) or CSV with a header")
    p.add_argument("--name", help="artifact name (default: TASK-<file stem>)")
    p.add_argument(
        "--out",
        help="artifact directory (default: NAME in the models directory, see --dir); a model already there is replaced "
        "(and named on stdout), a file or a directory of other files is refused",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace a file or non-model directory at --out, or (--candidate) a candidate of the same version",
    )
    p.add_argument("--oos-label", help="the out-of-scope label (intent)")
    p.add_argument("--version", help="version string (default: a hash of the training data and config)")
    p.add_argument("--config", help="JSON file overriding model hyperparameters")
    p.add_argument(
        "--candidate", action="store_true", help="write a candidate version (promote it with replyguard models promote)"
    )
    p.add_argument("--corrections", metavar="BRAND", help="add BRAND's reviewed corrections to the training rows")
    p.add_argument(
        "--dir",
        help="models directory (default: the first REPLYGUARD_MODELS_DIRS entry; one of them, or --out, is needed: "
        "the shipped classifiers/artifacts are read-only)",
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
    q.add_argument(
        "--data",
        help="held-out labelled data (val rows choose thresholds, test rows judge); needed when there is a current "
        "version to check the candidate against",
    )
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


if __name__ == "__main__":
    sys.exit(main())
