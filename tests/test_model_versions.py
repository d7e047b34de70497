"""Learning from moderators, safely: candidates, a promotion check on the same held-out data, every version kept,
rollback, and reviewed corrections as training rows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import make_event

CLI = [sys.executable, "-m", "worker.cli"]

SPAM = [
    "WIN a free iPhone now, click {}",
    "check out my channel {} and subscribe",
    "free gift card at {} claim today",
    "follow me back {} 100% sub4sub",
    "you won a prize, dm {} to collect",
    "cheap followers {} buy now",
]
HAM = [
    "where is my order {}",
    "love this video {}",
    "when do you open {}",
    "the mug arrived broken {}",
    "thanks for the quick reply {}",
    "can i return the blue one {}",
]


def rows(n: int, *, flip: bool = False) -> list[dict]:
    out = []
    for k in range(n):
        for i, template in enumerate(SPAM + HAM):
            label = "spam" if i < len(SPAM) else "ham"
            if flip and k % 2:
                label = "ham" if label == "spam" else "spam"  # half the labels wrong
            out.append({"text": template.format(f"x{k}"), "label": label})
    return out


def write(path: Path, data: list[dict], split: str | None = None) -> Path:
    path.write_text("\n".join(json.dumps({**r, **({"split": split} if split else {})}) for r in data) + "\n")
    return path


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=env)


def test_candidates_are_checked_promoted_listed_and_rolled_back(tmp_path: Path) -> None:
    models = tmp_path / "models"
    base = write(tmp_path / "base.jsonl", rows(6))
    held = tmp_path / "held.jsonl"
    held.write_text(
        "\n".join(
            json.dumps({**r, "split": ("val", "test")[k % 2]}) for k, r in enumerate(rows(12)[len(SPAM + HAM) * 8 :])
        )
        + "\n"
    )
    first = cli("train", "spam", "--data", str(base), "--name", "spam-mine", "--dir", str(models), "--version", "v1")
    assert first.returncode == 0, first.stderr
    bad = cli(
        "train",
        "spam",
        "--data",
        str(write(tmp_path / "bad.jsonl", rows(6, flip=True))),
        "--name",
        "spam-mine",
        "--dir",
        str(models),
        "--candidate",
        "--version",
        "v2-bad",
    )
    assert bad.returncode == 0 and "a candidate" in bad.stdout, bad.stderr
    refused = cli("models", "promote", "spam-mine", "--data", str(held), "--dir", str(models))
    assert (
        refused.returncode == 2
        and "refused:" in refused.stdout
        and "not promoted: spam-mine stays at v1" in refused.stderr
    )
    assert json.loads((models / "spam-mine" / "manifest.json").read_text())["version"] == "v1"

    good = cli(
        "train",
        "spam",
        "--data",
        str(write(tmp_path / "good.jsonl", rows(8))),
        "--name",
        "spam-mine",
        "--dir",
        str(models),
        "--candidate",
        "--version",
        "v3",
    )
    assert good.returncode == 0, good.stderr
    promoted = cli("models", "promote", "spam-mine", "--version", "v3", "--data", str(held), "--dir", str(models))
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert "accepted" in promoted.stdout and "promoted spam-mine to v3" in promoted.stdout
    listing = cli("models", "list", "spam-mine", "--dir", str(models)).stdout
    assert "current    v3" in listing and "candidate  v2-bad" in listing and "earlier    v1" in listing
    assert "(rollback restores this)" in listing
    back = cli("models", "rollback", "spam-mine", "--dir", str(models))
    assert back.returncode == 0 and "rolled spam-mine back to v1" in back.stdout
    listing = cli("models", "list", "spam-mine", "--dir", str(models)).stdout
    assert "current    v1" in listing and "earlier    v3" in listing  # every version is kept
    again = cli("models", "rollback", "spam-mine", "--dir", str(models))
    assert again.returncode == 2 and "no earlier version to roll back to" in again.stderr


def test_train_adds_reviewed_corrections_and_decisions_name_their_model_version(
    client, settings, brands, tmp_path, redis_url
) -> None:
    from worker.ingest import ingest_events
    from worker.jobs import install
    from worker.pipeline import Pipeline
    from worker.queues import make_worker
    from worker.store import Store

    texts = [f"totally real giveaway number {k}, dm me on telegram" for k in range(12)]
    events = [
        make_event(id=f"c{k}", conversation_id=f"k{k}", author={"id": f"a{k}"}, text=t) for k, t in enumerate(texts)
    ]
    install(Pipeline(brands), settings)
    ingest_events(events, client, settings, batch_wait=0.01)
    make_worker(client, settings, simple=True).work(burst=True)
    decision = Store(client, settings.key_prefix).decision("demo-shop", "c0")
    assert decision is not None and decision.model_versions["spam"].startswith("spam-default@")
    env = {**os.environ, "REDIS_URL": redis_url}
    decided = [k for k in range(12) if Store(client, settings.key_prefix).decision("demo-shop", f"c{k}") is not None]
    assert len(decided) >= 10, decided
    for k in decided:
        fixed = cli("review", "resolve", f"c{k}", "--brand", "demo-shop", "--spam", "yes", "--by", "qa", env=env)
        assert fixed.returncode == 0, fixed.stderr
    data = write(tmp_path / "base.jsonl", rows(6))
    result = cli(
        "train",
        "spam",
        "--data",
        str(data),
        "--name",
        "spam-mine",
        "--dir",
        str(tmp_path / "m"),
        "--corrections",
        "demo-shop",
        "--candidate",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "reviewed corrections of demo-shop to the training rows" in result.stdout
    manifest = json.loads(next((tmp_path / "m" / ".candidates" / "spam-mine").glob("*/manifest.json")).read_text())
    assert sum(manifest["training"][0]["counts"].get("train", {}).values()) > len(rows(6)) * 0.6


def test_the_promotion_table_stays_aligned_with_long_names_and_versions(tmp_path: Path) -> None:
    models, name = tmp_path / "models", "spam-our-team-youtube-comments-2026-q4-without-the-bots"
    data = write(tmp_path / "base.jsonl", rows(4))
    for version, extra in (("v1-" + "a" * 30, []), ("v2-" + "b" * 30, ["--candidate"])):
        trained = cli(
            "train", "spam", "--data", str(data), "--name", name, "--dir", str(models), "--version", version, *extra
        )
        assert trained.returncode == 0, trained.stderr
    result = cli("models", "promote", name, "--data", str(data), "--dir", str(models))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # the models are named in full, each on its own line
    assert f"{name}@v1-{'a' * 30}" in lines[0] and lines[0].startswith("current ")
    assert f"{name}@v2-{'b' * 30}" in lines[1] and lines[1].startswith("candidate ")
    header = next(i for i, line in enumerate(lines) if line.split() == ["current", "candidate"])
    table = lines[header : header + 5]
    assert [line.split("  ")[0].strip() for line in table[1:]] == [
        "precision at threshold",
        "coverage at threshold",
        "accuracy",
        "held-out rows",
    ]
    # every figure ends under its column's heading: right edges line up, and the table fits a terminal
    current_end = table[0].index("current") + len("current")
    assert {len(line) for line in table} == {len(table[0])} and len(table[0]) <= 80, table
    assert all(line[current_end - 1] != " " and line[current_end] == " " for line in table), table


@pytest.fixture
def shared_dir():
    """A directory another user may pass through (pytest's tmp_path is inside a 0700 directory)."""
    top = Path(tempfile.mkdtemp(prefix="replyguard-shared-"))
    os.chmod(top, 0o711)
    yield top
    shutil.rmtree(top)


def test_models_are_readable_by_the_user_that_serves_them(tmp_path: Path, shared_dir: Path) -> None:
    """A deploy user trains, a service user serves: every directory and file `train` writes (current and candidate)
    gets the mode the umask gives, as mkdir and open do; umask 027 keeps them to the group."""
    top = shared_dir
    data = write(tmp_path / "base.jsonl", rows(4))
    for umask, extra in ((0o022, []), (0o022, ["--candidate"]), (0o027, ["--name", "spam-team"])):
        trained = subprocess.run(
            [*CLI, "train", "spam", "--data", str(data), "--name", "spam-mine", "--dir", str(top / "models"), *extra],
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=lambda umask=umask: os.umask(umask),
        )
        assert trained.returncode == 0, trained.stderr
    made = sorted(top.rglob("*"))
    modes = {str(p.relative_to(top)): p.stat().st_mode & 0o777 for p in made}
    version = json.loads((top / "models" / "spam-mine" / "manifest.json").read_text())["version"]
    assert modes == {
        "models": 0o755,
        "models/.candidates": 0o755,
        "models/.candidates/spam-mine": 0o755,
        f"models/.candidates/spam-mine/.{version}.lock": 0o644,  # held by the train writing that candidate
        f"models/.candidates/spam-mine/{version}": 0o755,
        f"models/.candidates/spam-mine/{version}/manifest.json": 0o644,
        f"models/.candidates/spam-mine/{version}/model.skops": 0o644,
        "models/.history": 0o755,  # the models' locks, taken while a model is written (and by promote / rollback)
        "models/.history/spam-mine.lock": 0o644,
        "models/.history/spam-team.lock": 0o640,
        "models/spam-mine": 0o755,
        "models/spam-mine/manifest.json": 0o644,
        "models/spam-mine/model.skops": 0o644,
        "models/spam-team": 0o750,
        "models/spam-team/manifest.json": 0o640,
        "models/spam-team/model.skops": 0o640,
    }, modes
    if os.geteuid() == 0:  # and another user really reads them (root reads anything: ask `nobody`)
        files = [str(p) for p in made if p.is_file() and "spam-team" not in str(p)]
        read = subprocess.run(
            ["cat", *files], capture_output=True, timeout=30, user=65534, group=65534, extra_groups=[]
        )
        assert read.returncode == 0 and len(read.stdout) == sum(os.path.getsize(f) for f in files), read.stderr


def versions(candidates: Path) -> list[str]:
    """The candidate versions in ``candidates`` (not the hidden locks of the trainings that wrote them)."""
    return sorted(p.name for p in candidates.iterdir() if not p.name.startswith("."))


def test_a_candidate_of_the_same_version_is_replaced_only_with_force(tmp_path: Path) -> None:
    models = tmp_path / "models"
    base = write(tmp_path / "base.jsonl", rows(4))
    other = write(tmp_path / "other.jsonl", rows(5))
    candidates = models / ".candidates" / "spam-mine"

    def train(data: Path, *extra: str) -> subprocess.CompletedProcess:
        return cli("train", "spam", "--data", str(data), "--name", "spam-mine", "--dir", str(models), *extra)

    first = train(base, "--candidate")
    assert first.returncode == 0, first.stderr
    (version,) = versions(candidates)  # the default version: a hash of the data and config
    manifest = (candidates / version / "manifest.json").read_text()

    for again in (train(base, "--candidate"), train(other, "--candidate", "--version", version)):
        assert again.returncode == 2, again.stdout + again.stderr
        assert "Traceback" not in again.stderr and "wrote" not in again.stdout and "held-out" not in again.stdout
        assert f"already holds candidate spam-mine@{version}, trained " in again.stderr, again.stderr
        assert "--force" in again.stderr and str(candidates / version) in again.stderr
        # nothing written, nothing left behind
        assert versions(candidates) == [version]
        assert (candidates / version / "manifest.json").read_text() == manifest

    forced = train(other, "--candidate", "--version", version, "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"replaced candidate spam-mine@{version}, trained " in forced.stdout and "(--force)" in forced.stdout
    assert versions(candidates) == [version]
    replaced = json.loads((candidates / version / "manifest.json").read_text())
    assert replaced["training"][0]["name"] == "other.jsonl" and replaced["version"] == version
    assert sorted(p.name for p in models.iterdir()) == [".candidates", ".history"]  # no current model made on the way
    assert [p.name for p in (models / ".history").iterdir()] == ["spam-mine.lock"]  # only the lock the write took


def test_models_commands_on_a_fresh_models_directory_say_what_is_there(tmp_path: Path) -> None:
    """As a user tries them on a new models directory: a wrong --dir or model name is named (exit 2), an empty
    directory says so, and the first promotion says there is nothing to check it against or roll back to."""
    models, empty = tmp_path / "models", tmp_path / "empty"
    empty.mkdir()
    missing = cli("models", "list", "--dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no such models directory" in missing.stderr, missing.stderr
    a_file = cli("models", "list", "--dir", str(write(tmp_path / "base.jsonl", rows(4))))
    assert a_file.returncode == 2 and "not a directory" in a_file.stderr, a_file.stderr
    nothing = cli("models", "list", "--dir", str(empty))
    assert nothing.returncode == 0 and f"no models in {empty}" in nothing.stdout, nothing.stdout

    trained = cli(
        "train", "spam", "--data", str(tmp_path / "base.jsonl"), "--name", "spam-mine", "--dir", str(models),
        "--candidate", "--version", "c1",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    for command in (("list", "nope"), ("rollback", "nope")):
        unknown = cli("models", *command, "--dir", str(models))
        assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
        assert f"no model 'nope' in {models} (models there: spam-mine)" in unknown.stderr, unknown.stderr

    first = cli("models", "promote", "spam-mine", "--data", str(tmp_path / "base.jsonl"), "--dir", str(models))
    assert first.returncode == 0, first.stderr
    assert "spam-mine has no current version to check the candidate against" in first.stdout
    assert "the first version of spam-mine: nothing to roll back to" in first.stdout
    assert "restores the previous one" not in first.stdout, first.stdout  # there is none
    log = json.loads((models / ".history" / "spam-mine" / "versions.json").read_text())
    assert log["events"][-1]["note"] == "the first version: nothing to check it against"
    back = cli("models", "rollback", "spam-mine", "--dir", str(models))
    assert back.returncode == 2 and "no earlier version to roll back to" in back.stderr


def test_nothing_is_written_into_the_installed_package_without_a_models_directory(tmp_path: Path) -> None:
    """Without --dir or REPLYGUARD_MODELS_DIRS, `train` and `models promote / rollback` stop with a message naming
    both (exit 2) instead of writing into classifiers/artifacts (site-packages, for an installed replyguard);
    the shipped directory named outright is refused too. `models list` still reads it; the setting works."""
    from classifiers.registry import SHIPPED_DIR

    env = {k: v for k, v in os.environ.items() if k != "REPLYGUARD_MODELS_DIRS"}
    env["REPLYGUARD_HOME"] = str(tmp_path / "home")
    data = write(tmp_path / "base.jsonl", rows(4))

    def shipped() -> dict[str, float]:
        return {str(p.relative_to(SHIPPED_DIR)): p.stat().st_mtime for p in SHIPPED_DIR.rglob("*")}

    before = shipped()
    train = ("train", "spam", "--data", str(data), "--name", "spam-nowhere")
    try:
        for args in (train, (*train, "--candidate"), ("models", "promote", "spam-default"),
                     ("models", "rollback", "spam-default")):  # fmt: skip
            refused = cli(*args, env=env)
            assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
            assert "needs a models directory to write to" in refused.stderr, refused.stderr
            assert "--dir DIR" in refused.stderr and "REPLYGUARD_MODELS_DIRS" in refused.stderr
            assert "Traceback" not in refused.stderr and "wrote" not in refused.stdout
        for args in ((*train, "--dir", str(SHIPPED_DIR)), (*train, "--out", str(SHIPPED_DIR / "spam-nowhere"))):
            refused = cli(*args, env=env)
            assert refused.returncode == 2 and "shipped models directory, read-only" in refused.stderr, refused.stderr
        assert shipped() == before
    finally:
        for leftover in ("spam-nowhere", ".candidates", ".history"):  # what the old code wrote there
            shutil.rmtree(SHIPPED_DIR / leftover, ignore_errors=True)

    listed = cli("models", "list", env=env)
    assert listed.returncode == 0 and "spam-default  (" in listed.stdout, listed.stdout + listed.stderr
    ours = tmp_path / "models"
    env["REPLYGUARD_MODELS_DIRS"] = f"{ours}{os.pathsep}{tmp_path / 'more'}"
    trained = cli(*train, env=env)
    assert trained.returncode == 0 and f"wrote {ours / 'spam-nowhere'}" in trained.stdout, trained.stderr
    assert cli("models", "list", env=env).stdout.startswith(f"spam-nowhere  ({ours})")
    assert shipped() == before


def test_names_and_versions_that_could_never_be_found_or_would_leave_the_models_directory_are_refused(
    tmp_path: Path,
) -> None:
    """A team's file named in Japanese (or with capitals) made a model name the registry can never find, and a
    --version with a path in it wrote outside .candidates: both are refused before any work, naming the rule."""
    models = tmp_path / "models"
    data = write(tmp_path / "コメント Export.jsonl", rows(4))
    made = cli("train", "spam", "--data", str(data), "--dir", str(models))
    assert made.returncode == 2 and "Traceback" not in made.stderr, made.stdout + made.stderr
    assert "the name made from the file name, 'spam-コメント export', is not a model name" in made.stderr
    assert "give one with --name" in made.stderr
    capitals = cli("train", "spam", "--data", str(data), "--dir", str(models), "--name", "Spam_Mine")
    assert capitals.returncode == 2 and "--name 'Spam_Mine' is not a model name" in capitals.stderr
    for bad in ("../../escaped", ".hidden"):
        outside = cli(
            "train", "spam", "--data", str(data), "--dir", str(models), "--name", "spam-mine",
            "--candidate", "--version", bad,
        )  # fmt: skip
        assert outside.returncode == 2 and f"version {bad!r} is not a version name" in outside.stderr, outside.stderr
    assert not models.exists() and sorted(p.name for p in tmp_path.iterdir()) == [data.name]
    trained = cli("train", "spam", "--data", str(data), "--dir", str(models), "--name", "spam-mine", "--candidate")
    assert trained.returncode == 0, trained.stderr
    for command in (("promote", "spam-mine", "--version", "../../spam-mine"), ("rollback", "../spam-mine")):
        refused = cli("models", *command, "--dir", str(models))
        assert refused.returncode == 2 and "not a" in refused.stderr and "Traceback" not in refused.stderr
    assert [m for m in (models / ".candidates" / "spam-mine").iterdir() if not m.name.startswith(".")]


def test_training_a_new_current_version_keeps_the_one_it_replaces(tmp_path: Path) -> None:
    """``train --dir`` without ``--candidate`` makes the new version current at once, and the version it replaces
    goes to the history like a promotion's: ``models list`` shows it and ``models rollback`` restores it. Training
    the same data and config again (the same version, the same model) replaces it in place."""
    models = tmp_path / "models"

    def train(data: Path, version: str) -> subprocess.CompletedProcess:
        return cli(
            "train", "spam", "--data", str(data), "--name", "spam-mine", "--dir", str(models), "--version", version
        )

    base, more = write(tmp_path / "base.jsonl", rows(6)), write(tmp_path / "more.jsonl", rows(8))
    assert train(base, "v1").returncode == 0
    second = train(more, "v2")
    assert second.returncode == 0, second.stderr
    assert "replaced spam-mine@v1 as current; it is kept (replyguard models rollback spam-mine restores it)" in (
        second.stdout
    )
    assert json.loads((models / "spam-mine" / "manifest.json").read_text())["version"] == "v2"
    listing = cli("models", "list", "spam-mine", "--dir", str(models)).stdout
    assert "current    v2" in listing and "earlier    v1" in listing, listing
    assert not (models / ".candidates" / "spam-mine" / "v2").exists()  # made current, not left as a candidate
    log = json.loads((models / ".history" / "spam-mine" / "versions.json").read_text())
    assert log["stack"] == ["v1"] and log["events"][-1]["action"] == "train"
    back = cli("models", "rollback", "spam-mine", "--dir", str(models))
    assert back.returncode == 0 and "rolled spam-mine back to v1" in back.stdout, back.stdout + back.stderr
    again = train(base, "v1")  # the version that is current: replaced in place, nothing added to the history
    assert again.returncode == 0, again.stderr
    assert json.loads((models / ".history" / "spam-mine" / "versions.json").read_text())["stack"] == []
