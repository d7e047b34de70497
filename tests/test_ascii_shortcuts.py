"""ASCII text takes shortcuts in deciding (worker.policy.normalize_keyword: no NFKC, lower() for
casefold, the removed characters deleted by bytes.translate; worker.language.detect_language: no
search for kana, hangul or Han): the results are those of the general path, on every ASCII
character, random ASCII strings, the demo traffic, edges and a shared-dataset sample."""

from __future__ import annotations

import json
import random
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError, field_validator

import worker.language as language
import worker.models as models
import worker.policy as policy
from tests.conftest import make_event
from worker.demo import load_sample

EDGES = [
    "",
    "STOP",
    " s t o p !!",
    "Stop_please",
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f stop",  # \s holds the ASCII separators too
    "ＳＴＯＰ!",  # fullwidth: the general path
    "ß STRASSE",
    "İstanbul",
    " 配信停止。",
    "hello 世界",
    "こんにちは",
    "안녕하세요",
    "Bonjour, où est ma commande ?",
    "\x7f\x00abc",
]


def _keyword_in_general(text: str) -> str:
    return policy._KEYWORD_STRIP.sub("", unicodedata.normalize("NFKC", text).casefold())


def _language_in_general(text: str, locale: str | None, languages: list[str], default: str) -> str:
    """detect_language as it was, every search made."""
    hint = language.locale_language(locale)
    if language._KANA.search(text):
        return "ja"
    if language._HANGUL.search(text):
        return "ko"
    if language._HAN.search(text):
        if hint in ("zh", "ja"):
            return hint
        return "ja" if "ja" in languages or "zh" not in languages else "zh"
    if language._LATIN.search(text):
        if hint in (None, "en", "ja", "zh", "ko") or language.reads_as_english(text):
            return "en"
        return hint
    return hint or default


def _texts(shared: Path | None = None) -> list[str]:
    rng = random.Random(10)
    out = [chr(c) for c in range(128)] + EDGES
    out += ["".join(chr(rng.randrange(128)) for _ in range(rng.randrange(1, 40))) for _ in range(2000)]
    out += [e["text"] for e in load_sample() if e.get("text")]
    if shared is not None:
        for name in ("clinc150.jsonl", "sms_spam_collection.jsonl", "bitext_customer_support.jsonl"):
            rows = [json.loads(line) for line in (shared / name).read_text(encoding="utf-8").splitlines()]
            out += [r["text"] for r in rows if r.get("split") == "test"][:400]
    return out


def _check(texts: list[str]) -> None:
    ascii_ = 0
    for text in texts:
        ascii_ += text.isascii()
        assert policy.normalize_keyword(text) == _keyword_in_general(text), repr(text)
        for locale, languages in ((None, ["en", "ja"]), ("de-DE", ["en", "de"]), ("zh", ["en", "zh"])):
            assert language.detect_language(text, locale, languages, "ja") == _language_in_general(
                text, locale, languages, "ja"
            ), repr(text)
    assert 0 < ascii_ < len(texts)  # both paths were taken


def test_ascii_shortcuts_give_the_general_results() -> None:
    _check(_texts())


@pytest.mark.shared_data
def test_ascii_shortcuts_on_a_shared_dataset_sample(shared: Path) -> None:
    _check(_texts(shared))


def test_the_skipped_searches_cannot_match_ascii() -> None:
    """What makes skipping them exact: none of the three scripts' patterns matches an ASCII character,
    and the removed ASCII characters are exactly those the pattern removes."""
    for pattern in (language._KANA, language._HANGUL, language._HAN):
        assert not any(pattern.search(chr(c)) for c in range(128)), pattern.pattern
    removed = {chr(c) for c in policy._ASCII_STRIP}
    assert removed == {chr(c) for c in range(128) if re.fullmatch(r"[\s\W_]", chr(c))}
    assert {" ", "_", "!", "\x1f"} <= removed and not {"a", "Z", "0"} & removed


def _outcome(fn, value: str) -> tuple[str, str]:
    try:
        return "ok", fn(value)
    except ValueError as exc:
        return "refused", str(exc)


def _unicode_in_general(value: str) -> str:
    match = models._SURROGATE.search(value) or models._CONTROL.search(value)
    if match and models._SURROGATE.search(value):
        raise ValueError(f"contains an unpaired UTF-16 surrogate at character {match.start()} (not valid Unicode text)")
    if match:
        raise ValueError(f"contains control character U+{ord(match.group()):04X} at character {match.start()}")
    return value


