"""Promotion and rollback of one model run one after the other (classifiers.versions' lock), and
`models promote` asks for held-out data only when there is a version to check against."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

from classifiers.versions import ModelVersions

SHIPPED = Path(__file__).resolve().parent.parent / "classifiers" / "artifacts" / "spam-default" / "manifest.json"


def _candidate(root: Path, version: str) -> None:
    """A candidate directory with a valid manifest (the shipped one, renamed): enough for versions.py."""
    manifest = json.loads(SHIPPED.read_text(encoding="utf-8"))
    manifest.update(name="spam-mine", version=version)
    directory = root / ".candidates" / "spam-mine" / version
    directory.mkdir(parents=True)
    (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_a_promotion_waits_for_another_change_of_the_same_model(tmp_path: Path) -> None:
    for version in ("v1", "v2"):
        _candidate(tmp_path, version)
    versions = ModelVersions(tmp_path, "spam-mine")
    versions.promote("v1")
    done = threading.Event()

    def promote_v2() -> None:
        ModelVersions(tmp_path, "spam-mine").promote("v2")
        done.set()

    with versions.changing():  # another operator's promotion or rollback in progress
        worker = threading.Thread(target=promote_v2)
        worker.start()
        time.sleep(0.3)
        assert not done.is_set() and versions.current().version == "v1"  # type: ignore[union-attr]
    worker.join(10)
    assert done.is_set() and versions.current().version == "v2"  # type: ignore[union-attr]
    log = versions.log()
    assert log["stack"] == ["v1"] and [e["version"] for e in log["events"]] == ["v1", "v2"]
    assert sorted(p.name for p in versions.history_dir.iterdir()) == ["v1", "versions.json"]  # no temporary left


def test_concurrent_promotions_keep_every_log_entry_and_version(tmp_path: Path) -> None:
    versions = [f"v{i}" for i in range(8)]
    for version in versions:
        _candidate(tmp_path, version)
    errors: list[BaseException] = []

    def promote(version: str) -> None:
        try:
            ModelVersions(tmp_path, "spam-mine").promote(version)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    model = ModelVersions(tmp_path, "spam-mine")
    log = model.log()
    assert sorted(e["version"] for e in log["events"]) == versions  # none lost to a concurrent rewrite
    assert len(log["stack"]) == 7 and model.current() is not None
    assert sorted([*log["stack"], model.current().version]) == versions  # type: ignore[union-attr]


def test_promote_needs_held_out_data_only_when_there_is_a_current_version(tmp_path: Path) -> None:
    """The first version is promoted without --data (nothing to check it against); a later one needs it."""
    import subprocess
    import sys

    shipped = SHIPPED.parent
    version = json.loads(SHIPPED.read_text(encoding="utf-8"))["version"]
    candidate = tmp_path / ".candidates" / "spam-default" / version
    shutil.copytree(shipped, candidate)
    env = {**os.environ, "REPLYGUARD_HOME": str(tmp_path / "home")}

    def promote() -> subprocess.CompletedProcess[str]:
        cli = [sys.executable, "-m", "worker.cli", "models", "promote", "spam-default", "--dir", str(tmp_path)]
        return subprocess.run(cli, capture_output=True, text=True, timeout=120, env=env)

    first = promote()
    assert first.returncode == 0, first.stderr
    assert (
        "no current version to check the candidate against" in first.stdout
        and (tmp_path / "spam-default" / "manifest.json").is_file()
    )
    shutil.copytree(shipped, candidate)  # a second candidate: now there is a current version
    second = promote()
    assert second.returncode == 2 and "needs --data HELD_OUT" in second.stderr and version in second.stderr
    assert "Traceback" not in second.stderr
    assert (candidate / "manifest.json").is_file()  # nothing changed: the candidate is still a candidate
    assert ModelVersions(tmp_path, "spam-default").log()["stack"] == []
