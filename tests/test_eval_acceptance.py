"""Acceptance checks of the eval tool from the command line: the ways a real team gets its arguments
wrong (a mistyped policy path, a report path that is a file, a hand-edited report) end in a short
error that names what and where, a non-zero exit and no traceback, before any model is evaluated."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eval.compare import compare_reports
from worker.exceptions import ConfigError


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


def minimal_report(kind: str, **changes: object) -> dict:
    report = {
        "task": kind,
        "data": {"path": "/somewhere/mine.jsonl"},
        "model": "trained on the train split",
        "accuracy": 0.9,
        "per_label": {"spam": {"f1": 0.8}, "ham": {"f1": 0.95}},
    }
    report.update(changes)
    return {k: v for k, v in report.items() if v is not None}


@pytest.mark.parametrize(
    "changes",
    [
        {"data": None},
        {"model": None},
        {"data": "mine.jsonl"},
        {"per_label": [1, 2]},
        {"per_label": {"spam": 0.8}},
        {"task": 3},
    ],
    ids=["no data", "no model", "data not an object", "per_label a list", "per_label of numbers", "task a number"],
)
def test_a_hand_edited_report_is_refused_by_name(tmp_path: Path, changes: dict) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "report.json").write_text(json.dumps(minimal_report("spam")), encoding="utf-8")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "report.json").write_text(json.dumps(minimal_report("spam", **changes)), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"b/report.json: not a readable eval report"):
        compare_reports(tmp_path / "a", tmp_path / "b")
    result = run("eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert result.returncode == 2 and "b/report.json" in result.stderr
    no_traceback(result)


def test_reports_of_two_tasks_are_shown_with_a_warning(tmp_path: Path) -> None:
    for name, task in (("a", "spam"), ("b", "abuse")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(minimal_report(task)), encoding="utf-8")
    lines = compare_reports(tmp_path / "a", tmp_path / "b").lines()
    assert "note: A is a report on spam, B on abuse: their figures are not comparable" in lines


def test_compare_shows_each_reports_notes_and_never_rounds_a_threshold_up_to_one(tmp_path: Path) -> None:
    """A threshold of 0.999998 is not 1.0000 (a threshold of 1 handles nothing automatically), and what each report
    notes about its own figures (labels read as others, calibration folds reduced) is shown beside them."""
    rare = (
        "label(s) <script>alert(1)</script> (4) have fewer than 5 training rows: calibrated over 4 folds instead of 5"
    )
    reports = {
        "a": minimal_report("spam", threshold=0.9958, notes=["labels '1' read as spam, '0' read as ham"]),
        "b": minimal_report("spam", threshold=0.999998, notes=[rare]),
    }
    for name, report in reports.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(report), encoding="utf-8")
    result = run("eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--report", str(tmp_path / "c"))
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    assert "note: A: labels '1' read as spam, '0' read as ham" in result.stdout
    assert f"note: B: {rare}" in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("threshold"))
    assert row.split()[-3:] == ["0.996", "0.999998", "+0.0042"], row
    page = (tmp_path / "c" / "compare.html").read_text(encoding="utf-8")
    assert "<script>" not in page and "B: label(s) &lt;script&gt;alert(1)&lt;/script&gt; (4)" in page
    assert "0.999998" in page


def test_a_label_with_three_rows_keeps_two_for_training_and_one_row_is_named() -> None:
    from classifiers.build import DEFAULT_CONFIGS, fitted_config
    from classifiers.datasets import Dataset, Example, with_splits

    rows = [Example(f"where is my parcel number {i}", "order_status") for i in range(20)]
    rows += [Example(f"i want my money back for item {i}", "refund") for i in range(20)]
    rows += [
        Example(t, "haggle") for t in ("any discount on the blue mug?", "can you do it cheaper", "値引きできますか")
    ]
    ds = with_splits(Dataset(path="mine.jsonl", sha256="0", examples=rows))
    assert ds.labels("train").count("haggle") == 2 and ds.labels("test").count("haggle") == 1
    config, note = fitted_config(DEFAULT_CONFIGS["intent"], ds.labels("train"))
    assert config.calibration_folds == 2 and note and "haggle (2)" in note
    lone = with_splits(Dataset(path="mine.jsonl", sha256="0", examples=[*rows, Example("teleport my cat", "teleport")]))
    assert lone.labels("train").count("teleport") == 1  # a single row stays in train, where its message names it
    with pytest.raises(ConfigError, match=r"\['teleport'\] have fewer than 2 training rows"):
        fitted_config(DEFAULT_CONFIGS["intent"], lone.labels("train"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read: No such file or directory"),
        ('{"C": 0.5,', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"C": "strong"}', "C = 'strong' (expected float)"),
        ('{"calibration_folds": true}', "calibration_folds = True (expected int)"),
        ('{"char_ngrams": [2]}', "char_ngrams = (2,) (expected tuple[int, int])"),
        ('{"Cee": 1}', "unknown model config key(s) ['Cee']"),
    ],
    ids=["missing", "broken JSON", "a list", "a word for a number", "a bool for an int", "a short pair", "unknown key"],
)
def test_train_config_mistakes_are_named_before_training(tmp_path: Path, content: str | None, expected: str) -> None:
    config = tmp_path / "config.json"
    if content is not None:
        config.write_text(content, encoding="utf-8")
    data = labelled(tmp_path / "d.jsonl")
    result = run("train", "spam", "--data", str(data), "--config", str(config), "--dir", str(tmp_path / "models"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
    no_traceback(result)
    assert not (tmp_path / "models").exists()


def test_training_with_corrections_keeps_the_files_test_rows_and_gets_a_version_of_its_own(tmp_path: Path) -> None:
    from classifiers.build import train
    from classifiers.datasets import Dataset, Example, with_splits

    rows = [Example(f"check out my channel, giveaway number {i}", "spam") for i in range(15)]
    rows += [Example(f"thanks, the part about step {i} helped me", "ham") for i in range(15)]
    data = Dataset(path="mine.jsonl", sha256="f" * 64, examples=rows)
    corrections = [
        Example("subscribe to me and i sub back", "spam", split="train", weight=2.0),
        Example("lovely video, made it with my kids", "ham", split="train", weight=2.0),
        Example("follow me back pls", "spam", split="test", weight=2.0),  # held out: never trained on
    ]
    plain = train("spam", data, name="mine", out=tmp_path / "plain")
    corrected = train("spam", data, name="mine", out=tmp_path / "corrected", corrections=corrections)
    assert plain.manifest and corrected.manifest
    assert corrected.manifest.version != plain.manifest.version
    file_test = len(with_splits(data).split("test"))
    assert plain.metrics["n"] == file_test and corrected.metrics["n"] == file_test + 1
    sources = corrected.manifest.training
    assert [s.rows for s in sources] == [30, 3] and sources[1].counts == {
        "test": {"spam": 1},
        "train": {"ham": 1, "spam": 1},
    }
    assert sources[0].sha256 == "f" * 64 and sources[0].counts == plain.manifest.training[0].counts


@pytest.mark.parametrize(
    ("task", "positive", "negative", "action"),
    [("spam", "junk", "0", ["junk"]), ("abuse", "toxic", "clean", ["toxic"]), ("spam", "spam", "not_spam", ["spam"])],
)
def test_a_teams_negative_label_is_not_an_action_label(task: str, positive: str, negative: str, action: list) -> None:
    from classifiers.datasets import Dataset, Example
    from eval.evaluate import evaluate

    rows = [Example(f"check out my channel for giveaway number {i}", positive) for i in range(20)]
    rows += [Example(f"thanks, the part about step {i} helped me", negative) for i in range(20)]
    report = evaluate(
        task, Dataset(path="mine.jsonl", sha256="0", examples=rows), measure_speed=False, models_dirs=[]
    ).report
    assert report["action_labels"] == action
    assert report["per_label"][negative]["threshold"] is None  # confident "nothing to do" is no automatic action


def test_the_policys_intent_default_is_not_moved_by_a_handful_of_val_rows() -> None:
    import numpy as np

    from eval.proposal import MIN_EVIDENCE, propose
    from eval.thresholds import Scored
    from worker.policy import load_policy
    from worker.settings import REPO_ROOT

    policy = load_policy(REPO_ROOT / "policies" / "demo-shop.yaml").policy
    default = policy.thresholds.intent["default"]
    labels = ["order_status", "out_of_scope", "returns"]
    report = {
        "target_precision": 0.98,
        "threshold": 0.46,  # what 5 easy val rows chose: far below the policy's own default
        "per_label_thresholds": {},
        "labels": labels,
        "action_labels": ["order_status", "returns"],
        "model_ref": "x@1",
    }

    def scored(n: int) -> Scored:
        truth = ["order_status" if i % 2 else "returns" for i in range(n)]
        proba = np.array([[0.9, 0.05, 0.05] if t == "order_status" else [0.05, 0.05, 0.9] for t in truth])
        return Scored.from_proba(proba, labels, truth)

    few = propose("intent", report, policy, scored(5), allowed=set(labels))
    assert few.thresholds["default"] == default and "only 5 val rows" in few.reasons["default"]
    enough = propose("intent", report, policy, scored(MIN_EVIDENCE), allowed=set(labels))
    assert enough.thresholds["default"] == 0.46


@pytest.mark.parametrize(
    ("body", "line", "fields"),
    [
        ("text,label\r\nthanks for the video,ham\r\nhello, check my channel,spam\r\n", 3, 3),
        ('text,label\n"a quoted, comma",ham\nno label here\n', 3, 1),
    ],
    ids=["an unquoted comma", "a row without a label"],
)
def test_a_csv_row_with_the_wrong_number_of_fields_is_named(tmp_path: Path, body: str, line: int, fields: int) -> None:
    from classifiers.datasets import read_dataset
    from classifiers.errors import DatasetError

    path = tmp_path / "mine.csv"
    path.write_text(body, encoding="utf-8-sig", newline="")
    with pytest.raises(DatasetError, match=rf"mine.csv:{line}: {fields} fields but the header has 2"):
        read_dataset(path)
    result = run("eval", "--task", "spam", "--data", str(path), "--report", str(tmp_path / "r"))
    assert result.returncode == 1 and f"mine.csv:{line}: {fields} fields" in result.stderr
    no_traceback(result)


def test_quoted_commas_bom_crlf_and_blank_lines_read_as_written(tmp_path: Path) -> None:
    from classifiers.datasets import read_dataset

    path = tmp_path / "mine.csv"
    body = 'text,label\r\n\r\n"hello, check my channel",spam\r\n"注文は、まだですか",ham\r\n\r\n"two\r\nlines",ham\r\n'
    path.write_text(body, encoding="utf-8-sig", newline="")
    rows = [(e.text, e.label) for e in read_dataset(path).examples]
    assert rows == [("hello, check my channel", "spam"), ("注文は、まだですか", "ham"), ("two\r\nlines", "ham")]


def test_data_with_labels_the_model_does_not_know_names_the_file_and_the_model(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    rows = [{"text": f"check my channel {i}", "label": "promo"} for i in range(10)]
    rows += [{"text": f"nice video {i}", "label": "regular"} for i in range(10)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = run(
        "eval", "--task", "spam", "--data", str(path), "--model", "spam-default", "--report", str(tmp_path / "r")
    )
    assert result.returncode == 2
    assert (
        f"{path} has labels ['promo', 'regular'] that spam-default@" in result.stderr
        and "['ham', 'spam']" in result.stderr
    )
    no_traceback(result)


@pytest.mark.parametrize("limit", ["0", "-3", "ten"])
def test_replay_limit_must_be_at_least_one(limit: str) -> None:
    result = run("eval", "--replay", "--limit", limit)
    assert result.returncode == 2 and "--limit: must be a whole number of at least 1" in result.stderr
    no_traceback(result)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0002, "<1 ms"), (0.04, "40 ms"), (0.3, "300 ms"), (0.9996, "1.0 s"), (1.64, "1.6 s"), (150, "2.5 min")],
)
def test_durations_below_a_second_are_shown_in_milliseconds(seconds: float, text: str) -> None:
    from worker.ages import duration_text

    assert duration_text(seconds) == text


def test_a_fast_training_run_says_how_many_milliseconds_it_took(tmp_path: Path) -> None:
    data = labelled(tmp_path / "d.jsonl")
    result = run("eval", "--task", "spam", "--data", str(data), "--train", "--report", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    seconds = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))["train_seconds"]
    from worker.ages import duration_text

    # 24 rows train in well under a second: '0.0s' / '0.3s' said nothing; the line shows milliseconds
    assert f"trained in {duration_text(seconds)};" in result.stdout, result.stdout
    assert seconds >= 1 or f"{round(seconds * 1000)} ms" in result.stdout
    trained = run("train", "spam", "--data", str(data), "--out", str(tmp_path / "m"))
    assert trained.returncode == 0, trained.stderr
    assert re.search(r"^wrote .* in (\d+ ms|\d+\.\d s)$", trained.stdout, re.MULTILINE), trained.stdout


def test_train_out_refuses_to_replace_a_file_or_other_directory_unless_forced(tmp_path: Path) -> None:
    data = labelled(tmp_path / "d.jsonl")
    notes = tmp_path / "notes.txt"
    notes.write_text("important", encoding="utf-8")
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.txt").write_text("mine", encoding="utf-8")
    for taken, what in ((notes, "a file"), (other, "a directory that is not a model")):
        refused = run("train", "spam", "--data", str(data), "--out", str(taken))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"--out {taken}: is {what}" in refused.stderr and "--force" in refused.stderr
        no_traceback(refused)
    # nothing was moved aside or replaced
    assert notes.read_text(encoding="utf-8") == "important" and (other / "a.txt").read_text(encoding="utf-8") == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "notes.txt", "other"]

    forced = run("train", "spam", "--data", str(data), "--out", str(notes), "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"replaced a file at {notes} (--force)" in forced.stdout
    assert (notes / "manifest.json").is_file() and not (tmp_path / ".notes.txt.old").exists()

    again = run("train", "spam", "--data", str(data), "--out", str(notes))  # retraining into a model: said, not silent
    assert again.returncode == 0, again.stderr
    ref = json.loads((notes / "manifest.json").read_text(encoding="utf-8"))
    assert f"replaced the model that was in {notes} ({ref['name']}@{ref['version']})" in again.stdout


def test_spam_data_labelled_1_and_0_is_read_as_spam_and_ham_and_the_output_says_so(tmp_path: Path) -> None:
    data = tmp_path / "public.csv"
    rows = [(f"WIN a free gift card and click bit.ly/win{i} now", 1) for i in range(30)]
    rows += [(f"where is my order KM-20{i}?", 0) for i in range(30)]
    data.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows), encoding="utf-8")
    result = run("eval", "--task", "spam", "--data", str(data), "--report", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert "note: labels '1' read as spam, '0' read as ham" in result.stdout
    # read as spam / ham, the data is what the policy's own model knows: its thresholds are proposed
    assert "evaluating the policy's spam model spam-default@" in result.stdout and "not proposed" not in result.stdout
    report = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))
    assert report["data"]["relabelled"] == {"0": "ham", "1": "spam"} and report["action_labels"] == ["spam"]
    diff = (tmp_path / "r" / "policy.diff.txt").read_text(encoding="utf-8")
    assert "The data's labels '1' read as spam, '0' read as ham." in diff

    flags = tmp_path / "flags.jsonl"
    flags.write_text(
        "".join(json.dumps({"text": t, "label": "True" if label else "false"}) + "\n" for t, label in rows),
        encoding="utf-8",
    )
    trained = run("train", "spam", "--data", str(flags), "--out", str(tmp_path / "m"))
    assert trained.returncode == 0, trained.stderr
    assert "flags.jsonl: labels 'True' read as spam, 'false' read as ham" in trained.stdout
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["labels"] == ["ham", "spam"] and "'True' read as spam" in manifest["training"][0]["note"]


@pytest.mark.parametrize(
    ("task", "labels"),
    [("spam", ["1", "0", "2"]), ("spam", ["1", "no"]), ("spam", ["spam", "0"]), ("abuse", ["1", "0"])],
)
def test_only_a_binary_tasks_whole_pair_of_labels_is_read_as_its_own(task: str, labels: list) -> None:
    from classifiers.datasets import Dataset, Example
    from eval.evaluate import binary_labels

    data = Dataset(path="mine.jsonl", sha256="0", examples=[Example(f"text {label}", label) for label in labels])
    assert binary_labels(task, data) is data  # a mix, or abuse (whose 1 could be hate or offensive): as it is


def test_jsonl_labels_written_as_json_numbers_or_booleans_are_read(tmp_path: Path) -> None:
    from classifiers.datasets import read_dataset

    numbers = tmp_path / "numbers.jsonl"
    numbers.write_text(
        "".join(json.dumps({"text": f"row {i}", "label": i % 2}) + "\n" for i in range(4))
        + json.dumps({"text": "yes", "label": True})
        + "\n",
        encoding="utf-8",
    )
    assert [e.label for e in read_dataset(numbers).examples] == ["0", "1", "0", "1", "true"]
    fraction = tmp_path / "fraction.jsonl"
    fraction.write_text(json.dumps({"text": "row", "label": 0.5}) + "\n", encoding="utf-8")
    result = run("train", "spam", "--data", str(fraction), "--dir", str(tmp_path / "models"))
    assert result.returncode == 1 and f"{fraction}:1" in result.stderr and "'label'" in result.stderr
    no_traceback(result)
