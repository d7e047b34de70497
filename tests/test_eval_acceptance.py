"""Acceptance checks of the eval tool from the command line: the ways a real team gets its arguments
wrong (a mistyped policy path, a report path that is a file, a hand-edited report) end in a short
error that names what and where, a non-zero exit and no traceback, before any model is evaluated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


CLI = [sys.executable, "-m", "worker.cli"]


def run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def labelled(path: Path) -> Path:
    rows = [{"text": f"check out my channel number {i}", "label": "spam"} for i in range(12)]
    rows += [{"text": f"thanks, the part about step {i} helped", "label": "ham"} for i in range(12)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr, result.stderr


def test_a_policy_path_that_does_not_exist_is_an_error_not_a_silently_skipped_proposal(tmp_path: Path) -> None:
    missing = tmp_path / "polcies" / "demo-shop.yaml"
    result = run(
        "eval", "--task", "spam", "--data", str(labelled(tmp_path / "d.jsonl")), "--policy", str(missing),
        "--report", str(tmp_path / "r"),
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(missing) in result.stderr
    no_traceback(result)
    assert not (tmp_path / "r").exists()  # refused before evaluating anything


@pytest.mark.parametrize("command", ["eval", "compare", "replay"])
def test_a_report_path_that_is_a_file_is_named_in_a_clear_error(tmp_path: Path, command: str) -> None:
    taken = tmp_path / "report.json"
    taken.write_text("{}", encoding="utf-8")
    args = {
        "eval": ["--task", "spam", "--data", str(labelled(tmp_path / "d.jsonl"))],
        "compare": ["--compare", str(tmp_path / "a"), str(tmp_path / "b")],
        "replay": ["--replay"],
    }[command]
    result = run("eval", *args, "--report", str(taken))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"--report {taken}" in result.stderr and "not a directory" in result.stderr
    no_traceback(result)
    assert taken.read_text(encoding="utf-8") == "{}"
