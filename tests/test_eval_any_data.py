"""The eval tool on any team's data: rare labels, foreign label sets, registry names, the policy's own
model, deliberate thresholds kept, comments kept, a proposal that validates, and two reports compared."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from eval.proposal import propose
from eval.thresholds import Scored
from worker.policy import load_policy
from worker.settings import REPO_ROOT

CLI = [sys.executable, "-m", "worker.cli"]
POLICY = REPO_ROOT / "policies" / "demo-shop.yaml"


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


INTENTS = {
    "order_status": [
        "where is my order",
        "has my parcel shipped yet",
        "tracking number for my order please",
        "注文はどこですか",
        "荷物がまだ届きません",
        "my package is late",
    ],
    "returns": [
        "i want to return this",
        "how do i send it back",
        "refund for a broken mug please",
        "返品したいです",
        "返金してください",
        "can i exchange the size",
    ],
}


def intent_rows(rare: int) -> list[dict]:
    rows = [
        {"text": f"{t} {'!' * k}".strip(), "label": label}
        for label, texts in INTENTS.items()
        for t in texts
        for k in range(5)
    ]
    rows += [{"text": f"can i talk to a person {'?' * k}", "label": "human_agent"} for k in range(rare)]
    return rows


def test_a_rare_label_gets_fewer_calibration_folds_not_a_traceback(tmp_path: Path) -> None:
    data = write(tmp_path / "rare.jsonl", intent_rows(rare=6))
    result = run("eval", "--train", "--task", "intent", "--data", str(data), "--report", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert "human_agent (4)" in result.stdout and "calibrated over 4 folds instead of 5" in result.stdout
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["notes"] and "human_agent" in report["notes"][0]


def test_a_label_too_rare_to_train_is_named_in_a_clear_message(tmp_path: Path) -> None:
    data = write(tmp_path / "rare.jsonl", intent_rows(rare=1))
    result = run("eval", "--train", "--task", "intent", "--data", str(data), "--report", str(tmp_path / "r"))
    assert result.returncode == 2
    assert "['human_agent'] have fewer than 2 training rows" in result.stderr and "Traceback" not in result.stderr


def test_the_policys_own_model_is_evaluated_when_it_knows_the_labels(tmp_path: Path) -> None:
    data = write(tmp_path / "mine.jsonl", intent_rows(rare=10))
    result = run("eval", "--task", "intent", "--data", str(data), "--report", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["model"].startswith("artifact demo-shop-intent@") and report["train_seconds"] is None
    assert report["policy_comparison"]["model_mismatch"] is False
    assert "WARNING" not in (tmp_path / "r" / "policy.proposed.yaml").read_text()


def test_abuse_data_with_its_own_labels_maps_what_it_can_and_validates(tmp_path: Path) -> None:
    rows = [{"text": f"people like you are vermin and should leave {k}", "label": "hate"} for k in range(40)]
    rows += [{"text": f"lovely mug, thanks for the quick delivery {k}", "label": "not_hate"} for k in range(40)]
    data = write(tmp_path / "abuse.jsonl", rows)
    out = tmp_path / "r"
    result = run("eval", "--task", "abuse", "--data", str(data), "--report", str(out))
    assert result.returncode == 0, result.stderr
    assert (
        "Traceback" not in result.stderr
        and "WARNING: the proposed thresholds are for a model this eval trained" in result.stdout
    )
    proposed = out / "policy.proposed.yaml"
    policy = load_policy(proposed, name_must_match=False).policy
    assert policy.thresholds.abuse["offensive"] == 0.8  # not in the data: the policy's value stays
    assert "kept: the data does not have this label" in (out / "policy.diff.txt").read_text()
    assert "WARNING: these thresholds were chosen for" in proposed.read_text()
    check = run("validate", str(proposed), timeout=120)
    assert check.returncode == 0, check.stderr


def test_labels_the_policy_cannot_hold_are_named_not_written(tmp_path: Path) -> None:
    rows = [{"text": f"you are all idiots {k}", "label": "toxic"} for k in range(30)]
    rows += [{"text": f"great service, thank you {k}", "label": "clean"} for k in range(30)]
    out = tmp_path / "r"
    result = run("eval", "--task", "abuse", "--data", str(write(tmp_path / "t.jsonl", rows)), "--report", str(out))
    assert result.returncode == 0, result.stderr
    assert "not proposed: toxic: thresholds.abuse only knows ['hate', 'offensive']" in result.stdout
    assert load_policy(out / "policy.proposed.yaml", name_must_match=False).policy.thresholds.abuse == {
        "hate": 0.6,
        "offensive": 0.8,
    }


def test_model_by_registry_name(tmp_path: Path) -> None:
    rows = [{"text": f"WIN a free iPhone, click bit.ly/win{k} now", "label": "spam"} for k in range(20)]
    rows += [{"text": f"where is my order KM-20{k}?", "label": "ham"} for k in range(20)]
    result = run(
        "eval",
        "--task",
        "spam",
        "--data",
        str(write(tmp_path / "s.jsonl", rows)),
        "--model",
        "spam-default",
        "--report",
        str(tmp_path / "r"),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "r" / "report.json").read_text())["model"].startswith("artifact spam-default@")
    missing = run(
        "eval",
        "--task",
        "spam",
        "--data",
        str(tmp_path / "s.jsonl"),
        "--model",
        "no-such-model",
        "--report",
        str(tmp_path / "r2"),
    )
    assert missing.returncode == 2 and "no model directory of that name" in missing.stderr


def test_the_proposal_keeps_comments_layout_and_deliberate_thresholds(tmp_path: Path) -> None:
    data = write(tmp_path / "mine.jsonl", intent_rows(rare=10))
    out = tmp_path / "r"
    assert run("eval", "--task", "intent", "--data", str(data), "--report", str(out)).returncode == 0
    original = POLICY.read_text(encoding="utf-8").splitlines()
    proposed = (out / "policy.proposed.yaml").read_text(encoding="utf-8").splitlines()
    comments = [line for line in original if line.strip().startswith("#")]
    assert comments and all(c in proposed for c in comments)  # every comment line, in place
    assert "    human_agent: 0.5       # asking for a person is cheap to honour" in proposed
    changed = [line for line in original if line not in proposed]
    assert all("default:" in line or "greeting" in line or "thanks" in line for line in changed), changed
    assert "set in the policy on purpose, kept" in (out / "policy.diff.txt").read_text()
    check = run("validate", str(out / "policy.proposed.yaml"), timeout=120)
    assert check.returncode == 0, check.stderr


def test_a_deliberate_threshold_is_overruled_only_by_enough_evidence() -> None:
    policy = load_policy(POLICY).policy
    labels = ["human_agent", "order_status", "out_of_scope"]
    n = 60
    proba = np.tile([0.55, 0.25, 0.20], (n, 1))  # predicted human_agent at 0.55, above the policy's 0.5
    truth = ["human_agent" if i % 2 else "order_status" for i in range(n)]  # half of them wrong
    report = {
        "target_precision": 0.98,
        "threshold": 0.9,
        "per_label_thresholds": {},
        "labels": labels,
        "action_labels": ["human_agent", "order_status"],
        "model_ref": "x@1",
    }
    overruled = propose("intent", report, policy, Scored.from_proba(proba, labels, truth), allowed=set(labels))
    assert (
        "human_agent" not in overruled.thresholds
        and "precision 0.500 on 60 val answers" in overruled.reasons["human_agent"]
    )
    few = propose("intent", report, policy, Scored.from_proba(proba[:5], labels, truth[:5]), allowed=set(labels))
    assert few.thresholds["human_agent"] == 0.5 and "too few to overrule it" in few.reasons["human_agent"]


def test_compare_two_reports_side_by_side(tmp_path: Path) -> None:
    data = write(tmp_path / "mine.jsonl", intent_rows(rare=10))
    assert run("eval", "--task", "intent", "--data", str(data), "--report", str(tmp_path / "a")).returncode == 0
    assert (
        run("eval", "--train", "--task", "intent", "--data", str(data), "--report", str(tmp_path / "b")).returncode == 0
    )
    result = run("eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--report", str(tmp_path / "c"))
    assert result.returncode == 0, result.stderr
    assert "artifact demo-shop-intent@" in result.stdout and "trained on the train split" in result.stdout
    assert "B - A" in result.stdout and "human_agent" in result.stdout
    assert "F1 per label" in (tmp_path / "c" / "compare.html").read_text()
    bad = run("eval", "--compare", str(tmp_path / "a"), str(tmp_path / "nothing"))
    assert bad.returncode == 2 and "no eval report there" in bad.stderr


def test_a_reject_threshold_tiny_data_cannot_choose_is_said_so_not_shown_as_zero(tmp_path: Path) -> None:
    """A val split with a couple of out-of-scope rows cannot choose where to reject: the text report, report.json,
    report.html, the diff and the proposed policy say so and why, instead of 'reject below 0.00'."""
    rows = intent_rows(rare=6)
    rows += [{"text": f"{t} {'?' * k}".strip(), "label": "out_of_scope"} for t in OUT_OF_SCOPE for k in range(3)]
    data = write(tmp_path / "tiny.jsonl", rows)
    out = tmp_path / "r"
    result = run("eval", "--task", "intent", "--data", str(data), "--report", str(out))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["oos_label"] == "out_of_scope" and report["reject_threshold"] is None, report.get("reject_threshold")
    why = report["reject_threshold_not_chosen"]
    assert why.startswith("val holds ") and "out-of-scope ('out_of_scope')" in why, why
    assert "reject below 0.00" not in result.stdout and f"no reject threshold: {why}" in result.stdout
    assert "at least 5 and 20 are needed" in why, why
    assert "Out-of-scope reject threshold" in (out / "report.html").read_text()
    assert "not chosen" in (out / "report.html").read_text()
    for written in ("policy.diff.txt", "policy.proposed.yaml"):
        assert "No out-of-scope reject threshold could be chosen" in (out / written).read_text(), written
    load_policy(out / "policy.proposed.yaml", name_must_match=False)  # still a valid policy


def test_a_reject_threshold_is_chosen_when_val_holds_enough_rows() -> None:
    from eval.thresholds import choose_reject_threshold

    rng = np.random.default_rng(0)
    labels = ["a", "b", "oos"]
    truth = ["a"] * 30 + ["b"] * 30 + ["oos"] * 10
    proba = np.array([[0.9, 0.05, 0.05]] * 30 + [[0.05, 0.9, 0.05]] * 30 + [[0.5, 0.3, 0.2]] * 10)
    proba[:60] += rng.uniform(0, 0.01, size=(60, 3))
    chosen = choose_reject_threshold(Scored.from_proba(proba, labels, truth), "oos", min_oos=5, min_in_scope=20)
    assert chosen.why_not is None and chosen.threshold is not None and 0.5 < chosen.threshold <= 0.9
    few = choose_reject_threshold(
        Scored.from_proba(proba[25:65], labels, truth[25:65]), "oos", min_oos=10, min_in_scope=20
    )
    assert few.threshold is None and "val holds 5 out-of-scope ('oos') and 35 in-scope rows" in str(few.why_not)


OUT_OF_SCOPE = ["what's the weather tomorrow", "tell me a joke", "今日の天気は", "おすすめの映画は"]


def _odd_team_file(path: Path) -> Path:
    """A team's export as spreadsheets write it: UTF-8 with a BOM, CRLF line ends, Japanese labels, a label with
    three rows, labels that map partly onto the policy's (order_status, returns, out_of_scope), an empty text and
    a duplicate row."""
    rows = [(f"{t} {'!' * k}".strip(), label) for label, texts in INTENTS.items() for t in texts for k in range(4)]
    rows += [(f"{t} {'?' * k}".strip(), "out_of_scope") for t in OUT_OF_SCOPE for k in range(3)]
    rows += [(f"ギフト包装はできますか {'!' * k}".strip(), "ギフト包装") for k in range(6)]
    rows += [(f"gift wrap it please {'!' * k}".strip(), "ギフト包装") for k in range(6)]
    rows += [("領収書をください", "領収書 "), ("receipt for my order please", "領収書"), ("領収書の宛名", "領収書")]
    rows.insert(7, ("", "order_status"))  # an image posted without a caption
    rows.append(rows[0])  # the same row exported twice
    if path.suffix == ".csv":
        body = "text,label\r\n" + "".join(f'"{t}",{label}\r\n' for t, label in rows)
    else:
        body = "".join(json.dumps({"text": t, "label": label}, ensure_ascii=False) + "\r\n" for t, label in rows)
    path.write_bytes(("\ufeff" + body).encode("utf-8"))
    return path


def test_an_odd_team_export_is_evaluated_and_trained_with_what_it_could_not_use_named(tmp_path: Path) -> None:
    for name in ("team.csv", "team.jsonl"):
        data = _odd_team_file(tmp_path / name)
        out = tmp_path / f"r-{name}"
        result = run("eval", "--task", "intent", "--data", str(data), "--report", str(out))
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        # the empty row is named (line 9: the header or first line is 1, the row was inserted 8th), not trained on
        line = 9 if name.endswith(".csv") else 8
        assert f"left out 1 row with an empty text ({name} line {line})" in result.stdout, result.stdout
        assert "reading 'out_of_scope' as the out-of-scope label, as demo-shop.yaml does" in result.stdout
        report = json.loads((out / "report.json").read_text())
        assert sorted(report["labels"]) == sorted(["order_status", "returns", "out_of_scope", "ギフト包装", "領収書"])
        assert report["oos_label"] == "out_of_scope" and "領収書 (2)" in " ".join(report["notes"])
        for label in ("ギフト包装", "領収書"):  # the data's own intents: named, never written into the policy
            assert f"not proposed: {label}: not a label of the policy's intent model demo-shop-intent@" in result.stdout
        proposed = load_policy(out / "policy.proposed.yaml", name_must_match=False).policy
        assert not {"ギフト包装", "領収書"} & set(proposed.thresholds.intent)
    trained = run("train", "intent", "--data", str(data), "--dir", str(tmp_path / "models"), "--candidate")
    assert trained.returncode == 0 and "Traceback" not in trained.stderr, trained.stderr
    assert f"{data.name}: left out 1 row with an empty text" in trained.stdout


def test_spreadsheet_labels_and_splits_and_japanese_negative_labels_are_read_as_meant(tmp_path: Path) -> None:
    from classifiers.datasets import read_dataset
    from eval.evaluate import _positive

    data = tmp_path / "sheet.csv"
    data.write_text("text,label,split\r\nbuy followers,spam ,Train\r\nhello,ham, TEST \r\n   ,ham,val\r\n")
    ds = read_dataset(data)
    assert [(e.label, e.split) for e in ds.examples] == [("spam", "train"), ("ham", "test")]
    assert ds.empty_lines == [4] and ds.empty_text() == "left out 1 row with an empty text (sheet.csv line 4)"
    assert _positive("spam", ["スパム", "正常"], None) == {"スパム"}  # 正常 (normal) is nothing to act on
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("text,label,split\nhello,spam,training\n")
    result = run("train", "spam", "--data", str(wrong), "--dir", str(tmp_path / "models"))
    assert result.returncode == 1 and f"{wrong}:2: field 'split' is 'training'" in result.stderr, result.stderr
    only_empty = tmp_path / "empty.jsonl"
    only_empty.write_text('{"text": " ", "label": "spam"}\n{"text": "", "label": "ham"}\n')
    result = run("eval", "--task", "spam", "--data", str(only_empty), "--report", str(tmp_path / "r"))
    assert result.returncode == 1 and f"{only_empty}: holds no rows with a text" in result.stderr, result.stderr


def test_a_label_with_one_row_is_named_with_its_file(tmp_path: Path) -> None:
    data = write(tmp_path / "rare.jsonl", intent_rows(rare=1))
    for command in (
        ("eval", "--train", "--task", "intent", "--data", str(data), "--report", str(tmp_path / "r")),
        ("train", "intent", "--data", str(data), "--dir", str(tmp_path / "models")),
    ):
        result = run(*command)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert f"{data}: label(s) ['human_agent'] have fewer than 2 training rows" in result.stderr, result.stderr


def test_texts_shared_between_splits_and_labelled_two_ways_are_named(tmp_path: Path) -> None:
    """A team's export with its own split column can put one text in train and test (a copy-pasted FAQ), and
    one text under two labels: eval and train say so, counted, with the texts quoted; carved splits share none."""
    rows = [
        {"text": f"{t} {'!' * k}".strip(), "label": label, "split": "train"}
        for label, texts in INTENTS.items()
        for t in texts
        for k in range(5)
    ]
    rows += [
        {"text": "Where is my ORDER", "label": "order_status", "split": "test"},  # train has "where is my order"
        {"text": "返品したいです", "label": "returns", "split": "test"},
        {"text": "is it shipped", "label": "order_status", "split": "test"},
        {"text": "send it back please", "label": "returns", "split": "test"},
        {"text": "my package is late", "label": "returns", "split": "val"},  # order_status in train
        {"text": "ok", "label": "returns", "split": "val"},
        {"text": "fine", "label": "order_status", "split": "val"},
    ]
    data = write(tmp_path / "export.jsonl", rows)
    result = run("eval", "--train", "--task", "intent", "--data", str(data), "--report", str(tmp_path / "r"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "2 of 4 test rows (50.0%) have the text of a train or val row" in result.stdout, result.stdout
    assert "1 of 3 val rows (33.3%) have the text of a train row" in result.stdout, result.stdout
    assert "1 text is labelled more than one way" in result.stdout
    assert "'my package is late' as order_status and returns" in result.stdout, result.stdout
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["data"]["shared_texts"] == {"val": {"rows": 1, "of": 3}, "test": {"rows": 2, "of": 4}}
    assert report["data"]["conflicting_labels"] == 1
    assert "2 of 4 test rows" in (tmp_path / "r" / "report.html").read_text()
    trained = run("train", "intent", "--data", str(data), "--dir", str(tmp_path / "models"), "--candidate")
    assert trained.returncode == 0 and "Traceback" not in trained.stderr, trained.stderr
    assert "export.jsonl: 2 of 4 test rows (50.0%) have the text of a train or val row" in trained.stdout
    assert "val rows" not in trained.stdout  # training fits val too: only its test rows are measured
    # without the split column the carved splits keep each text in one split
    carved = write(tmp_path / "carved.jsonl", [{k: v for k, v in r.items() if k != "split"} for r in rows])
    result = run("eval", "--train", "--task", "intent", "--data", str(carved), "--report", str(tmp_path / "c"))
    assert result.returncode == 0 and "have the text of a" not in result.stdout, result.stdout
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert all(v["rows"] == 0 for v in report["data"]["shared_texts"].values()), report["data"]
