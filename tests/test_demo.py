"""`replyguard demo` as a user runs it: every decision in the sample must match its expectation."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rq import Queue, Worker
from rq.registry import FinishedJobRegistry


@pytest.mark.slow
def test_demo_decides_its_sample_as_expected(redis_url: str, client, tmp_path: Path) -> None:
    env = {**os.environ, "REDIS_URL": redis_url, "REPLYGUARD_HOME": str(tmp_path / "home")}
    # a worker already running on the usual queue (another policy) must not take the demo's batches
    rogue = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        result = subprocess.run(
            [sys.executable, "-m", "worker.cli", "demo", "--check"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        rogue.send_signal(signal.SIGTERM)
        rogue.wait(timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert FinishedJobRegistry("replyguard", connection=client).count == 0  # the rogue worker got nothing
    assert Queue("replyguard", connection=client).count == 0
    assert client.exists("rg-demo:stats:demo-shop") and not client.exists("rg:stats:demo-shop")
    assert Worker.all(connection=client) == []  # the demo stopped the workers it started
    lines = result.stdout.splitlines()
    total = sum(1 for line in lines if line[:4].strip().isdigit())
    assert total >= 40
    assert f"{total}/{total} messages decided" in result.stdout
    assert f"{total}/{total} match the sample's expected outcome" in result.stdout
    assert "✗" not in result.stdout


@pytest.mark.slow
def test_demo_runs_with_only_the_embedded_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["REPLYGUARD_HOME"] = str(tmp_path / "h")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "worker.cli", "demo"], env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "embedded redis-server" in result.stdout
        # the decisions stay inspectable from another process afterwards, with the command the demo prints
        look = re.search(r"^  (REPLYGUARD_KEY_PREFIX=\S+ .+) review list$", result.stdout, flags=re.M)
        assert look, result.stdout
        shown = subprocess.run(
            look.group(1) + " review list", shell=True, env=env, capture_output=True, text=True, timeout=60
        )
        assert shown.returncode == 0 and "vip" in shown.stdout, shown.stderr
        # ... and the embedded server stops with exactly the command it prints
        stop = re.search(r"stop it with: (.+)\)$", result.stdout, flags=re.M)
        assert stop, result.stdout
        stopped = subprocess.run(
            stop.group(1),
            shell=True,
            env={k: v for k, v in env.items() if k != "REPLYGUARD_HOME"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
        status = subprocess.run(
            [sys.executable, "-m", "worker.cli", "redis", "status"], env=env, capture_output=True, text=True, timeout=60
        )
        assert "stopped" in status.stdout
    finally:
        subprocess.run([sys.executable, "-m", "worker.cli", "redis", "stop"], env=env, capture_output=True, timeout=60)
