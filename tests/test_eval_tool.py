"""`replyguard eval`: reports, the proposed policy (never applied), and replay over stored decisions."""

from __future__ import annotations

import hashlib
import html
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_event
from worker.settings import REPO_ROOT

CLI = [sys.executable, "-m", "worker.cli"]
REQUIRED = {
    "task",
    "n_train",
    "n_val",
    "n_test",
    "labels",
    "accuracy",
    "macro_f1",
    "per_label",
    "target_precision",
    "threshold",
    "coverage",
    "achieved_precision",
    "ece",
    "train_seconds",
    "predict_per_second",
}


def tree_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def write_intent_data(path: Path) -> None:
    """A small bilingual intent set with an out-of-scope label, written for this test."""
    base = {
        "track": [
            "where is my parcel",
            "has my order shipped",
            "tracking number please",
            "my package is late",
            "荷物はどこですか",
            "注文の配送状況を教えて",
            "まだ届きません",
            "追跡番号を教えてください",
        ],
        "refund": [
            "i want my money back",
            "refund please",
            "how do i get a refund",
            "return for a refund",
            "返金してください",
            "返金の方法は",
            "お金を返してほしい",
            "返金はいつですか",
        ],
        "hours": [
            "when are you open",
            "opening hours",
            "are you open on sunday",
            "what time do you close",
            "営業時間は",
            "何時に開きますか",
            "日曜日は営業していますか",
            "何時まで開いていますか",
        ],
        "oos": [
            "what is the weather",
            "tell me a joke",
            "who won the game",
            "recommend a movie",
            "今日の天気は",
            "面白い話をして",
            "おすすめの映画",
            "東京タワーの高さ",
        ],
    }
    rows = []
    for label, texts in base.items():
        for i in range(6):
            for t in texts:
                rows.append({"text": f"{t} {'!' * (i % 3)}{'?' * (i // 3)}".strip(), "label": label})
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def test_eval_writes_reports_and_a_proposal_without_touching_policies(tmp_path: Path) -> None:
    data = tmp_path / "intents.jsonl"
    write_intent_data(data)
    before = tree_hash(REPO_ROOT / "policies")
    out = tmp_path / "report"
    result = subprocess.run(
        [
            *CLI,
            "eval",
            "--task",
            "intent",
            "--data",
            str(data),
            "--oos-label",
            "oos",
            "--report",
            str(out),
            "--target-precision",
            "0.9",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert tree_hash(REPO_ROOT / "policies") == before  # never edits policies/ in place

    report = json.loads((out / "report.json").read_text())
    assert REQUIRED <= set(report) and {"in_scope_accuracy", "oos_recall"} <= set(report)
    assert report["n_test"] > 0 and report["n_val"] > 0 and report["data"]["carved"]  # val/test carved
    assert set(report["per_label"]["track"]) >= {"precision", "recall", "f1", "support"}
    assert report["assumed_oos_share"] == 0.25 and 0 <= report["coverage"] <= 1

    parser = _Tags()
    parser.feed((out / "report.html").read_text())
    assert parser.tags.count("svg") >= 3 and not [u for u in parser.urls if u.startswith(("http", "//"))]

    proposed = yaml.safe_load((out / "policy.proposed.yaml").read_text())
    assert proposed["brand"] == "demo-shop" and set(proposed["thresholds"]["intent"]) >= {"default"}
    from worker.policy import Policy

    Policy.model_validate(proposed)  # it is a valid policy
    diff = (out / "policy.diff.txt").read_text()
    assert "escalations per 1,000 messages" in diff and "->" in diff
    assert "replyguard never applies it" in (out / "policy.proposed.yaml").read_text()


def test_eval_report_page_shows_the_notes_the_text_report_prints(tmp_path: Path) -> None:
    """A rare label (too few rows for 5 calibration folds) gets a note on stdout and in report.json; the page
    shows it as well, its label text escaped."""
    data = tmp_path / "intents.jsonl"
    write_intent_data(data)
    label = "<script>alert(1)</script>"
    extra = [
        "cancel my order now",
        "please cancel the order",
        "cancel it",
        "注文をキャンセルして",
        "キャンセルしたい",
        "cancel 42",
    ]
    with data.open("a", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"text": t, "label": label}, ensure_ascii=False) + "\n" for t in extra)
    out = tmp_path / "report"
    result = subprocess.run(
        [*CLI, "eval", "--task", "intent", "--data", str(data), "--oos-label", "oos", "--report", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    # the rare label's note, then (this val is tiny) why no out-of-scope reject threshold was chosen
    note, reject = json.loads((out / "report.json").read_text())["notes"]
    assert note.startswith(f"label(s) {label} (") and "folds instead of 5" in note, note
    assert reject.startswith("out-of-scope reject threshold not chosen: val holds "), reject
    assert f"note: {note}" in result.stdout
    page = (out / "report.html").read_text(encoding="utf-8")
    assert html.escape(note, quote=True) in page and label not in page
    parser = _Tags()
    parser.feed(page)
    assert "script" not in parser.tags


def test_eval_of_an_artifact_as_is(tmp_path: Path) -> None:
    spam = [
        "WIN a FREE prize now, text WIN to 80800",
        "Congratulations! You've been selected for a £1000 reward, call 09061234567",
        "URGENT: your mobile number has won a cash award, claim at www.prize-now.example",
        "Free entry into our weekly draw, txt GO to 81234 now",
        "You have won a holiday to Spain! Call 0800 123 4567 to claim",
    ]
    ham = [
        "are we still on for lunch?",
        "I'll be home late tonight, save me some dinner",
        "can you pick up milk on the way",
        "haha that was so funny yesterday",
        "the meeting moved to 3pm, see you there",
    ]
    pairs = [(t, "spam") for t in spam] + [(t, "ham") for t in ham]
    rows = [
        {"text": f"{t}{' ' * (k % 3)}", "label": l, "split": ("test", "val", "train", "train")[k % 4]}
        for k, (t, l) in enumerate(pairs * 8)
    ]
    data = tmp_path / "spam.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "r"
    result = subprocess.run(
        [
            *CLI,
            "eval",
            "--task",
            "spam",
            "--data",
            str(data),
            "--report",
            str(out),
            "--model",
            str(REPO_ROOT / "classifiers" / "artifacts" / "spam-default"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["model"].startswith("artifact spam-default@") and report["train_seconds"] is None
    assert report["accuracy"] >= 0.9 and report["n_test"] == 20


def test_eval_rejects_a_model_for_another_task(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    write_intent_data(data)
    result = subprocess.run(
        [
            *CLI,
            "eval",
            "--task",
            "intent",
            "--data",
            str(data),
            "--report",
            str(tmp_path / "r"),
            "--model",
            str(REPO_ROOT / "classifiers" / "artifacts" / "spam-default"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "is a 'spam' model, not 'intent'" in result.stderr


def test_replay_shows_what_a_changed_policy_would_do(client, settings, brands, tmp_path: Path, redis_url) -> None:
    from worker.ingest import ingest_events
    from worker.jobs import install
    from worker.pipeline import Pipeline
    from worker.queues import make_worker

    events = [
        make_event(id="r1", conversation_id="k1", author={"id": "a1"}, text="how long does shipping to Canada take?"),
        make_event(id="r2", conversation_id="k2", author={"id": "a2"}, text="what are your opening hours?"),
        make_event(id="r3", conversation_id="k3", author={"id": "a3"}, text="asdkjh qwe zzz"),
    ]
    install(Pipeline(brands), settings)
    ingest_events(events, client, settings, batch_wait=0.01)
    make_worker(client, settings, simple=True).work(burst=True)
    env = {**os.environ, "REDIS_URL": redis_url}
    fix = subprocess.run(
        [*CLI, "review", "resolve", "r3", "--intent", "out_of_scope", "--spam", "no", "--by", "qa"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fix.returncode == 0 and "resolved demo-shop/r3" in fix.stdout

    strict = yaml.safe_load((REPO_ROOT / "policies" / "demo-shop.yaml").read_text())
    strict["thresholds"]["intent"] = {"default": 0.99999}  # answer nothing automatically
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(yaml.safe_dump(strict, allow_unicode=True))
    result = subprocess.run(
        [*CLI, "eval", "--replay", "--policy", str(candidate), "--report", str(tmp_path / "rp")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    replay = json.loads((tmp_path / "rp" / "replay.json").read_text())
    assert replay["decisions"] == 3 and replay["corrected"] == 1
    assert replay["changed"] >= 2  # the two FAQs would no longer be answered
    assert any(k.startswith("auto_reply -> ") and "escalate" in k for k in replay["transitions"])
    assert "3 decisions" in result.stdout and "would be decided differently" in result.stdout
    page = (tmp_path / "rp" / "replay.html").read_text()  # --replay writes an HTML report too
    assert page.startswith("<!doctype html>") and "Replay of demo-shop" in page and "auto_reply" in page
    # the review queue lost the resolved item
    listing = subprocess.run([*CLI, "review", "list", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert "r3" not in [row["message_id"] for row in json.loads(listing.stdout)["items"]]


@pytest.mark.shared_data
def test_eval_on_a_shared_dataset(shared: Path, tmp_path: Path) -> None:
    from eval.evaluate import evaluate

    ev = evaluate("intent", shared / "bitext_customer_support.jsonl", measure_speed=False)
    assert ev.report["accuracy"] >= 0.98 and ev.report["n_val"] > 0
