"""Policies load, validate loudly (file, field path, line, reason) and merge overrides."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from worker.exceptions import PolicyError
from worker.policy import load_policy, normalize_keyword
from worker.settings import REPO_ROOT

DEMO = REPO_ROOT / "policies" / "demo-shop.yaml"


def broken(tmp_path: Path, old: str, new: str) -> Path:
    text = DEMO.read_text(encoding="utf-8")
    assert old in text, f"test setup: {old!r} not in the demo policy"
    target = tmp_path / "demo-shop.yaml"
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    return target


def test_demo_policy_loads_with_a_content_hash() -> None:
    loaded = load_policy(DEMO)
    assert loaded.brand == "demo-shop"
    assert loaded.version.startswith("sha256:") and len(loaded.version) == 7 + 16


def test_threshold_out_of_range_names_field_and_line(tmp_path: Path) -> None:
    path = broken(tmp_path, "spam: {spam: 0.85}", "spam: {spam: 1.85}")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert str(path) in message
    assert "thresholds.spam.spam" in message
    line = next(i for i, l in enumerate(path.read_text().splitlines(), 1) if "1.85" in l)
    assert f"line {line}" in message
    assert "less than or equal to 1" in message


def test_unknown_key_and_missing_required_key(tmp_path: Path) -> None:
    path = broken(tmp_path, "language_fallback: escalate", "language_fallbak: escalate")
    with pytest.raises(PolicyError, match="language_fallbak.*unknown field"):
        load_policy(path)
    path = broken(tmp_path, "    default: 0.7\n", "")
    with pytest.raises(PolicyError, match=r"thresholds\.intent: missing \['default'\]"):
        load_policy(path)


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    path = broken(tmp_path, "  spam: spam-default\n", "  spam: spam-default\n  spam: other\n")
    with pytest.raises(PolicyError, match="duplicate key 'spam'"):
        load_policy(path)


def test_bad_regex_timezone_and_escalation_without_role(tmp_path: Path) -> None:
    for old, new, reason in [
        ("(?P<digits>\\d{6})", "(?P<digits>\\d{6}", "not a valid regular expression"),
        ("timezone: Asia/Tokyo", "timezone: Mars/Olympus", "unknown IANA time zone"),
        (
            "human_agent: {action: escalate, role: tier1, priority: high}",
            "human_agent: {action: escalate}",
            "role is required",
        ),
        ('mon: ["09:00-18:00"]', 'mon: ["18:00-09:00"]', "ends before it starts"),
        ("format: 'KM-{digits}'", "format: 'KM-{digits.__class__}'", "placeholders are"),
    ]:
        with pytest.raises(PolicyError, match=reason):
            load_policy(broken(tmp_path, old, new))


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = broken(tmp_path, "languages: [en, ja]", "languages: [en, ja")
    with pytest.raises(PolicyError, match=r"line \d+, column \d+: YAML syntax error"):
        load_policy(path)


def test_brand_must_match_file_name(tmp_path: Path) -> None:
    target = tmp_path / "other-shop.yaml"
    shutil.copy(DEMO, target)
    with pytest.raises(PolicyError, match="name it demo-shop.yaml"):
        load_policy(target)


def test_overrides_merge_per_platform_and_kind() -> None:
    policy = load_policy(DEMO).policy
    dm = policy.view("instagram", "dm")
    comment = policy.view("youtube", "comment")
    whatsapp = policy.view("whatsapp", "dm")
    assert dm.thresholds.spam["spam"] == 0.85 and dm.fallback.action == "escalate"
    assert comment.thresholds.spam["spam"] == 0.7 and comment.fallback.action == "ignore"
    assert comment.overrides_applied == ["public_comments"]
    assert whatsapp.intent_threshold("pricing") == 0.8
    assert whatsapp.intent_threshold("human_agent") == 0.5  # label-specific beats the override's default
    assert dm.intent_threshold("pricing") == 0.7


def test_business_hours_in_the_policy_time_zone() -> None:
    hours = load_policy(DEMO).policy.business_hours
    assert hours is not None
    assert hours.is_open(datetime.fromisoformat("2026-11-24T10:00:00+09:00"))  # Tuesday 10:00 JST
    assert hours.is_open(datetime.fromisoformat("2026-11-24T01:30:00+00:00"))  # same moment-ish, in UTC
    assert not hours.is_open(datetime.fromisoformat("2026-11-24T18:00:00+09:00"))  # closing time is exclusive
    assert not hours.is_open(datetime.fromisoformat("2026-11-28T11:00:00+09:00"))  # Saturday
    assert not hours.is_open(datetime.fromisoformat("2026-12-31T11:00:00+09:00"))  # holiday


def test_business_hours_look_their_time_zone_up_once(monkeypatch) -> None:
    import worker.policy

    hours = load_policy(DEMO).policy.business_hours
    assert hours is not None
    looked_up: list[str] = []
    real = worker.policy.ZoneInfo

    def counting(key: str):
        looked_up.append(key)
        return real(key)

    monkeypatch.setattr(worker.policy, "ZoneInfo", counting)
    answers = [hours.is_open(datetime.fromisoformat(f"2026-11-24T{h:02}:00:00+09:00")) for h in (8, 10, 12, 18, 20)]
    assert answers == [False, True, True, False, False]
    assert looked_up in ([], [hours.timezone])  # once per policy (or already), not once per message


def test_keyword_normalisation_ignores_case_width_and_punctuation() -> None:
    assert normalize_keyword("ＳＴＯＰ!") == normalize_keyword("stop") == "stop"
    assert normalize_keyword(" 配信停止。") == "配信停止"


def test_worker_refuses_to_start_with_a_broken_policy(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    broken(policies, "abuse: {hate: 0.6, offensive: 0.8}", "abuse: {hate: high, offensive: 0.8}")
    env = {**os.environ, "REPLYGUARD_POLICIES_DIR": str(policies), "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "worker", "--burst"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert str(policies / "demo-shop.yaml") in result.stderr
    assert "thresholds.abuse.hate" in result.stderr
    assert "valid number" in result.stderr
