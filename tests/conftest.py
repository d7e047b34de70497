"""Shared fixtures. Redis is always real: REDIS_URL when set, else an embedded redis-server.

The test database is flushed before each test that uses Redis, so point
REDIS_URL at a scratch database (CI uses redis://127.0.0.1:6379/15).

Parallel runs (pytest-xdist, ``-n N``): xdist worker ``gwK`` uses database *base + K*, where *base*
is REDIS_URL's database, so ``REDIS_URL=redis://127.0.0.1:6379/1 pytest -n 2`` FLUSHES databases 1
and 2. ``pytest_configure`` below rewrites REDIS_URL in each worker's environment to its own
database (so subprocesses and ``Settings()`` see it too) and stops with a clear message when
*base + N - 1* is past the server's last database (16 databases, 0-15, by default). Without
REDIS_URL each worker starts its own embedded redis-server under its own temporary directory.
Nothing else is shared between workers: ports are the kernel's free ones, files go to ``tmp_path``.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis

from worker.brands import Brand, load_brands
from worker.connection import EmbeddedRedis
from worker.settings import REPO_ROOT, Settings

if TYPE_CHECKING:
    from tests.serve_process import ServeProcess

SHARED = Path(os.environ.get("REPLYGUARD_SHARED", REPO_ROOT.parent / "shared" / "datasets"))


def worker_redis_url(url: str, worker: str, workers: int) -> str:
    """REDIS_URL for xdist worker ``worker`` (``gw0``, ``gw1``, ...): the same server, database
    REDIS_URL's database + the worker's index. Raises UsageError when that database does not exist."""
    index = int(worker.removeprefix("gw"))
    base = int(redis.ConnectionPool.from_url(url).connection_kwargs.get("db") or 0)
    last = base + workers - 1
    try:
        databases = int(redis.Redis.from_url(url, socket_connect_timeout=5).config_get("databases")["databases"])
    except (redis.RedisError, KeyError, ValueError):  # CONFIG may be disabled: Redis's default
        databases = 16
    if last >= databases:
        raise pytest.UsageError(
            f"{workers} xdist workers on REDIS_URL {url} would use databases {base}-{last}, but the server "
            f"has {databases} (0-{databases - 1}): set REDIS_URL to database {databases - workers} or lower"
        )
    db = base + index
    if url.startswith("unix://"):  # the database is a query parameter
        rest = re.sub(r"([?&])db=\d+&?", r"\1", url).rstrip("?&")
        return f"{rest}{'&' if '?' in rest else '?'}db={db}"
    match = re.match(r"^(rediss?://[^/?#]*)(/\d*)?(.*)$", url)
    if match is None:
        raise pytest.UsageError(f"REDIS_URL {url} is not a redis://, rediss:// or unix:// URL")
    return f"{match.group(1)}/{db}{match.group(3)}"


#: REDIS_URL as the run was started with (before an xdist worker moved it to its own database).
BASE_REDIS_URL = os.environ.get("REDIS_URL")


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    url = BASE_REDIS_URL
    if worker and url:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        os.environ["REDIS_URL"] = worker_redis_url(url, worker, workers)
    elif url and getattr(config.option, "dist", "no") != "no" and getattr(config.option, "tx", None):
        worker_redis_url(url, "gw0", len(config.option.tx))  # the controller: stop before any worker starts


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False).start()
    yield server.url
    server.stop()


def _artifact_fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in directory.iterdir() if f.is_file()))


@pytest.fixture(scope="session", autouse=True)
def models_loaded_once_per_process() -> Iterator[None]:
    """Each model artifact is read, verified and unpickled once per test process, not once per test.

    Every ``load_brands`` builds a new ``ModelRegistry``, so without this each test that loads the
    brands loaded the three shipped models again (~0.3 s of CPU), and built their shared text pass
    again (``worker.pipeline`` keeps one per set of loaded models). The cache key holds the directory,
    the task asked for, and every file's size and modification time: a test that copies, edits or
    corrupts an artifact gets it loaded and verified again, and a failed load is never cached.
    ``load_artifact`` itself (``tests/test_artifacts.py``) is not cached."""
    import classifiers.registry

    load = classifiers.registry.load_artifact
    loaded: dict[tuple[Any, ...], Any] = {}

    def load_once(directory: Path, expected_task: str | None = None) -> Any:
        directory = Path(directory)
        key = (directory.resolve(), expected_task, _artifact_fingerprint(directory))
        if key not in loaded:
            loaded[key] = load(directory, expected_task=expected_task)
        return loaded[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(classifiers.registry, "load_artifact", load_once)
        yield


@pytest.fixture()
def client(redis_url: str) -> redis.Redis:
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    return connection


@pytest.fixture()
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(redis_url=redis_url, home=tmp_path / "home")


@pytest.fixture(scope="session")
def brands() -> dict[str, Brand]:
    return load_brands(Settings(redis_url="redis://unused"))


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "clinc150.jsonl").exists():
        pytest.skip(f"needs the shared datasets at {SHARED} (absent in a user's clone; CI has them)")
    return SHARED


BASE_EVENT: dict[str, Any] = {
    "id": "m-1",
    "brand": "demo-shop",
    "platform": "instagram",
    "kind": "dm",
    "conversation_id": "c-1",
    "author": {"id": "u-1", "name": "Aiko Tanaka", "locale": "en-US", "tags": []},
    "text": "where is my order KM-204815?",
    "created_at": "2026-11-24T10:00:00+09:00",  # Tuesday, inside business hours
    "metadata": {},
}


def make_event(**changes: Any) -> dict[str, Any]:
    """A valid demo-shop event with ``changes`` applied (``author`` is merged)."""
    event = copy.deepcopy(BASE_EVENT)
    author = changes.pop("author", None)
    event.update(changes)
    if author:
        event["author"].update(author)
    if event["kind"] == "comment" and "post_id" not in event:
        event["post_id"] = "post-1"
    return event


@pytest.fixture()
def serve(client: redis.Redis, redis_url: str) -> Iterator["ServeProcess"]:
    """``replyguard serve`` as a real process on a free loopback port, ready (``/readyz`` is 200).

    For other environment variables or arguments use ``tests.serve_process.ServeProcess`` directly.
    """
    from tests.serve_process import ServeProcess

    with ServeProcess(redis_url) as process:
        yield process


#: Tests that take more than a few seconds on an idle 2-core machine: real worker or service processes,
#: the demo, training, benchmarks, long property searches, command-line runs in a subprocess. `make test-fast`
#: (pytest -m "not slow") skips them; CI's `make test` runs them. Measured with
#: `pytest -m "not slow" --durations=50`; README ("Development") says how to keep the inner loop under a minute.
SLOW_TESTS = {
    "tests/test_eval_acceptance.py::test_a_teams_negative_label_is_not_an_action_label",
    "tests/test_eval_acceptance.py::test_training_with_corrections_keeps_the_files_test_rows_and_gets_a_version_of_its_own",
    "tests/test_artifacts.py::test_worker_start_fails_on_a_corrupt_shipped_model",
    "tests/test_cli.py::test_redis_going_away_mid_ingest_loses_nothing",
    "tests/test_cli.py::test_redis_going_away_while_submitting_reports_what_was_not_enqueued",
    "tests/test_cli.py::test_train_command_writes_a_verified_artifact",
    "tests/test_cli.py::test_validate_command",
    "tests/test_cli_truth.py::test_ingest_wait_says_within_seconds_that_no_worker_consumes_the_queue",
    "tests/test_connectors.py::test_chatwoot_webhook_through_serve_is_verified_stored_decided_and_answered_once",
    "tests/test_delivery.py::test_deliverer_killed_mid_send_loses_nothing_and_sends_nothing_twice",
    "tests/test_eval_tool.py::test_eval_of_an_artifact_as_is",
    "tests/test_eval_tool.py::test_eval_report_page_shows_the_notes_the_text_report_prints",
    "tests/test_fast_path.py::test_fast_path_decides_the_demo_traffic_as_the_plain_path",
    "tests/test_fast_path.py::test_fast_path_decides_a_shared_dataset_sample_as_the_plain_path",
    "tests/test_eval_tool.py::test_eval_on_a_shared_dataset",
    "tests/test_eval_tool.py::test_eval_rejects_a_model_for_another_task",
    "tests/test_eval_tool.py::test_eval_writes_reports_and_a_proposal_without_touching_policies",
    "tests/test_eval_tool.py::test_replay_shows_what_a_changed_policy_would_do",
    "tests/test_fuzz.py::test_alias_bombs_and_deep_yaml_are_named",
    "tests/test_fuzz.py::test_any_text_is_accepted_or_named",
    "tests/test_fuzz.py::test_any_value_in_any_field_is_an_event_or_named_error",
    "tests/test_fuzz.py::test_any_yaml_value_in_a_policy_field_is_named",
    "tests/test_fuzz.py::test_mutated_policy_and_template_files_load_or_name_the_problem",
    "tests/test_guardrails_adversarial.py::test_no_attack_gets_through_and_every_good_rewrite_is_kept",
    "tests/test_kpi.py::test_kpi_and_sla_sweep_commands",
    "tests/test_llm.py::test_accounting_in_stats_and_prometheus",
    "tests/test_policy.py::test_worker_refuses_to_start_with_a_broken_policy",
    "tests/test_review_accounts.py::test_users_add_reads_the_password_from_stdin_and_stores_only_an_argon2_hash",
    "tests/test_review_accounts.py::test_redis_gone_answers_503_without_a_traceback",
    "tests/test_serve.py::test_readyz_is_503_when_redis_is_unreachable",
    "tests/test_serve.py::test_a_broken_policy_stops_serve_with_exit_code_2",
    "tests/test_serve.py::test_a_webhook_while_redis_is_gone_gets_503_so_meta_retries_it",
    "tests/test_sla_timers.py::test_real_workers_reroute_an_unanswered_vip_by_themselves_across_a_restart",
    "tests/test_sla_timers.py::test_scheduled_step_fires_without_new_messages",
    "tests/test_sla_timers.py::test_the_recovery_sweep_takes_due_steps_whose_scheduled_job_was_lost",
    "tests/test_sla_timers.py::test_two_sweepers_racing_record_each_breach_once",
    "tests/test_worker_e2e.py::test_batch_decided_by_a_forking_rq_worker",
    "tests/test_worker_e2e.py::test_two_workers_deciding_the_same_batch_at_once_write_one_decision",
    # waits out a park timeout / a key's TTL, or runs the whole pipeline and the CLI in subprocesses
    "tests/test_conversation_order.py::test_a_message_whose_predecessor_never_comes_is_parked_then_released",
    "tests/test_conversation_order.py::test_a_predecessor_decided_meanwhile_wakes_its_parked_successor",
    "tests/test_retention.py::test_decisions_expire_with_the_brand_window",
    "tests/test_forget.py::test_forget_removes_a_person_everywhere_and_logs_never_held_them",
    "tests/test_forget.py::test_forget_refuses_bad_input_with_the_documented_codes",
    "tests/test_versions_lock.py::test_a_model_with_only_earlier_versions_is_listed_and_can_be_rolled_back",
    "tests/test_versions_lock.py::test_two_trainings_of_the_same_candidate_at_once_leave_one_winner_and_a_clear_loser",
    "tests/test_versions_lock.py::test_a_candidate_being_trained_is_not_trained_again_meanwhile",
    "tests/test_versions_lock.py::test_replacing_a_model_directory_never_leaves_its_name_empty",
    "tests/test_versions_lock.py::test_promotion_and_rollback_never_leave_the_current_version_absent",
}

#: Whole modules of such tests.
SLOW_MODULES = {
    "tests/test_crash_recovery.py",  # kills worker processes and their work horses
    "tests/test_default_models.py",  # rebuilds the shipped models
    "tests/test_eval_any_data.py",  # trains models on generated data
    "tests/test_model_versions.py",  # trains candidates, command-line runs
    "tests/test_redis_outage.py",  # stops and restarts Redis under running workers
    "tests/test_shared_pass.py",  # the shared datasets through the shipped models
    "tests/test_webhooks_meta.py",  # replyguard serve and workers as real processes
    "tests/test_fuzz_http.py",  # replyguard serve as a real process, property searches
}

#: Tests using one of these fixtures are slow too: a real worker or service process, a browser.
SLOW_FIXTURES = {"running_worker", "serve", "browser", "page", "review_env"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        nodeid = item.nodeid.split("[")[0]
        if (
            nodeid in SLOW_TESTS
            or nodeid.split("::")[0] in SLOW_MODULES
            or SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
        ):
            item.add_marker(pytest.mark.slow)
