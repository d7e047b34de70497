"""Fuzzing bad input: hypothesis-generated and byte-mutated real events, ingest files, policy and
template YAML. Whatever comes in, the answer is a value or replyguard's own error naming what is
wrong; never a traceback, and one bad line never costs the others.

Example counts are kept small (the whole module runs in well under a minute); the mutations are
seeded from the demo brand's real traffic, policy and templates.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from tests.conftest import make_event
from worker import defaults
from worker.exceptions import InvalidEvent, PolicyError, ReplyguardError, TemplateError
from worker.ingest import Ingestor, ingest_stream
from worker.models import InboundEvent, parse_event
from worker.policy import EntityPattern, load_policy
from worker.settings import REPO_ROOT
from worker.templates import load_templates

TRAFFIC = [line for line in (REPO_ROOT / "worker" / "demo" / "traffic.jsonl").read_bytes().splitlines() if line.strip()]
POLICY = (REPO_ROOT / "policies" / "demo-shop.yaml").read_bytes()
TEMPLATES = (REPO_ROOT / "prompts" / "templates" / "demo-shop.yaml").read_bytes()
FUZZ = hsettings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- byte-level mutation -------------------------------------------------------------------

SPICE = [
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xc2\x85",
    b"\xe2\x80\xae",
    b"\\ud800",
    b"[" * 50,
    b'{"a":' * 40,
    b"9" * 5000,
    b"1e999",
    b"NaN",
    b"-Infinity",
    b'"',
    b"\\",
    b"}",
    b"]",
    b",",
    b":",
    b"null",
    b"\n",
    b"\r",
    b"\t",
    "\u202e\u2066".encode(),
    "\x85\x9b".encode(),
    b"\xef\xbb\xbf",
]


def mutate(data: bytes, rng: random.Random, rounds: int = 3) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, rounds)):
        op = rng.randrange(6)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip a byte
            buf[min(at, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:  # insert something nasty
            buf[at:at] = rng.choice(SPICE)
        elif op == 2 and buf:  # delete a span
            del buf[at : at + rng.randint(1, 12)]
        elif op == 3 and buf:  # duplicate a span
            end = min(len(buf), at + rng.randint(1, 40))
            buf[at:at] = buf[at:end]
        elif op == 4:  # random bytes
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        else:  # truncate
            del buf[at:]
    return bytes(buf)


def outcome(raw: object) -> InboundEvent | InvalidEvent:
    """parse_event's answer; anything but an event or InvalidEvent fails the test."""
    try:
        return parse_event(raw, source="fuzz:1")
    except InvalidEvent as exc:
        assert exc.problems and all(p.reason for p in exc.problems), exc
        assert str(exc).startswith("event fuzz:1 is invalid")
        return exc


def test_byte_mutations_of_real_events_never_crash_parse_event() -> None:
    rng = random.Random(11)
    results = {"ok": 0, "invalid": 0}
    for i in range(4000):
        raw = mutate(TRAFFIC[i % len(TRAFFIC)], rng)
        result = outcome(raw)
        results["ok" if isinstance(result, InboundEvent) else "invalid"] += 1
    assert results["invalid"] > 1000 and results["ok"] > 100  # the mutations do hit both sides


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)
FIELDS = [
    "id",
    "brand",
    "platform",
    "kind",
    "conversation_id",
    "post_id",
    "author",
    "text",
    "created_at",
    "metadata",
    "author.id",
    "author.name",
    "author.locale",
    "author.tags",
]


@FUZZ
@given(field=st.sampled_from(FIELDS), value=JSON, as_text=st.booleans())
def test_any_value_in_any_field_is_an_event_or_named_error(field, value, as_text) -> None:
    event = make_event()
    if "." in field:
        outer, inner = field.split(".")
        event[outer] = {**event[outer], inner: value}
    else:
        event[field] = value
    raw = json.dumps(event, ensure_ascii=False) if as_text else event
    result = outcome(raw)
    if isinstance(result, InvalidEvent) and field not in ("metadata",):
        assert any(p.where.startswith(field) or p.where in ("(event)", "(json)") for p in result.problems), result


