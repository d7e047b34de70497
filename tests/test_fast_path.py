"""The worker's fast path decides exactly as the plain path does.

Fast: a job's events rebuilt without a second validation (``trusted_event``), one shared text pass
for all models (``Pipeline.classify``). Plain: ``parse_event`` and each model's own scikit-learn
pipeline (``predict_proba``). Same events, same contexts, same clock: same decisions. And a job
payload that is not exactly an ingestor's canonical event is never trusted.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import BASE_EVENT
from worker.decide import ClassifierScores
from worker.demo import load_sample
from worker.exceptions import InvalidEvent
from worker.models import DecisionContext, parse_event, trusted_event
from worker.pipeline import Pipeline, classify

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
IGNORED = {"timings", "decided_at", "job_id", "scores"}


def _plain_scores(pipeline: Pipeline, events: list[Any]) -> list[dict[str, dict[str, float]]]:
    scores: list[dict[str, dict[str, float]]] = [{} for _ in events]
    for task in ("spam", "abuse", "intent"):
        for i, event in enumerate(events):
            model = getattr(pipeline.brands[event.brand], task)
            proba = np.round(model.predict_proba([event.text[:4000]])[0], 6)
            scores[i][task] = {label: float(p) for label, p in zip(model.labels, proba, strict=True)}
    return scores


# Scores are rounded to 6 decimals on both paths; the same probability computed in another order
# (equal to ~1e-16) can sit on a rounding boundary and round one step apart: sms_spam test row 143's
# spam probability is 0.9898235 on the plain path, 0.989824 / 0.989823 after rounding.
ROUNDING = 1e-6 + 1e-12


def _same(fast: Any, plain: Any) -> bool:
    """Equal, floats within one rounding step (``ROUNDING``), everything else exactly."""
    if isinstance(fast, float) and isinstance(plain, float):
        return abs(fast - plain) <= ROUNDING
    if isinstance(fast, dict) and isinstance(plain, dict):
        return fast.keys() == plain.keys() and all(_same(fast[k], plain[k]) for k in fast)
    if isinstance(fast, list) and isinstance(plain, list):
        return len(fast) == len(plain) and all(_same(f, p) for f, p in zip(fast, plain, strict=True))
    return bool(fast == plain) and type(fast) is type(plain)


def _compare(brands: dict[str, Any], raw: list[dict[str, Any]]) -> None:
    pipeline = Pipeline(brands)
    plain_events = [parse_event(e) for e in raw]
    fast_events = [trusted_event(e.model_dump(mode="json")) for e in plain_events]
    assert all(e is not None for e in fast_events)
    contexts = [DecisionContext() for _ in raw]
    fast, _ = pipeline.decide(fast_events, pipeline.classify(fast_events), contexts, now=NOW)  # type: ignore[arg-type]
    plain, _ = pipeline.decide(plain_events, _plain_scores(pipeline, plain_events), contexts, now=NOW)
    for f, p in zip(fast, plain, strict=True):
        fd, pd = f.decision.model_dump(mode="json"), p.decision.model_dump(mode="json")
        for task, labels in pd["scores"].items():
            for label, value in labels.items():
                assert abs(fd["scores"][task][label] - value) <= ROUNDING, (pd["message_id"], task, label)
        kept_fast = {k: v for k, v in fd.items() if k not in IGNORED}
        kept_plain = {k: v for k, v in pd.items() if k not in IGNORED}
        assert _same(kept_fast, kept_plain), (kept_fast, kept_plain)
        assert (f.optout_op, f.away_sent) == (p.optout_op, p.away_sent)


def test_fast_path_decides_the_demo_traffic_as_the_plain_path(brands) -> None:
    _compare(brands, load_sample())


@pytest.mark.shared_data
def test_fast_path_decides_a_shared_dataset_sample_as_the_plain_path(brands, shared: Path) -> None:
    raw = []
    for name in (
        "clinc150.jsonl",
        "sms_spam_collection.jsonl",
        "davidson_hate_offensive.jsonl",
        "bitext_customer_support.jsonl",
    ):
        rows = [json.loads(line) for line in (shared / name).read_text(encoding="utf-8").splitlines()]
        for k, row in enumerate([r for r in rows if r.get("split") == "test"][:150]):
            event = {
                **copy.deepcopy(BASE_EVENT),
                "id": f"{name}-{k}",
                "conversation_id": f"c-{name}-{k}",
                "text": row["text"],
                "kind": "comment" if k % 2 else "dm",
                "post_id": "p-1" if k % 2 else None,
            }
            try:
                parse_event(event)
            except InvalidEvent:
                continue  # a few SMS texts hold control characters: ingest rejects them
            raw.append(event)
    assert len(raw) > 550
    _compare(brands, raw)


def _canonical() -> dict[str, Any]:
    return parse_event({**BASE_EVENT, "post_id": None, "metadata": {"order": {"id": 7}}}).model_dump(mode="json")


BAD: list[tuple[str, Any]] = [
    ("id", ""),
    ("id", 7),
    ("id", "x" * 257),
    ("id", "a\u202eb"),
    ("id", "a\x00b"),
    ("brand", "Demo Shop"),
    ("brand", None),
    ("platform", "myspace"),
    ("kind", "post"),
    ("kind", "comment"),
    ("conversation_id", None),
    ("post_id", 3),
    ("text", None),
    ("text", "x" * 20_001),
    ("text", "hi\x07"),
    ("text", "hi\u202e"),
    ("text", "\ud800"),
    ("created_at", "2026-11-24T10:00:00"),
    ("created_at", "yesterday"),
    ("created_at", 5),
    ("metadata", []),
    ("metadata", {"n": 10**60}),
    ("metadata", {"blob": "x" * 20_000}),
    ("unreadable", "Sticker!"),
    ("author", {"id": "u"}),
    ("author", "u-1"),
    ("extra", 1),
]
BAD_AUTHOR: list[tuple[str, Any]] = [
    ("id", ""),
    ("name", "x" * 257),
    ("name", "\x1b[31m"),
    ("locale", "english please"),
    ("tags", "vip"),
    ("tags", [""]),
    ("tags", ["x" * 65]),
    ("tags", ["v"] * 51),
    ("tags", ["a\u2066"]),
    ("extra", True),
]


def test_only_canonical_events_are_trusted() -> None:
    good = _canonical()
    assert trusted_event(good) == parse_event(good)
    fast, plain = trusted_event(good), parse_event(good)
    for a, b in ((fast, plain), (fast.author, plain.author)):  # built as validation builds them
        assert list(a.__dict__) == list(b.__dict__) and a.model_fields_set == b.model_fields_set
    for field, value in BAD:
        event = copy.deepcopy(good)
        event[field] = value
        assert trusted_event(event) is None, (field, value)
    del good["metadata"]
    assert trusted_event(good) is None
    for field, value in BAD_AUTHOR:
        event = _canonical()
        event["author"][field] = value
        assert trusted_event(event) is None, ("author", field, value)
    for bad in (None, [], "{}", b"{}", 42):
        assert trusted_event(bad) is None


#: Values Python's ``re`` ``$`` or ``datetime.fromisoformat`` accept where validation may not.
EDGE = [
    ("brand", "demo-shop\n"),
    ("unreadable", "emoji_only\n"),
    ("created_at", "2026-11-29T10:00:00+05"),
    ("created_at", "2026-11-29T10:00:00+0530"),
    ("created_at", "2026-11-29 10:00:00Z"),
    ("created_at", "20261129T100000Z"),
    ("created_at", "2026-W48-7T10:00:00Z"),
    ("created_at", "2026-11-29T10:00:00+05:30:15"),
    ("created_at", "2026-11-29T10:00:00"),
    ("created_at", "2026-11-29T10:00:00Z\n"),
    ("created_at", "\u0662026-11-29T10:00:00Z"),
    ("created_at", "2026-11-29T10:00:00Z"),
    ("created_at", "2026-11-29T10:00:00.5+05:00"),
    ("created_at", "2026-11-29T10:00:00.123456-03:00"),
]


def test_whatever_is_trusted_validates_to_the_same_event() -> None:
    """trusted_event never accepts what parse_event refuses or changes (a trailing newline after a
    pattern, ISO forms outside RFC 3339), and still trusts pydantic's own output for each accepted one."""
    trusted = 0
    cases = [*EDGE, *(("author.locale", v) for v in ("en\n", "ja-JP\n", "ja-JP", "en"))]
    for field, value in cases:
        event = _canonical()
        if field.startswith("author."):
            event["author"][field.removeprefix("author.")] = value
        else:
            event[field] = value
        fast = trusted_event(event)
        try:
            plain = parse_event(event)
        except InvalidEvent:
            assert fast is None, (field, value)
            continue
        if fast is not None:
            trusted += 1
            assert fast == plain, (field, value)
        # what ingest would send for it is trusted
        assert trusted_event(plain.model_dump(mode="json")) == plain, (field, value)
    assert trusted >= 5  # the canonical forms among the cases


