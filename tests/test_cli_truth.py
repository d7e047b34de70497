"""The command line and the Python API tell the truth (issue 7, part 4): each point as a new user meets it."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

import worker
from tests.conftest import make_event
from tests.test_cli import CLI, cli, env, running_worker  # noqa: F401 - fixtures
from worker.exceptions import WaitTimeout
from worker.ingest import ingest_events, wait_for
from worker.settings import REPO_ROOT, Settings
from worker.store import Store


def _file(tmp_path: Path, events: list, name: str = "events.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events), encoding="utf-8")
    return path


def _no_traceback(result: subprocess.CompletedProcess) -> str:
    stderr = result.stderr.decode() if isinstance(result.stderr, bytes) else result.stderr
    assert "Traceback" not in stderr, stderr
    return stderr


# -- exit codes -------------------------------------------------------------------------------


def test_a_missing_input_file_is_an_input_error(env, tmp_path):  # noqa: F811
    result = cli("ingest", str(tmp_path / "nope.jsonl"), env=env)
    assert result.returncode == 1
    assert "nope.jsonl" in _no_traceback(result)


def test_an_unreadable_input_file_is_an_input_error(env, tmp_path):  # noqa: F811
    result = cli("ingest", str(tmp_path), env=env)  # a directory
    assert result.returncode == 1
    assert str(tmp_path) in _no_traceback(result)


def test_deeply_nested_input_is_rejected_without_a_traceback(env, tmp_path):  # noqa: F811
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n" + '{"a":' * 50_000 + "1" + "}" * 50_000 + "\n")
    result = cli("ingest", str(path), env=env)
    assert result.returncode == 1
    stderr = _no_traceback(result)
    assert f"{path}:1" in stderr and f"{path}:2" in stderr


def test_a_bad_setting_is_exit_code_2(env, tmp_path):  # noqa: F811
    result = cli("ingest", str(_file(tmp_path, [make_event()])), env={**env, "REPLYGUARD_BATCH_SIZE": "many"})
    assert result.returncode == 2
    assert "REPLYGUARD_BATCH_SIZE" in _no_traceback(result)


def test_redis_unreachable_is_exit_code_3(env, tmp_path):  # noqa: F811
    result = cli("show", "x", env={**env, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 3
    _no_traceback(result)


# -- --json prints only JSON --------------------------------------------------------------------


def test_ingest_json_prints_only_json(env, running_worker, tmp_path):  # noqa: F811
    path = _file(tmp_path, [make_event(id="j1"), "{broken"])
    result = cli("ingest", str(path), "--wait", "--json", env=env)
    assert result.returncode == 1  # one line rejected
    summary = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert summary["enqueued"] == 1 and summary["invalid"] == 1 and summary["decided"] == 1
    assert [e["source"] for e in summary["invalid_events"]] == [f"{path}:2"]
    assert "not valid JSON" in summary["invalid_events"][0]["reason"] and summary["rejected"] == 0
    assert "enqueued" in result.stderr.decode()  # the progress line went to stderr
    plain = cli("ingest", str(_file(tmp_path, [make_event(id="j2")], "two.jsonl")), "--json", env=env)
    assert plain.returncode == 0 and json.loads(plain.stdout)["enqueued"] == 1


def test_every_json_option_prints_only_json_on_stdout(client, redis_url, monkeypatch, capsys, tmp_path):
    """Every command the parser gives a --json (found by walking it, so a new one is covered too) prints one
    JSON document on stdout and nothing else, here on an empty database, run in-process through main()."""
    import argparse

    from worker.cli import build_parser, main

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("REPLYGUARD_HOME", str(tmp_path / "home"))
    empty = _file(tmp_path, [])
    positional = {
        ("ingest",): [str(empty)],
        ("show",): ["no-such-id"],
        ("forget",): ["--brand", "demo-shop", "--author", "nobody"],
    }
    commands: list[tuple[str, ...]] = []

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*path, name))
            elif "--json" in action.option_strings:
                commands.append(path)

    walk(build_parser(), ())
    assert {("ingest",), ("show",), ("review", "list"), ("rejected",), ("stats",)} <= set(commands), commands
    for command in commands:
        code = main([*command, *positional.get(command, []), "--json"])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        assert code in (0, 1), (command, code, err)
        assert isinstance(json.loads(out), (dict, list)), (command, out)


def test_show_json_of_an_unknown_id_prints_a_json_error(env):  # noqa: F811
    result = cli("show", "nope", "--json", env=env)
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"error": "no decision for message 'nope'", "message_id": "nope"}


def test_no_traceback_when_stdout_is_a_closed_pipe(env):  # noqa: F811
    proc = subprocess.Popen([*CLI, "schema", "policy"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # like `replyguard schema policy | head -0`
    _, stderr = proc.communicate(timeout=60)
    assert b"Traceback" not in stderr and b"BrokenPipe" not in stderr, stderr
    assert proc.returncode == 0


# -- ingest --wait: no worker, unknown brands, rejected events --------------------------------------


def test_ingest_wait_says_within_seconds_that_no_worker_consumes_the_queue(env, tmp_path):  # noqa: F811
    started = time.monotonic()
    result = cli(
        "ingest", str(_file(tmp_path, [make_event(id="w1")])), "--wait", "--timeout", "600", env=env, timeout=60
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    stderr = _no_traceback(result)
    assert "no worker is consuming queue 'replyguard'" in stderr and "replyguard worker" in stderr


def test_events_for_a_brand_with_no_policy_are_reported_counted_and_listed(
    env,
    running_worker,
    tmp_path,  # noqa: F811
    client,
    settings,
):
    path = _file(tmp_path, [make_event(id="b1"), make_event(id="b2", brand="nobody")])
    result = cli("ingest", str(path), "--wait", "--json", env=env)
    assert result.returncode == 1
    stderr = _no_traceback(result)
    assert f"{path}:2" in stderr and "no policy for brand 'nobody'" in stderr
    summary = json.loads(result.stdout)
    assert summary["decided"] == 1 and summary["invalid"] == 1
    # the worker's own check (an ingest that could not see the policies, e.g. the Python API)
    report = ingest_events([make_event(id="b3", brand="elsewhere")], client, settings, batch_wait=0.01)
    waited = wait_for(report, client, settings, timeout=60)
    assert waited.rejected and waited.summary()["rejected"] == 1 and waited.missing == []
    listed = cli("rejected", "--json", env=env)
    assert listed.returncode == 0
    rows = json.loads(listed.stdout)
    assert rows[0]["message_id"] == "b3" and "no policy for brand 'elsewhere'" in rows[0]["reason"]
    human = cli("rejected", env=env).stdout.decode()
    assert "b3" in human and "no policy for brand 'elsewhere'" in human


# -- Python API ------------------------------------------------------------------------------------


def test_settings_read_the_environment_like_the_cli(monkeypatch, tmp_path):
    monkeypatch.setenv("REDIS_URL", "redis://example.invalid:6379/3")
    monkeypatch.setenv("REPLYGUARD_QUEUE", "q-from-env")
    assert Settings().redis_url == "redis://example.invalid:6379/3"
    assert Settings() == Settings.from_env()
    assert Settings(queue="explicit").queue == "explicit" and Settings(queue="explicit").redis_url.endswith("/3")
    monkeypatch.setenv("REPLYGUARD_BATCH_SIZE", "lots")
    with pytest.raises(worker.ConfigError, match="REPLYGUARD_BATCH_SIZE"):
        Settings()


def test_ingest_events_and_wait_for_take_their_arguments_in_the_same_order():
    first = [list(inspect.signature(f).parameters)[:3] for f in (ingest_events, wait_for)]
    assert first == [["events", "connection", "settings"], ["report", "connection", "settings"]]


def test_wait_for_raises_on_timeout(client, settings):
    report = ingest_events([make_event(id="t1")], client, settings, batch_wait=0.01)
    with pytest.raises(WaitTimeout) as info:
        wait_for(report, client, settings, timeout=0.3, no_worker_seconds=None)
    assert info.value.result.missing == [("demo-shop", "t1")]
    with pytest.raises(TypeError, match="wait_for"):
        wait_for(client, settings, report)  # the old argument order is refused clearly


def test_store_uses_the_configured_key_prefix(client, monkeypatch):
    monkeypatch.setenv("REPLYGUARD_KEY_PREFIX", "zz")
    assert Store(client).keys.review == "zz:review"
    assert Store(client, "explicit").keys.review == "explicit:review"


def test_the_public_api_is_pinned():
    assert worker.__all__ == [
        "ArtifactError",
        "ConfigError",
        "DatasetError",
        "Decision",
        "EmbeddedRedis",
        "InboundEvent",
        "IngestReport",
        "Ingestor",
        "InvalidEvent",
        "NoWorker",
        "PolicyError",
        "RenderError",
        "ReplyguardError",
        "Settings",
        "Store",
        "StoreError",
        "TemplateError",
        "WaitTimeout",
        "connect",
        "ingest_events",
        "parse_event",
        "wait_for",
    ]
    for name in worker.__all__:
        assert getattr(worker, name) is not None


# -- review ----------------------------------------------------------------------------------------


def test_review_resolve_checks_labels_against_the_brands_models(env, running_worker, tmp_path):  # noqa: F811
    path = _file(tmp_path, [make_event(id="r1", author={"id": "v", "tags": ["vip"]}, text="hello")])
    assert cli("ingest", str(path), "--wait", env=env).returncode == 0
    bad = cli("review", "resolve", "r1", "--intent", "weather", env=env)
    assert bad.returncode == 1
    stderr = _no_traceback(bad)
    assert "'weather' is not an intent of demo-shop" in stderr and "order_status" in stderr
    good = cli("review", "resolve", "r1", "--intent", "greeting", "--spam", "no", env=env)
    assert good.returncode == 0, good.stderr


def test_review_resolve_without_a_verdict_is_a_usage_error_that_names_the_fields(env, running_worker, tmp_path):  # noqa: F811
    path = _file(tmp_path, [make_event(id="r2", author={"id": "v", "tags": ["vip"]}, text="hello")])
    assert cli("ingest", str(path), "--wait", env=env).returncode == 0
    empty = cli("review", "resolve", "r2", env=env)
    stderr = _no_traceback(empty)
    assert empty.returncode == 2, empty.stdout.decode() + stderr
    assert "nothing to record" in stderr and all(
        f in stderr for f in ("--intent", "--spam yes|no", "--abuse hate|offensive|neither", "--note")
    )
    queue = json.loads(cli("review", "list", "--json", env=env).stdout)
    assert [i["message_id"] for i in queue["items"]] == ["r2"]  # still waiting for a reviewer
    noted = cli("review", "resolve", "r2", "--note", "a customer we know", env=env)
    assert noted.returncode == 0 and "note='a customer we know'" in noted.stdout.decode()


def test_review_list_pages_and_says_how_many_remain(env, running_worker, tmp_path):  # noqa: F811
    vips = [
        make_event(id=f"p{i}", conversation_id=f"cp{i}", author={"id": f"v{i}", "tags": ["vip"]}, text="hi")
        for i in range(5)
    ]
    assert cli("ingest", str(_file(tmp_path, vips)), "--wait", env=env).returncode == 0
    first = cli("review", "list", "--limit", "2", env=env).stdout.decode()
    assert "showing 1–2 of 5" in first and "3 more: replyguard review list --offset 2" in first
    page = json.loads(cli("review", "list", "--limit", "2", "--offset", "4", "--json", env=env).stdout)
    assert page["total"] == 5 and page["offset"] == 4 and page["remaining"] == 0 and len(page["items"]) == 1
    ids = [
        i["message_id"]
        for o in (0, 2, 4)
        for i in json.loads(cli("review", "list", "--limit", "2", "--offset", str(o), "--json", env=env).stdout)[
            "items"
        ]
    ]
    assert sorted(ids) == [f"p{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["review", "list", "--limit", "-1"], "--limit: must be a whole number of at least 1, got '-1'"),
        (["review", "list", "--limit", "0"], "--limit: must be a whole number of at least 1, got '0'"),
        (["review", "list", "--offset", "-2"], "--offset: must be a whole number of at least 0, got '-2'"),
        (["rejected", "--limit", "-5"], "--limit: must be a whole number of at least 1, got '-5'"),
    ],
)
def test_a_negative_or_zero_page_size_is_a_usage_error_before_redis_is_touched(args, expected, tmp_path):
    # Redis is unreachable here: a check that ran after connecting would exit 3, not 2
    unreachable = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/5", "REPLYGUARD_HOME": str(tmp_path)}
    result = cli(*args, env=unreachable)
    stderr = _no_traceback(result)
    assert result.returncode == 2, stderr
    assert expected in stderr and "Redis" not in stderr


# -- make, README ---------------------------------------------------------------------------------


def _recipe(target: str) -> str:
    text = (REPO_ROOT / "Makefile").read_text()
    match = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, flags=re.M)
    assert match, target
    return match.group(1)


def test_make_bench_runs_scripts_that_exist():
    scripts = re.findall(r"(bench/\S+\.py)", _recipe("bench"))
    assert scripts and all((REPO_ROOT / s).exists() for s in scripts)
    for script in scripts:  # bench/run.py runs the others
        called = re.findall(r'"bench" / "(\w+\.py)"', (REPO_ROOT / script).read_text())
        assert all((REPO_ROOT / "bench" / c).exists() for c in called)


@pytest.mark.slow
def test_the_throughput_benchmark_runs(tmp_path, redis_url, client):
    import os

    result = subprocess.run(
        [
            CLI[0],
            str(REPO_ROOT / "bench" / "throughput.py"),
            "--messages",
            "40",
            "--workers",
            "1",
            "--skip-before",
            "--paced-seconds",
            "0.1",
            "--results",
            str(tmp_path),
        ],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    assert "messages/s" in result.stdout and (tmp_path / "throughput.json").exists()


def test_make_clean_stops_the_embedded_redis():
    assert "redis stop" in _recipe("clean")


def test_model_versions_derive_from_data_and_config_hashes():
    from classifiers.build import ModelConfig, model_version
    from classifiers.persistence import load_artifact
    from classifiers.registry import SHIPPED_DIR

    for directory in sorted(p for p in SHIPPED_DIR.iterdir() if (p / "manifest.json").exists()):
        manifest = load_artifact(directory).manifest
        config = ModelConfig.from_dict(manifest.config)
        assert manifest.version == model_version(config, manifest.training), directory.name
    readme = (REPO_ROOT / "README.md").read_text()
    assert "deterministically" not in readme


def test_readme_tells_how_to_run_replyguard_and_rq():
    readme = (REPO_ROOT / "README.md").read_text()
    assert ".venv/bin/replyguard" in readme and "source .venv/bin/activate" in readme
    assert "--serializer rq.serializers.JSONSerializer" in readme
