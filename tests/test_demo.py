"""`replyguard demo` as a user runs it: every decision in the sample must match its expectation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_decides_its_sample_as_expected(redis_url: str, client, tmp_path: Path) -> None:
    env = {**os.environ, "REDIS_URL": redis_url, "REPLYGUARD_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-m", "worker.cli", "demo", "--check"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    total = sum(1 for line in lines if line[:4].strip().isdigit())
    assert total >= 40
    assert f"{total}/{total} messages decided" in result.stdout
    assert f"{total}/{total} match the sample's expected outcome" in result.stdout
    assert "✗" not in result.stdout


def test_demo_runs_with_only_the_embedded_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["REPLYGUARD_HOME"] = str(tmp_path / "h")
    try:
        result = subprocess.run([sys.executable, "-m", "worker.cli", "demo"], env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "embedded redis-server" in result.stdout
        # the decisions stay inspectable from another process afterwards
        shown = subprocess.run([sys.executable, "-m", "worker.cli", "review", "list"], env=env,
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0 and "vip" in shown.stdout
    finally:
        subprocess.run([sys.executable, "-m", "worker.cli", "redis", "stop"], env=env, capture_output=True, timeout=60)
