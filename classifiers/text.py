"""Text normalisation shared by every classifier, English and Japanese alike.

No step assumes spaces between words: NFKC folds full-width Latin and digits and
half-width katakana into their usual forms, case is folded, HTML entities (common
in scraped social text) are decoded, and URLs, @mentions, e-mail addresses and
phone-like digit runs can be replaced by placeholder tokens so that models learn
"has a link" rather than one particular link.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

URL_RE = re.compile(
    r"(?i)\b(?:https?://|www\.)\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|co|ly|me|info|biz|xyz|jp|uk|us|tv|gg|link|site|online|shop|store|app)(?:/\S*)?"
)
EMAIL_RE = re.compile(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b")
MENTION_RE = re.compile(r"(?<![\w@])@[\w.]{1,30}")
PHONE_RE = re.compile(r"(?<!\d)\+?\d[\d\s().-]{7,}\d(?!\d)")
SPACE_RE = re.compile(r"\s+")

#: Word tokens for TfidfVectorizer(analyzer="word"): Latin-script words of two or
#: more characters, and every CJK character (kana, kanji) on its own, so word
#: bigrams over Japanese become character bigrams instead of whole sentences.
TOKEN_PATTERN = r"(?u)[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W\d_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{2,}|\d+"


def normalize(text: str, *, urls: bool = True, mentions: bool = True, emails: bool = True, phones: bool = True) -> str:
    """NFKC, HTML-unescape, case-fold, optional placeholder tokens, collapse whitespace."""
    text = unicodedata.normalize("NFKC", html.unescape(text)).casefold()
    if emails:
        text = EMAIL_RE.sub(" zemailz ", text)
    if urls:
        text = URL_RE.sub(" zurlz ", text)
    if mentions:
        text = MENTION_RE.sub(" zmentionz ", text)
    if phones:
        text = PHONE_RE.sub(" zphonez ", text)
    return SPACE_RE.sub(" ", text).strip()


#: What every match of PHONE_RE contains (the match without its optional "+" and its lookarounds): a text
#: without it has no phone number. Unlike PHONE_RE it starts with a character class, which the regex
#: engine scans for quickly, so a text whose digits are not a phone-like run (an order number, "3 pm")
#: is not tried character by character by the substitution (~3x cheaper on such a text).
PHONE_HINT_RE = re.compile(r"\d[\d\s().-]{7,}\d")
#: What every match of URL_RE contains (its first branch "://" or "www.", its second "." and a listed
#: domain), with URL_RE's own case folding: a text without it has no URL (a 6x cheaper scan).
URL_HINT_RE = re.compile(
    r"(?i)://|www\.|\.(?:com|net|org|io|co|ly|me|info|biz|xyz|jp|uk|us|tv|gg|link|site|online|shop|store|app)"
)
#: A "." before a letter that URL_HINT_RE's case folding can read as the first letter of one of its domains
#: (an ASCII letter, "ı" or "İ" as "i", "ſ" as "s"). One literal first character: the regex engine scans
#: for it quickly, unlike URL_HINT_RE, which it tries at every position (~40x cheaper on a text without it).
URL_DOT_RE = re.compile(r"\.[a-zA-Z\u0130\u0131\u017f]")


def _may_hold_url(text: str) -> bool:
    """Whether URL_RE can match a case-folded text (as normalize_all's are: no "W" left): URL_HINT_RE, tried
    only when one of its branches' starts is there ("://", "www." or URL_DOT_RE)."""
    if "://" not in text and "www." not in text and URL_DOT_RE.search(text) is None:
        return False
    return URL_HINT_RE.search(text) is not None


#: (flag, pattern, placeholder, can it match?) in the order :func:`normalize` applies them.
_STEPS = (
    (EMAIL_RE, " zemailz ", lambda t: "@" in t),
    (URL_RE, " zurlz ", _may_hold_url),
    (MENTION_RE, " zmentionz ", lambda t: "@" in t),
    (PHONE_RE, " zphonez ", lambda t: PHONE_HINT_RE.search(t) is not None),
)


def normalize_all(
    text: str, configs: Iterable[tuple[bool, bool, bool, bool]]
) -> dict[tuple[bool, bool, bool, bool], str]:
    """:func:`normalize` of ``text`` under each ``(urls, mentions, emails, phones)`` config, sharing the steps
    the configs have in common and skipping a pattern that cannot match (same results, fewer regex passes).
    Whitespace is collapsed by ``str.split``, which splits on the characters ``\\s`` matches in a str
    pattern (both are ``str.isspace``), once per distinct result."""
    base = unicodedata.normalize("NFKC", html.unescape(text)).casefold()
    # no step can change it, under any config (the _STEPS tests, written out: most texts end here)
    if "@" not in base and not _may_hold_url(base) and PHONE_HINT_RE.search(base) is None:
        return dict.fromkeys(configs, " ".join(base.split()))
    done: dict[tuple[bool, ...], str] = {(): base}
    collapsed: dict[str, str] = {}
    out = {}
    for config in configs:
        urls, mentions, emails, phones = config
        flags = (emails, urls, mentions, phones)
        current = base
        for i, (pattern, placeholder, possible) in enumerate(_STEPS):
            key = flags[: i + 1]
            cached = done.get(key)
            if cached is None:
                if flags[i] and possible(current):
                    current = pattern.sub(placeholder, current)
                done[key] = current
            else:
                current = cached
        found = collapsed.get(current)
        if found is None:
            found = collapsed[current] = " ".join(current.split())
        out[config] = found
    return out


class TextNormalizer(TransformerMixin, BaseEstimator):
    """Stateless transformer applying :func:`normalize` to each text.

    It learns nothing; it is a pipeline step so that the normalisation a model
    was trained with travels inside the model artifact.
    """

    def __init__(self, urls: bool = True, mentions: bool = True, emails: bool = True, phones: bool = True):
        self.urls = urls
        self.mentions = mentions
        self.emails = emails
        self.phones = phones

    def fit(self, X: Iterable[str], y: object = None) -> "TextNormalizer":
        self.n_features_in_ = 1
        return self

    def transform(self, X: Iterable[str]) -> np.ndarray:
        return np.array(
            [
                normalize(str(t), urls=self.urls, mentions=self.mentions, emails=self.emails, phones=self.phones)
                for t in X
            ],
            dtype=object,
        )

    def __sklearn_tags__(self):  # texts in, texts out: no numeric validation
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        return tags
