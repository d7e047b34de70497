"""The entity pass skips a built-in search only when it cannot match (worker.entities._may_match):
the entities found are exactly those of running every search, on the demo traffic, a
shared-dataset sample and texts made to sit on the edges of the checks. A policy pattern's search
(EntityPattern.find, its arguments given by position) finds what the keyword call finds."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import regex

import worker.entities as entities
from worker import defaults
from worker.demo import load_sample
from worker.policy import EntityPattern

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
    "room 0, 1, 2, 3, 4, 5, 6, 7, 8 or 9",
    "only a 9",
    "٣ Arabic-Indic three, ๓ Thai three, ³ superscript three, ⅢRoman",
    "注文番号KM-204815です。電話は090-1234-5678",
    "注文番号ＫＭ２０４８１５、電話０９０１２３４５６７８",  # fullwidth: NFKC makes them ASCII
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
    assert not entities._may_match("phone", "no digits") and not entities._may_match("phone", "³ is no digit")


def test_the_ascii_digit_check_is_the_digit_search() -> None:
    """ASCII text is checked for digits by substring tests, other text by the search: the same answer."""
    texts = [*EDGES, *(f"x{d}y" for d in "0123456789"), "".join(chr(c) for c in range(128) if not chr(c).isdigit())]
    texts += [chr(c) for c in range(0x3000)] + ["\U0001d7ce", "\U0001d7ce1"]  # 𝟎, mathematical bold zero
    for text in texts:
        assert entities._may_match("phone", text) == bool(entities._DIGIT.search(text)), repr(text)


PATTERNS = [
    r"(?i)(?<![a-z0-9])km[-\s]?(?P<digits>\d{6})(?!\d)",  # the demo policy's order number
    r"(?P<ref>[A-Z]{2}\d{4})",
    r"(?i)booking\s*(?:ref(?:erence)?)?[:#]?\s*(?P<code>[a-z0-9]{6})",
    r"予約番号\s*(?P<n>\d+)",
    r"\b\w+@\w+\b",
    r"(?<=#)\d+",
    r"x*",  # empty matches too
    r"[[:alpha:]]+(?=\s)",
    r"\p{Han}+",
    r"(?P<digits>(\d|\d\d)+)$",  # catastrophic: bounded by the timeout either way
    r"(?i)booking\s*(?:ref)?[:#]?\s*(?P<code>[a-z0-9]{6})",
    r"KM-(?P<digits>\d{6})",
    r"abc(?i:def)",
    r"(?i)(?:abc){e<=1}x",  # fuzzy: its required text is the x alone
    r"(?:abcd){e<=1}",  # fuzzy: none
    r"(?fi)strasse",  # full case folding: ß matches ss; not checked
    r"(?i)k\N{KELVIN SIGN}m",
    r"(?i)ſhop",
    r"(?i)İd",
    r"(?r)abc\d",  # searches backwards: not checked
    r"(?<=ab)c",
    r"(ab)?c\1",
]
TEXTS = [
    *EDGES,
    "Booking ref: ab12cd, booking #ZZ9999 and KM 123456",
    "予約番号 12345 と 予約番号６７８",
    "#12 #345 ##6",
    "Ⅻ ﬁ ＡＢ１２３４ Ǆ ß ẞ İ ı",
    "a\u0301\u0308 e\u0301 \u200b zero-width \ufeff",
    "1" * 30 + "x",
    "BOOKING #AB12CD; Booking ref XY98ZW; booKing: 123456",
    "abcDEF abcdef ABCdef abcxyz aBcx abx",
    "STRASSE straße Straße strasse",
    "KM \u212am \u212aM km kM Km",  # \u212a: the Kelvin sign, which ignoring case matches k
    "ſhop SHOP shop \u017fHOP",
    "İd id ID i\u0307d ıd",
    "km-123456 KM-123456 km–123456",
    "",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_find_by_position_finds_what_the_keyword_call_finds(pattern: str) -> None:
    spec = EntityPattern.model_construct(pattern=pattern)  # unvalidated: the catastrophic one as well
    compiled = regex.compile(pattern, flags=regex.V0)
    for text in TEXTS:
        try:
            expected = [
                (m.span(), m.groupdict())
                for m in compiled.finditer(text, timeout=defaults.ENTITY_REGEX_TIMEOUT_SECONDS)
            ]
        except TimeoutError:
            expected = None
        found = [(m.span(), m.groupdict()) for m in spec.find(text)]
        if expected is None:  # out of time: the matches found before, none here
            assert found == [], (pattern, text)
        else:
            assert found == expected, (pattern, text)


@pytest.mark.shared_data
def test_skipped_searches_change_nothing_on_a_shared_dataset_sample(brands, shared: Path) -> None:
    policy = brands["demo-shop"].policy
    for name in ("clinc150.jsonl", "sms_spam_collection.jsonl", "bitext_customer_support.jsonl"):
        rows = [json.loads(line) for line in (shared / name).read_text(encoding="utf-8").splitlines()]
        for row in [r for r in rows if r.get("split") == "test"][:400]:
            fast, every = _both(row["text"], policy)
            assert fast == every, row["text"]


def test_the_required_text_is_found_where_it_is_sound() -> None:
    required = {p: EntityPattern.model_construct(pattern=p).required for p in PATTERNS}
    assert required[PATTERNS[0]] == ("km", True)  # the demo policy's order number is prechecked
    assert required[r"KM-(?P<digits>\d{6})"] == ("KM-", False)
    assert required[r"予約番号\s*(?P<n>\d+)"] == ("予約番号", False)
    for unchecked in (r"(?fi)strasse", r"(?r)abc\d", r"(?i)k\N{KELVIN SIGN}m", r"(?:abcd){e<=1}", r"\p{Han}+"):
        assert required[unchecked] is None, unchecked


def test_the_required_text_precheck_on_random_text() -> None:
    """Random texts over the required texts' letters in both cases and the characters that match
    them ignoring case: the prechecked search finds exactly what the search finds."""
    rng = random.Random(10)
    alphabet = "kmKM-0123456789 abcABCxXsSß\u212a\u017fİıi\u0307dDefEF予約番号#:"
    specs = [EntityPattern.model_construct(pattern=p) for p in PATTERNS if "(\\d|\\d\\d)" not in p]  # not the slow one
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        if rng.random() < 0.5:
            text = text.encode("ascii", "ignore").decode()
        for spec in specs:
            expected = [(m.span(), m.groupdict()) for m in spec.regex.finditer(text, timeout=1.0)]
            assert [(m.span(), m.groupdict()) for m in spec.find(text)] == expected, (spec.pattern, text)


def test_the_phone_pattern_finds_what_its_plain_form_finds(shared) -> None:
    """entities.PHONE (written to start with its first character's class) finds the same numbers at the
    same places as its plain form with the lookbehind first: on the edges, the demo traffic, a shared
    dataset sample, the benchmark's texts and 30,000 random strings of digits, separators, '+', letters,
    underscores and non-ASCII digits and letters (a number after a letter, a '+', an underscore, at the
    start, after a '+' with no digit)."""
    import re
    import unicodedata

    from bench.throughput import messages, texts as bench_texts

    plain = re.compile(entities.PHONE_PLAIN)
    pool, _ = bench_texts()
    texts = [
        *EDGES,
        *(e["text"] for e in load_sample() if e.get("text")),
        *(m["text"] for m in messages(2000, "ph", pool)),
    ]
    for path in sorted(Path(shared).glob("*.jsonl"))[:4]:
        with path.open() as f:
            texts += [str(json.loads(line).get("text", "")) for line, _ in zip(f, range(1000), strict=False)]
    rng = random.Random(10)
    alphabet = list("0123456789+-(). \n\t_ax") + ["٣", "١", "２", "é", "+1", "555", "  ", "++"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(30_000)]
    matched = 0
    for text in texts:
        for t in {text, unicodedata.normalize("NFKC", text)}:
            expected = [m.span() for m in plain.finditer(t)]
            assert [m.span() for m in entities.PHONE.finditer(t)] == expected, repr(t)
            matched += bool(expected)
    assert matched > 1000