@FUZZ
@given(text=st.text(max_size=200))
def test_any_text_is_accepted_or_named(text) -> None:
    result = outcome(make_event(text=text))
    if isinstance(result, InvalidEvent):
        assert [p.where for p in result.problems] == ["text"]
    else:
        assert not any(c in result.text for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def test_deep_nesting_is_refused_before_parsing_without_recursion() -> None:
    for depth in (defaults.MAX_JSON_DEPTH, 10_000, 200_000):
        raw = '{"id": "x", "metadata": {"a": ' + "[" * depth + "]" * depth + "}}"
        with pytest.raises(InvalidEvent) as info:
            parse_event(raw, source="events.jsonl:3")
        where = info.value.problems[0]
        assert where.where == "(json)" and f"deeper than {defaults.MAX_JSON_DEPTH}" in where.reason
    nested: object = "leaf"
    for _ in range(5000):  # a Python object (the API), not text
        nested = {"k": nested}
    with pytest.raises(InvalidEvent, match="metadata.k.k.*nested deeper"):
        parse_event(make_event(metadata=nested))
    # brackets inside strings are text, not nesting
    assert parse_event(make_event(text="[" * 500 + "{" * 500)).text.startswith("[[[")
    ok = make_event(metadata={"a": {"b": {"c": [1, [2, [3]]]}}})
    assert parse_event(json.dumps(ok)).metadata == ok["metadata"]


def test_huge_numbers_name_their_field() -> None:
    raw = json.dumps(make_event(metadata={"order": {"total": 1}})).replace('"total": 1', '"total": ' + "9" * 5000)
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw)
    assert [str(p) for p in info.value.problems] == [
        f"metadata.order.total: integer of 5000 digits; the limit is {defaults.MAX_JSON_INT_DIGITS}"
    ]
    for bad, reason in (("1e999", "too large"), ("NaN", "not a JSON number"), ("-Infinity", "not a JSON number")):
        raw = json.dumps(make_event(metadata={"x": 0})).replace('"x": 0', f'"x": {bad}')
        with pytest.raises(InvalidEvent, match=f"metadata.x: .*{reason}"):
            parse_event(raw)
    with pytest.raises(InvalidEvent, match="metadata.n: integer over"):
        parse_event(make_event(metadata={"n": 10**100}))
    assert parse_event(make_event(metadata={"n": 2**64, "f": 1.5})).metadata["n"] == 2**64


def test_c1_controls_are_refused_and_bidi_controls_stripped_or_refused() -> None:
    for c1 in ("\x85", "\x9b", "\x80", "\x9f"):
        with pytest.raises(InvalidEvent, match=f"text: contains control character U\\+{ord(c1):04X}"):
            parse_event(make_event(text=f"hello{c1}world"))
    event = parse_event(
        make_event(text="ships in \u202e2\u202c business days", author={"id": "u-1", "name": "\u2068Aiko\u2069"})
    )
    assert event.text == "ships in 2 business days" and event.author.name == "Aiko"
    for field, value in (("id", "m\u202e1"), ("conversation_id", "c\u2066x"), ("author", {"id": "u\u202d1"})):
        with pytest.raises(InvalidEvent, match="bidi control"):
            parse_event(make_event(**{field: value}))
    assert parse_event(make_event(text="שלום\u200f hello")).text == "שלום\u200f hello"  # RLM is text


# -- ingest: one bad line is rejected by itself ------------------------------------------------


def mutated_file(rng: random.Random, lines: int = 60) -> tuple[bytes, dict[int, bool]]:
    """A JSONL file of real events (fresh ids), some mutated; line number -> valid?"""
    out, expected = [], {}
    for number in range(1, lines + 1):
        event = json.loads(TRAFFIC[number % len(TRAFFIC)])
        event["id"] = f"fz-{rng.randrange(10**9)}-{number}"
        raw = json.dumps(event, ensure_ascii=False).encode()
        if rng.random() < 0.4:
            raw = mutate(raw, rng).replace(b"\n", b" ").replace(b"\r", b" ")
        if number == 7:
            raw = b'{"metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        if number == 9:
            raw = raw[:-1] + b', "extra": ' + b"7" * 6000 + b"}"
        if number == 11:
            raw = b"x" * (defaults.MAX_EVENT_BYTES + 10)
        out.append(raw)
        if not raw.strip():
            continue
        try:
            parse_event(raw)
            expected[number] = True
        except InvalidEvent:
            expected[number] = False
    return b"\n".join(out) + b"\n", expected


def test_mutated_ingest_files_reject_exactly_the_bad_lines(client, settings) -> None:
    rng = random.Random(4)
    for _ in range(20):
        data, expected = mutated_file(rng)
        stream = BytesIO(data)
        stream.name = "events.jsonl"
        with Ingestor(client, settings, batch_wait=60) as ingestor:
            report = ingest_stream(ingestor, stream)
        bad_lines = sorted(int(exc.source.rsplit(":", 1)[1]) for exc in report.invalid)
        assert bad_lines == sorted(n for n, ok in expected.items() if not ok)
        assert len(report.accepted) + len(report.skipped) == sum(expected.values())
        assert {7, 9, 11} <= set(bad_lines)
        assert all(exc.source.startswith("events.jsonl:") and exc.problems for exc in report.invalid)
    client.flushdb()


