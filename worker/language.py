"""Which language a message is written in, for choosing the template language.

Script-based and deliberately simple: kana means Japanese; hangul Korean; Han
characters without kana are Japanese when the brand serves Japanese and not
Chinese (the author's locale decides otherwise). Latin script is English when it
reads as English (common English function words make up at least a fifth of
its words), or when the author's locale is English, absent, or a language that
is not written in Latin script (ja, zh, ko); otherwise the locale's language. So a German-locale customer writing in English gets English, and
"Bonjour, où est ma commande ?" from a French locale gets French. Text with no
letters (emoji, digits) follows the locale, then the brand's default language.
"""

from __future__ import annotations

import re

_KANA = re.compile(r"[\u3040-\u30ff\uff66-\uff9f]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_WORD = re.compile(r"[a-z']+")
ENGLISH_WORDS = frozenset(
    "a about after am an and any are as at be been but by can could did do does for from get got had has have "
    "hello hi how i i'm if in is it it's its me my no not of on or our please so than thank thanks that the "
    "their them then there they this to too u us was we what when where which who why will with would you "
    "your yours".split()
)


def reads_as_english(text: str) -> bool:
    words = _WORD.findall(text.lower())
    if not words:
        return False
    hits = sum(w in ENGLISH_WORDS for w in words)
    return hits >= 1 and hits / len(words) >= 0.2


def locale_language(locale: str | None) -> str | None:
    if not locale:
        return None
    return re.split(r"[-_]", locale, maxsplit=1)[0].lower()


def detect_language(text: str, locale: str | None, languages: list[str], default: str) -> str:
    """Best guess of the language of ``text`` (an ISO 639-1 code)."""
    hint = locale_language(locale)
    if not text.isascii():  # kana, hangul and Han are never ASCII: three scans of the text spared
        if _KANA.search(text):
            return "ja"
        if _HANGUL.search(text):
            return "ko"
        if _HAN.search(text):
            if hint in ("zh", "ja"):
                return hint
            return "ja" if "ja" in languages or "zh" not in languages else "zh"
    if _LATIN.search(text):
        if hint in (None, "en", "ja", "zh", "ko") or reads_as_english(text):
            return "en"
        return hint
    if hint:
        return hint
    return default


# -- a statistical identifier, for LLM drafts ------------------------------------------------

#: Languages the identifier chooses among (besides the brand's own): restricting the set makes
#: short texts far more reliable ("Happy to help!" is English at 0.97 instead of 0.69).
IDENTIFIER_LANGUAGES = (
    "en",
    "ja",
    "zh",
    "ko",
    "fr",
    "de",
    "es",
    "pt",
    "it",
    "nl",
    "sv",
    "ru",
    "pl",
    "tr",
    "id",
    "vi",
    "th",
    "ar",
)
_identifiers: dict[tuple[str, ...], object] = {}


def identifier(languages: tuple[str, ...] = IDENTIFIER_LANGUAGES):
    """py3langid's naive Bayes identifier (model shipped in its wheel, loaded without pickle), cached.

    Loading takes ~2 s; workers call this before forking so jobs share it.
    """
    key = tuple(sorted(set(languages)))
    found = _identifiers.get(key)
    if found is None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        found = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        known = set(found.nb_classes)
        found.set_languages([lang for lang in key if lang in known])
        _identifiers[key] = found
    return found


def identify(text: str, extra: tuple[str, ...] = ()) -> tuple[str, float]:
    """(language, probability) of ``text`` among IDENTIFIER_LANGUAGES (+ ``extra``)."""
    lang, prob = identifier(tuple(sorted(set(IDENTIFIER_LANGUAGES) | set(extra)))).classify(text)
    return str(lang), float(prob)
