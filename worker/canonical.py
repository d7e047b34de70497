"""The canonical form drafts and templates are compared in, so that a draft cannot hide a change.

:func:`canonical` applies, in order:

1. Unicode NFKC (full-width and circled forms, compatibility characters);
2. removal of invisible characters: format characters (zero-width space and joiners, word
   joiner, BOM, soft hyphen, bidi marks, embeddings, overrides and isolates, tag characters),
   variation selectors, the combining grapheme joiner and the Hangul fillers;
3. confusables mapped to the Latin letter they imitate (Cyrillic ``а``, Greek ``ο``, … see
   :data:`CONFUSABLES`; a curated subset of Unicode's confusables.txt for the scripts that
   imitate Latin letters and digits);
4. decimal digits of every script to ASCII (``٢``, ``२``, ``২`` → ``2``);
5. numbers written in words to digits: English (``two`` → 2, ``twenty-five`` → 25,
   ``a hundred and five`` → 105; a lone ``one`` stays a word: "no one", "the one you ordered"),
   Japanese kanji numerals (``二`` → 2, ``二十`` → 20, ``千五百`` → 1500) and kana readings
   (``にじゅう`` → 20) when they stand before a counter (日, 営業日, 円, %, 個, 週間, …) or
   are compounds, so 一緒 or the particle に stay words.

:func:`hidden_characters` and :func:`mixed_script_words` report what step 2 and 3 had to
remove or map, so a guardrail can refuse a draft that needed them.
"""

from __future__ import annotations

import re
import unicodedata

#: Characters that render as nothing (or only change the order of what is shown).
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)

#: Letters of other scripts that look like Latin letters or digits (lower case after NFKC + casefold,
#: plus the upper-case forms that differ).
CONFUSABLES = {
    # Cyrillic
    "а": "a",
    "в": "b",
    "е": "e",
    "ё": "e",
    "к": "k",
    "м": "m",
    "н": "h",
    "о": "o",
    "р": "p",
    "с": "c",
    "т": "t",
    "у": "y",
    "х": "x",
    "ѕ": "s",
    "і": "i",
    "ї": "i",
    "ј": "j",
    "һ": "h",
    "ԁ": "d",
    "ԛ": "q",
    "ԝ": "w",
    "ү": "y",
    "ӏ": "l",
    "ɡ": "g",
    "ь": "b",
    "з": "3",
    "ч": "4",
    "б": "6",
    "А": "A",
    "В": "B",
    "Е": "E",
    "К": "K",
    "М": "M",
    "Н": "H",
    "О": "O",
    "Р": "P",
    "С": "C",
    "Т": "T",
    "Х": "X",
    "Ѕ": "S",
    "І": "I",
    "Ј": "J",
    "Ү": "Y",
    "Ԁ": "D",
    "Ԛ": "Q",
    "Ԝ": "W",
    "Ӏ": "l",
    "З": "3",
    # Greek
    "α": "a",
    "β": "b",
    "ε": "e",
    "η": "n",
    "ι": "i",
    "κ": "k",
    "ν": "v",
    "ο": "o",
    "ρ": "p",
    "τ": "t",
    "υ": "u",
    "χ": "x",
    "ω": "w",
    "Α": "A",
    "Β": "B",
    "Ε": "E",
    "Ζ": "Z",
    "Η": "H",
    "Ι": "I",
    "Κ": "K",
    "Μ": "M",
    "Ν": "N",
    "Ο": "O",
    "Ρ": "P",
    "Τ": "T",
    "Υ": "Y",
    "Χ": "X",
    # Armenian, Cherokee, Latin look-alikes and others
    "օ": "o",
    "ս": "u",
    "հ": "h",
    "ո": "n",
    "ց": "g",
    "զ": "q",
    "Ꭺ": "A",
    "Ꭼ": "E",
    "Ꮋ": "H",
    "Ꭵ": "i",
    "Ꮃ": "W",
    "Ꮪ": "S",
    "Ꭲ": "T",
    "ı": "i",
    "ȷ": "j",
    "ƅ": "b",
    "ɑ": "a",
    "ɩ": "i",
    "ʋ": "u",
    "ꮃ": "w",
    "ℓ": "l",
    "ǀ": "l",
    "ꓲ": "I",
    "ꓳ": "O",
    "ꓴ": "U",
    "ꓑ": "P",
    "ꓚ": "C",
    "ꓰ": "E",
    "ꓝ": "F",
    "ꓖ": "G",
    # dots and slashes that could join a domain
    "。": ".",
    "｡": ".",
    "．": ".",
    "∕": "/",
    "⁄": "/",
    "／": "/",
}
_CONFUSABLE = re.compile("[" + re.escape("".join(CONFUSABLES)) + "]")
#: A "word" of letters/digits; mixed-script words are those mixing Latin with a confusable script.
_WORD = re.compile(r"[^\W_]+(?:[.\-][^\W_]+)*")
_IMITATING = re.compile("[" + re.escape("".join(k for k in CONFUSABLES if k not in "。｡．∕⁄／")) + "]")