def _identifier_in_general(value: str) -> str:
    value = _unicode_in_general(value)
    match = models.BIDI_CONTROLS.search(value)
    if match:
        raise ValueError(f"contains bidi control U+{ord(match.group()):04X} at character {match.start()}")
    return value


def test_event_validation_shortcuts_accept_and_refuse_as_before() -> None:
    """Ingest's checks of each string skip the surrogate and bidi searches on ASCII strings (neither
    can hold one), and the control search on printable ASCII ones (none of C0, DEL or C1 is printable):
    the same values kept, the same refusals with the same reasons, for every ASCII character alone,
    between letters and after a control too."""
    strings = _texts() + ["a\u202eb", "\u2066x\u2069", "a\ud800b", "x\x85y", "ok\tline\nbreak\r", "\x1bESC", "\x7f"]
    strings += (
        [chr(c) for c in range(128)] + [f"ab{chr(c)}cd" for c in range(128)] + [f"\t{chr(c)}" for c in range(128)]
    )
    refused = 0
    for value in strings:
        for fn, general in (
            (models._check_unicode, _unicode_in_general),
            (models._check_identifier, _identifier_in_general),
            (models._strip_bidi, lambda v: models.BIDI_CONTROLS.sub("", _unicode_in_general(v))),
        ):
            got = _outcome(fn, value)
            assert got == _outcome(general, value), repr(value)
            refused += got[0] == "refused"
    assert refused > 100  # controls in the random strings, surrogates, bidi controls in identifiers


def test_the_worker_skips_the_canonical_search_only_where_it_cannot_match() -> None:
    """trusted_event (the worker's check of an ingested event) skips the search for characters that
    validation refuses or removes on printable ASCII strings: none of those is printable ASCII, and for
    every character, alone and between ASCII letters, the shortcut says what the search says."""
    assert not any(models._NOT_CANONICAL.search(chr(c)) for c in range(0x20, 0x7F))
    for c in range(0x110000):
        for value in (chr(c), f"ab{chr(c)}cd"):
            assert models._canonical(value) == (not models._NOT_CANONICAL.search(value)), hex(c)
    for value in _texts() + ["ok\tline\nbreak\r", "\x1bESC", "a\u202eb", "x\x85y", ""]:
        assert models._canonical(value) == (not models._NOT_CANONICAL.search(value)), repr(value)


class _GeneralAuthor(models.Author):
    """The author's validators calling the checks on every string, as before their ASCII shortcut."""

    @field_validator("id")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return models._check_identifier(value)

    @field_validator("name")
    @classmethod
    def _free_text(cls, value: str | None) -> str | None:
        return None if value is None else models._strip_bidi(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return [models._check_identifier(tag) for tag in value]


class _GeneralEvent(models.InboundEvent):
    """The event's validators likewise."""

    author: _GeneralAuthor

    @field_validator("id", "conversation_id", "post_id")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        return None if value is None else models._check_identifier(value)

    @field_validator("text")
    @classmethod
    def _free_text(cls, value: str) -> str:
        return models._strip_bidi(value)


def _validated(cls: type[models.InboundEvent], data: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", cls.model_validate(data).model_dump(mode="json")
    except ValidationError as exc:
        return "refused", [(e["loc"], e["msg"], e["type"]) for e in exc.errors(include_url=False)]


def test_the_validators_shortcuts_accept_refuse_and_keep_as_before() -> None:
    """The event's and the author's field validators return printable ASCII without calling the checks:
    every string field validated to the same value, or refused with the same errors, as when the
    validators called the checks on every string."""
    strings = _texts() + ["a\u202eb", "\u2066x\u2069", "a\ud800b", "x\x85y", "ok\tline\nbreak\r", "\x1bESC", "\x7f"]
    strings += [f"ab{chr(c)}cd" for c in range(128)] + [""]
    refused = 0
    for value in strings:
        for data in (
            make_event(id=value),
            make_event(conversation_id=value),
            make_event(kind="comment", post_id=value),
            make_event(text=value),
            make_event(author={"id": value}),
            make_event(author={"name": value}),
            make_event(author={"tags": [value, "vip"]}),
        ):
            got = _validated(models.InboundEvent, data)
            assert got == _validated(_GeneralEvent, data), (repr(value), data)
            refused += got[0] == "refused"
    assert refused > 1000