def test_a_malformed_job_payload_is_rejected_with_its_reason(client, settings, brands) -> None:
    from worker.store import Store

    store = Store(client, settings.key_prefix)
    bad = {**_canonical(), "id": "bad-1", "platform": "myspace"}
    report = Pipeline(brands).process([_canonical(), bad, "not an event"], store, job_id="j-1")
    assert report.decided == ["m-1"]
    assert [r["source"] for r in report.rejected] == ["job j-1 message 1", "job j-1 message 2"]
    assert "platform" in report.rejected[0]["reason"]


def test_classified_scores_are_known_plain_and_decide_as_checked_ones(brands) -> None:
    """``Pipeline.classify`` marks its scores (ClassifierScores: str labels, float scores), which
    decide takes as plain without looking at each; the same scores as a dict are checked label by
    label, and decide the same, to the stored bytes."""
    pipeline = Pipeline(brands)
    events = [parse_event(e) for e in load_sample()]
    scores = pipeline.classify(events)
    assert all(type(s) is ClassifierScores and _checked_plain(s) for s in scores)
    contexts = [DecisionContext() for _ in events]
    marked, _ = pipeline.decide(events, scores, contexts, now=NOW)
    checked, _ = pipeline.decide(events, [dict(s) for s in scores], contexts, now=NOW)
    for m, c, s in zip(marked, checked, scores, strict=True):
        m.decision.timings = c.decision.timings = {}
        assert m.decision.json_bytes() == c.decision.json_bytes()
        assert type(m.decision.scores) is dict and m.decision.scores == s and m.decision.scores is not s


def test_scores_of_a_model_with_labels_not_str_are_not_marked(brands) -> None:
    brand = brands["demo-shop"]
    odd = copy.copy(brand.intent)
    odd.labels = [np.str_(label) for label in brand.intent.labels]
    texts = ["where is my order KM-204815", "hello"]
    tasks = {"spam": [(0, brand.spam), (1, brand.spam)], "intent": [(0, odd)]}
    first, second = classify(tasks, texts)
    assert type(first) is dict and not _checked_plain(first)  # np.str_ labels: validated as before
    assert type(second) is ClassifierScores and second.keys() == {"spam"}
    assert first["spam"].keys() == second["spam"].keys() == set(brand.spam.labels)


def _checked_plain(scores: dict[str, dict[str, float]]) -> bool:
    return all(type(label) is str and type(p) is float for labels in scores.values() for label, p in labels.items())