# -- numbers in words --------------------------------------------------------------------------

_EN_UNITS = {
    "zero": 0,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "one": 1,
    "a": 1,
}
_EN_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_EN_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_EN_ALL = {**_EN_UNITS, **_EN_TENS, **_EN_SCALES, "dozen": 12, "couple": 2}
_EN_WORD = "|".join(sorted(_EN_ALL, key=len, reverse=True))
_EN_NUMBER = re.compile(
    rf"(?i)\b(?:{_EN_WORD})(?:(?:[\s-]+|(?<=hundred)\s+and\s+|(?<=thousand)\s+and\s+)(?:{_EN_WORD}))*\b"
)

_KANJI_DIGITS = {
    "〇": 0,
    "零": 0,
    "一": 1,
    "二": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "壱": 1,
    "弐": 2,
    "参": 3,
    "两": 2,
}
_KANJI_SCALES = {"十": 10, "百": 100, "千": 1000, "万": 10_000, "拾": 10}
_KANA_NUMBERS = {
    "ぜろ": 0,
    "れい": 0,
    "いち": 1,
    "に": 2,
    "さん": 3,
    "よん": 4,
    "し": 4,
    "ご": 5,
    "ろく": 6,
    "なな": 7,
    "しち": 7,
    "はち": 8,
    "きゅう": 9,
    "く": 9,
    "じゅう": 10,
    "ひゃく": 100,
    "びゃく": 100,
    "ぴゃく": 100,
    "せん": 1000,
    "ぜん": 1000,
    "まん": 10_000,
    "いっ": 1,
    "はっ": 8,
    "ろっ": 6,
}
_KANA_SCALES = {"じゅう", "ひゃく", "びゃく", "ぴゃく", "せん", "ぜん", "まん"}
#: Counters: a numeral right before one of these is a number, not part of a word.
_COUNTERS = (
    r"(?:営業日|日間|日|週間|週|か月|ヶ月|カ月|ヵ月|ケ月|月|年|時間|時|分|秒|円|ドル|個|件|点|枚|本|名|人|回|割|"
    r"パーセント|%|倍|歳|箱|つ|えいぎょうび|にち|かげつ|ねん|じかん|えん|こ|かい|わり|ばい|しゅうかん)"
)
#: Idioms written with numerals that are not numbers (万一 "in case", 十分 "enough", 一緒 "together").
_JA_IDIOMS = re.compile(
    "万が一|万一|万全|一緒|十分|一日も早く|一部|一番|一度|一旦|一応|一切|一層|一方|一般|一時的|一生|一同|"
    "千葉|三重|四国|九州|一人ひとり|一人一人|一つ一つ|唯一|統一|一括|一律|一連|一覧|一致|一定|一式|同一|"
    "一心|一同|一言|一面|一向|一通り|二度と|百貨店|八百屋"
)
_KANJI_NUMBER = re.compile(
    r"[〇零一二三四五六七八九壱弐参两十百千万拾]+(?=" + _COUNTERS + ")"
    r"|[〇零一二三四五六七八九]*[十百千万][〇零一二三四五六七八九十百千万]*"
)
_KANA_TOKEN = "|".join(sorted(_KANA_NUMBERS, key=len, reverse=True))
_KANA_COUNTERS = "(?:えいぎょうび|にち|かげつ|ねん|じかん|えん|かい|わり|ばい|しゅうかん|ぱーせんと|パーセント)"
_KANA_NUMBER = re.compile(
    f"(?:(?<=[にではがをのもとへ])|(?<![ぁ-ゖ]))"
    f"(?:(?:{_KANA_TOKEN})+(?={_KANA_COUNTERS})"
    f"|(?:{_KANA_TOKEN})*(?:じゅう|ひゃく|びゃく|ぴゃく|せん|まん)(?!ぶん|ぶ|しょ|せい|たく|でん|もん|げつ)(?:{_KANA_TOKEN})*)"
)
_DIGITS_SCALE = re.compile(r"(\d+)([万千])")


