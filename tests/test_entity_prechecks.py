"""The entity pass skips a built-in search only when it cannot match (worker.entities._may_match):
the entities found are exactly those of running every search, on the demo traffic, a
shared-dataset sample and texts made to sit on the edges of the checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import worker.entities as entities
from worker.demo import load_sample

EDGES = [
    "",
    "@",
    "mail me: aiko@example.com.",
    "ＡＩＫＯ＠ＥＸＡＭＰＬＥ．ＣＯＭ",  # fullwidth: NFKC makes it an address
    "aiko at example dot com",
    "see WWW.KOMOREBI.EXAMPLE/orders!",
    "see wWw.komorebi.example",
    "www komorebi example",
    "ftp://files.example/x and HTTPS://Komorebi.example/a?b=c",
    "https:/ not a url",
    "call +81 90-1234-5678 or (03) 1234 5678",
    "call ０９０１２３４５６７８",  # fullwidth digits
    "call ٠٩٠١٢٣٤٥٦٧٨",  # Arabic-Indic digits: \\d matches them
    "order KM-204815 and 0901234567",
    "no digits, no at sign, no link.",
    "İWWW.EXAMPLE.COM",  # lower() changes the length before the match
    "ſhop at https://example.com",
]


def _both(text: str, policy) -> tuple[dict, dict]:
    fast = entities.extract(text, policy)
    check = entities._may_match
    try:
        entities._may_match = lambda name, text: True  # type: ignore[assignment]
        every = entities.extract(text, policy)
    finally:
        entities._may_match = check  # type: ignore[assignment]
    return fast, every


def test_skipped_searches_change_nothing_on_the_demo_traffic_and_edges(brands) -> None:
    policy = brands["demo-shop"].policy
    texts = [e["text"] for e in load_sample() if e.get("text")] + EDGES
    found = 0
    for text in texts:
        fast, every = _both(text, policy)
        assert fast == every, text
        found += bool(every)
    assert found >= 10  # the edges do hold addresses, links and numbers


def test_each_check_is_needed() -> None:
    """A check that said "cannot match" too often would be caught: these texts each match."""
    assert entities._may_match("email", "a@b.co") and entities.EMAIL.search("a@b.co")
    assert entities._may_match("url", "WWW.EXAMPLE.COM") and entities.URL.search("WWW.EXAMPLE.COM")
    assert entities._may_match("phone", "٠٩٠١٢٣٤٥٦٧٨") and entities.PHONE.search("٠٩٠١٢٣٤٥٦٧٨")
    assert not entities._may_match("email", "no at") and not entities._may_match("url", "a.b www")


@pytest.mark.shared_data
def test_skipped_searches_change_nothing_on_a_shared_dataset_sample(brands, shared: Path) -> None:
    policy = brands["demo-shop"].policy
    for name in ("clinc150.jsonl", "sms_spam_collection.jsonl", "bitext_customer_support.jsonl"):
        rows = [json.loads(line) for line in (shared / name).read_text(encoding="utf-8").splitlines()]
        for row in [r for r in rows if r.get("split") == "test"][:400]:
            fast, every = _both(row["text"], policy)
            assert fast == every, row["text"]