def test_cli_ingest_of_a_hostile_file_names_each_bad_line_and_keeps_the_rest(
    client, settings, tmp_path, redis_url
) -> None:
    rng = random.Random(99)
    data, expected = mutated_file(rng, lines=40)
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-m", "worker.cli", "ingest", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin", "REPLYGUARD_LOG_LEVEL": "ERROR"},
    )
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-2000:]
    bad = sorted(n for n, ok in expected.items() if not ok)
    for number in bad:
        assert f"hostile.jsonl:{number} is invalid" in proc.stdout + proc.stderr
    for number in (n for n, ok in expected.items() if ok):
        assert f"hostile.jsonl:{number} " not in proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["enqueued"] == sum(expected.values())  # --json: stdout is only JSON
    assert proc.returncode in (0, 1, 2), proc.returncode


# -- policy and template YAML ----------------------------------------------------------------


def _load(kind: str, data: bytes, tmp_path: Path) -> None:
    if kind == "policy":
        path = tmp_path / "demo-shop.yaml"
        path.write_bytes(data)
        load_policy(path)
    else:
        path = tmp_path / "demo-shop.yaml"
        path.write_bytes(data)
        load_templates(path)


@pytest.mark.parametrize("kind,original", [("policy", POLICY), ("templates", TEMPLATES)])
def test_mutated_policy_and_template_files_load_or_name_the_problem(kind, original, tmp_path) -> None:
    rng = random.Random(7)
    expected_error = PolicyError if kind == "policy" else TemplateError
    failures = 0
    started = time.monotonic()
    for i in range(300):
        data = mutate(original, rng, rounds=4)
        if i % 10 == 0:  # whole-line edits: YAML structure rather than bytes
            lines = data.split(b"\n")
            j = rng.randrange(len(lines))
            lines[j : j + 1] = [
                rng.choice(
                    [
                        b"  - [" * 30,
                        b"x: &a [*a]",
                        b"- !!python/object:os.system ls",
                        b"  pattern: '(\\d|\\d\\d)+$'",
                        b"\t",
                        b"a: " + b"{" * 200,
                        b"thresholds: {spam: {spam: 1e999}}",
                        b"  " + lines[j],
                    ]
                )
            ]
            data = b"\n".join(lines)
        try:
            _load(kind, data, tmp_path)
        except expected_error as exc:
            failures += 1
            assert exc.problems and all(str(p) for p in exc.problems)
    assert failures > 100
    assert time.monotonic() - started < 30


@FUZZ
@given(value=JSON)
def test_any_yaml_value_in_a_policy_field_is_named(value, tmp_path_factory) -> None:
    import yaml

    tmp = tmp_path_factory.mktemp("p")
    policy = yaml.safe_load(POLICY)
    rng = random.Random(json.dumps(value, default=str))
    key = rng.choice(sorted(policy))
    policy[key] = value
    try:
        _load("policy", yaml.safe_dump(policy, allow_unicode=True).encode(), tmp)
    except PolicyError as exc:
        assert exc.problems
    except ReplyguardError as exc:  # pragma: no cover - a different error class is still wrong
        pytest.fail(f"{type(exc).__name__}: {exc}")


def test_alias_bombs_and_deep_yaml_are_named(tmp_path) -> None:
    laughs = b"".join(
        b"l%d: &l%d [%s]\n" % (i, i, b", ".join([b"*l%d" % (i - 1)] * 9) if i else b'"lol"') for i in range(10)
    )
    for kind, original in (("policy", POLICY), ("templates", TEMPLATES)):
        for extra, reason in (
            (b"x_bomb:\n" + b"\n".join(b"  " + line for line in laughs.splitlines()), "expands to more than"),
            (b"deep: " + b"[" * 5000 + b"]" * 5000, "nested too deeply"),
            (b"big: " + b"9" * 5000, "unreadable value"),
        ):
            started = time.process_time()  # CPU time: wall time is noisy on a shared machine
            with pytest.raises(PolicyError if kind == "policy" else TemplateError, match=reason):
                _load(kind, original + b"\n" + extra + b"\n", tmp_path)
            assert time.process_time() - started < 5


def test_catastrophic_entity_patterns_are_refused_and_searches_are_bounded(tmp_path) -> None:
    bad = POLICY.replace(
        b"pattern: '(?i)(?<![a-z0-9])km[-\\s]?(?P<digits>\\d{6})(?!\\d)'", b"pattern: '(?P<digits>(\\d|\\d\\d)+)$'"
    )
    assert bad != POLICY
    path = tmp_path / "demo-shop.yaml"
    path.write_bytes(bad)
    with pytest.raises(PolicyError, match=r"entities.order_id.pattern \(line \d+\): backtracks catastrophically"):
        load_policy(path)
    spec = EntityPattern(pattern=r"(?i)(?<![a-z0-9])km[-\s]?(?P<digits>\d{6})(?!\d)", format="KM-{digits}")
    assert [spec.value(m) for m in spec.find("order km 204815, KM-204816")] == ["KM-204815", "KM-204816"]
    started = time.monotonic()
    slow = EntityPattern.model_construct(pattern=r"(\d|\d\d)+$")  # bypasses validation, as a stale policy might
    assert slow.find("1" * 40 + "x") == []
    assert time.monotonic() - started < 1.0
