"""Promotion and rollback of one model run one after the other (classifiers.versions' lock), and
`models promote` asks for held-out data only when there is a version to check against."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from classifiers.errors import ConfigError
from classifiers.persistence import read_manifest
from classifiers.versions import ModelVersions, names

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


CLI = [sys.executable, "-m", "worker.cli"]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=env)


def test_a_model_with_only_earlier_versions_is_listed_and_can_be_rolled_back(tmp_path: Path) -> None:
    """After its current directory is removed (by hand, by a cleanup script) a model has only earlier versions:
    `models list` still shows it and what rollback restores, and rollback brings it back."""
    for version in ("v1", "v2"):
        _candidate(tmp_path, version)
    versions = ModelVersions(tmp_path, "spam-mine")
    versions.promote("v1")
    versions.promote("v2")
    shutil.rmtree(tmp_path / "spam-mine")
    (tmp_path / ".candidates" / "spam-mine").rmdir()  # the empty directories cleaned up too (find -empty -delete)
    assert names(tmp_path) == ["spam-mine"]

    listed = _cli("models", "list", "--dir", str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    assert "no models in" not in listed.stdout, listed.stdout
    lines = [line.split() for line in listed.stdout.splitlines()]
    assert ["current", "-"] in lines and ["earlier", "v1"] == lines[-1][:2], listed.stdout
    assert listed.stdout.rstrip().endswith("(rollback restores this)"), listed.stdout

    back = _cli("models", "rollback", "spam-mine", "--dir", str(tmp_path))
    assert back.returncode == 0 and "rolled spam-mine back to v1" in back.stdout, back.stdout + back.stderr
    assert versions.current().version == "v1"  # type: ignore[union-attr]
    assert names(tmp_path) == ["spam-mine"] and names(tmp_path / "nowhere") == []


def _spam_rows(path: Path, n: int = 5) -> Path:
    rows = []
    for k in range(n):
        rows += [
            {"text": f"check out my channel {k} and subscribe", "label": "spam"},
            {"text": f"free gift card {k}, claim today", "label": "spam"},
            {"text": f"where is my order {k}", "label": "ham"},
            {"text": f"love this video, part {k}", "label": "ham"},
        ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_two_trainings_of_the_same_candidate_at_once_leave_one_winner_and_a_clear_loser(tmp_path: Path) -> None:
    models, data = tmp_path / "models", _spam_rows(tmp_path / "base.jsonl")
    command = [*CLI, "train", "spam", "--data", str(data), "--name", "spam-mine", "--dir", str(models)]
    command += ["--candidate", "--version", "v1"]
    both = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(300), *p.communicate()) for p in both]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    (loser,) = [err for code, _, err in results if code == 2]
    assert "Traceback" not in loser and "candidate spam-mine@v1" in loser, loser
    assert "another replyguard train is writing" in loser or "already holds candidate" in loser, loser
    (winner,) = [out for code, out, _ in results if code == 0]
    assert "replaced" not in winner  # the winner wrote it once; the loser replaced nothing
    candidates = models / ".candidates" / "spam-mine"
    assert sorted(p.name for p in candidates.iterdir() if not p.name.startswith(".")) == ["v1"]


def test_a_candidate_being_trained_is_not_trained_again_meanwhile(tmp_path: Path) -> None:
    """While one `train --candidate` holds a version, a second one fails at once, naming it, and writes nothing."""
    models, data = tmp_path / "models", _spam_rows(tmp_path / "base.jsonl")
    versions = ModelVersions(models, "spam-mine")
    with versions.claiming_candidate("v1"):
        second = _cli(
            "train", "spam", "--data", str(data), "--name", "spam-mine", "--dir", str(models),
            "--candidate", "--version", "v1", "--force",
        )  # fmt: skip
    assert second.returncode == 2, second.stdout + second.stderr
    assert "another replyguard train is writing candidate spam-mine@v1" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr and "wrote" not in second.stdout
    assert versions.candidates() == []
    # a promotion or rollback of the model waits for a candidate being written, and the write for them
    with versions.changing():
        writer = subprocess.Popen(
            [*CLI, "train", "spam", "--data", str(data), "--name", "spam-mine", "--dir", str(models),
             "--candidate", "--version", "v1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            writer.wait(20)
        except subprocess.TimeoutExpired:
            pass
        assert writer.poll() is None and versions.candidates() == []  # trained, waiting to write
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    assert [m.version for m in versions.candidates()] == ["v1"]


def test_a_candidate_replaced_while_it_was_checked_is_not_promoted(tmp_path: Path) -> None:
    _candidate(tmp_path, "v1")
    versions = ModelVersions(tmp_path, "spam-mine")
    checked = read_manifest(versions.candidate_dir("v1"))
    manifest = json.loads((versions.candidate_dir("v1") / "manifest.json").read_text(encoding="utf-8"))
    manifest["model_sha256"] = "0" * 64  # train --candidate --force of the same version, meanwhile
    (versions.candidate_dir("v1") / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ConfigError, match="was replaced while it was being checked"):
        versions.promote("v1", checked=checked)
    assert versions.current() is None and [m.version for m in versions.candidates()] == ["v1"]
    assert versions.promote("v1", checked=read_manifest(versions.candidate_dir("v1"))).version == "v1"


@pytest.mark.parametrize("swap", [True, False], ids=["swapped", "no-swap-here"])
def test_replacing_a_model_directory_never_leaves_its_name_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swap: bool
) -> None:
    """`train --candidate --force` (and `train --out` over a model) replace a directory: a reader polling it sees
    the old model or the new one at every moment. Every rename is slowed down here (40 ms after each), so a gap
    between two renames, the old code's (old one aside, new one in), is seen for sure."""
    import classifiers.persistence as persistence
    from classifiers.build import DEFAULT_CONFIGS, fit

    estimator = fit(
        DEFAULT_CONFIGS["spam"],
        [f"buy cheap followers {k}" for k in range(4)] + [f"where is my order {k}" for k in range(4)],
        ["spam"] * 4 + ["ham"] * 4,
        [1.0] * 8,
    )
    target = tmp_path / ".candidates" / "spam-mine" / "v1"
    fields = {"name": "spam-mine", "task": "spam", "version": "v1", "training": [], "config": {}, "metrics": {}}
    first = persistence.save_artifact(target, estimator, fields)
    if not swap:  # a system or file system that cannot swap: two renames, as before (documented)
        monkeypatch.setattr(persistence, "exchange", lambda a, b: False)
    real_replace = os.replace

    def slow_replace(src, dst) -> None:  # type: ignore[no-untyped-def]
        real_replace(src, dst)
        time.sleep(0.04)

    monkeypatch.setattr(os, "replace", slow_replace)
    missing: list[float] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            if not (target / "manifest.json").is_file():
                missing.append(time.monotonic())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(3):
            second = persistence.save_artifact(target, estimator, fields)
    finally:
        stop.set()
        reader.join(10)
    assert read_manifest(target).created_at >= first.created_at and second.version == "v1"
    assert sorted(p.name for p in target.parent.iterdir()) == ["v1"]  # nothing left aside
    if swap:
        assert not missing, f"the candidate directory was absent {len(missing)} times"
    else:
        assert missing  # the fallback's gap is real (and why the swap is used where it exists)