def _english_value(words: list[str]) -> int | None:
    """The value of a run of English number words, or None for a lone "one" / "a" (not a number)."""
    total, current, seen_number = 0, 0, False
    for word in words:
        if word in ("and", "a"):
            continue
        if word in ("dozen", "hundred", "thousand", "million"):
            scale = 12 if word == "dozen" else _EN_SCALES[word]
            current = max(current, 1) * scale
            if scale >= 1000:
                total, current = total + current, 0
            seen_number = True
        elif word == "couple":
            current += 2
            seen_number = True
        else:
            current += _EN_UNITS.get(word, 0) + _EN_TENS.get(word, 0)
            seen_number = seen_number or word != "one"
    return total + current if seen_number else None


def _english_numbers(text: str) -> str:
    def swap(match: re.Match[str]) -> str:
        words = re.split(r"[\s-]+", match.group(0).casefold())
        value = _english_value(words)
        return match.group(0) if value is None else str(value)

    return _EN_NUMBER.sub(swap, text)


def _kanji_value(chars: str) -> int:
    total, section, digit = 0, 0, None
    for char in chars:
        if char in _KANJI_DIGITS:
            digit = (digit or 0) * 10 + _KANJI_DIGITS[char] if digit is not None else _KANJI_DIGITS[char]
        else:
            scale = _KANJI_SCALES[char]
            if scale == 10_000:
                total += (section + (digit or 0) or 1) * scale
                section = 0
            else:
                section += (digit if digit is not None else 1) * scale
            digit = None
    return total + section + (digit or 0)


def _kana_value(text: str) -> int:
    tokens = re.findall(_KANA_TOKEN, text)
    total, section, digit = 0, 0, None
    for token in tokens:
        value = _KANA_NUMBERS[token]
        if token in _KANA_SCALES:
            if value == 10_000:
                total += (section + (digit or 0) or 1) * value
                section = 0
            else:
                section += (digit if digit is not None else 1) * value
            digit = None
        else:
            digit = value
    return total + section + (digit or 0)


def numbers_to_digits(text: str) -> str:
    """Numbers written in words (English, Japanese kanji and kana) replaced by digits."""
    text = _english_numbers(text)
    if text.isascii():
        return text
    idioms = [m.span() for m in _JA_IDIOMS.finditer(text)]

    def kanji(match: re.Match[str]) -> str:
        if any(a < match.end() and match.start() < b for a, b in idioms):
            return match.group(0)
        return str(_kanji_value(match.group(0)))

    text = _DIGITS_SCALE.sub(lambda m: str(int(m.group(1)) * (10_000 if m.group(2) == "万" else 1000)), text)
    text = _KANJI_NUMBER.sub(kanji, text)
    return _KANA_NUMBER.sub(lambda m: str(_kana_value(m.group(0))), text)


def _ascii_digits(text: str) -> str:
    if text.isascii():
        return text
    out = []
    for char in text:
        if not char.isascii() and unicodedata.category(char) == "Nd":
            out.append(str(unicodedata.decimal(char, 0)))
        else:
            out.append(char)
    return "".join(out)


def strip_invisible(text: str) -> str:
    return _INVISIBLE.sub("", text)


def canonical(text: str, *, words: bool = True) -> str:
    """The canonical form described in the module docstring (``words=False`` keeps number words)."""
    text = strip_invisible(unicodedata.normalize("NFKC", text))
    text = _CONFUSABLE.sub(lambda m: CONFUSABLES[m.group(0)], text)
    text = _ascii_digits(text)
    return numbers_to_digits(text) if words else text


def hidden_characters(text: str) -> list[str]:
    """Invisible characters in ``text`` (after NFKC), as ``U+XXXX`` names."""
    return sorted({f"U+{ord(c):04X}" for c in _INVISIBLE.findall(unicodedata.normalize("NFKC", text))})


def mixed_script_words(text: str) -> list[str]:
    """Words that mix Latin letters or digits with look-alike letters of another script (``kоmorebi``)."""
    out = []
    for match in _WORD.finditer(unicodedata.normalize("NFKC", strip_invisible(text))):
        word = match.group(0)
        if _IMITATING.search(word) and re.search(r"[A-Za-z0-9]", word):
            out.append(word)
        elif _IMITATING.search(word) and all(c in CONFUSABLES or not c.isalpha() for c in word) and "." in word:
            out.append(word)  # a whole domain in look-alikes
    return out