def test_promotion_and_rollback_never_leave_the_current_version_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker (re)starting while a promotion or rollback runs must find a current version: the new current
    directory is swapped with the old one in one step. Every rename is slowed down (40 ms after each) so the
    old code's gap (the current one moved to the history, then the candidate moved in) is seen for sure."""
    for version in ("v1", "v2", "v3"):
        _candidate(tmp_path, version)
    versions = ModelVersions(tmp_path, "spam-mine")
    versions.promote("v1")
    real_replace = os.replace

    def slow_replace(src, dst) -> None:  # type: ignore[no-untyped-def]
        real_replace(src, dst)
        time.sleep(0.04)

    monkeypatch.setattr(os, "replace", slow_replace)
    current = tmp_path / "spam-mine" / "manifest.json"
    missing: list[float] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            if not current.is_file():
                missing.append(time.monotonic())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        versions.promote("v2")
        versions.promote("v3")
        versions.rollback()
    finally:
        stop.set()
        reader.join(10)
    assert not missing, f"the current version was absent {len(missing)} times"
    assert versions.current().version == "v2"  # type: ignore[union-attr]
    assert sorted(p.name for p in versions.history_dir.iterdir()) == ["v1", "v3", "versions.json"]
    assert versions.log()["stack"] == ["v1"] and [m.version for m in versions.candidates()] == []
