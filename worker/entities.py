"""Entities extracted from message text, and the variables templates are filled from.

Built-in extractors find e-mail addresses, phone numbers and URLs; a brand adds
its own (order numbers, booking references) as regular expressions in its
policy's ``entities``. Template variables come from the event (the author's
name, sanitised), the first value of each entity, and the policy's constants.
"""

from __future__ import annotations

import re
import unicodedata

from worker import defaults
from worker.models import InboundEvent
from worker.policy import Policy

EMAIL = re.compile(r"(?i)(?<![\w.+-])[a-z0-9._%+-]{1,64}@[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63})*\.[a-z]{2,24}(?![\w-])")
URL = re.compile(r"(?i)\b(?:https?://|www\.)[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")  # ASCII: not the Japanese after it
#: a phone number: ``(?<![\w+])\+?\d(?:[\s().-]?\d){7,14}(?!\d)``, written to start with its first
#: character's class ``[+\d]`` and check the character before it afterwards (``(?<![\w+][+\d])``;
#: after a '+' a digit must follow): the same matches at the same places, but a pattern that starts
#: with a character class lets ``re`` skip to the candidates, where one that starts with a lookbehind
#: is tried at every position (~36 % fewer instructions on the benchmark's texts with digits;
#: tests/test_entity_prechecks.py compares the two)
PHONE_PLAIN = r"(?<![\w+])\+?\d(?:[\s().-]?\d){7,14}(?!\d)"
PHONE = re.compile(r"[+\d](?<![\w+][+\d])(?:(?<=\+)\d|(?<=\d))(?:[\s().-]?\d){7,14}(?!\d)")

BUILTIN = {"email": EMAIL, "url": URL, "phone": PHONE}

_DIGIT = re.compile(r"\d")


def _may_match(name: str, text: str) -> bool:
    """False only when the built-in ``name`` cannot match ``text``: an e-mail address needs an '@',
    a URL '://' or 'www.' (in any case: no other character folds to 'w'), a phone number digits.
    Most messages have none of them, and the three searches were most of the entity pass."""
    if name == "email":
        return "@" in text
    if name == "url":
        return "://" in text or ("." in text and "www." in text.lower())
    if text.isascii():  # its only digits are 0-9: ten substring tests, a third of the search's instructions
        return (
            "0" in text
            or "1" in text
            or "2" in text
            or "3" in text
            or "4" in text
            or "5" in text
            or "6" in text
            or "7" in text
            or "8" in text
            or "9" in text
        )
    return _DIGIT.search(text) is not None


_NAME_OK = re.compile(r"^[^\W\d_]+(?:[ '’.-][^\W\d_]+)*\.?$")


def clean_name(raw: str | None) -> str | None:
    """A display name safe to put in a reply, or None.

    Names that hold digits, URLs, @, emoji or markup, or are longer than
    ``MAX_NAME_CHARS``, are not used: an attacker controls their display name.
    """
    if not raw:
        return None
    name = " ".join(unicodedata.normalize("NFKC", raw).split())
    if not name or len(name) > defaults.MAX_NAME_CHARS or not _NAME_OK.match(name):
        return None
    return name


def extract(text: str, policy: Policy) -> dict[str, list[str]]:
    """name -> distinct values in order of appearance (normalised per the policy)."""
    normalized = unicodedata.normalize("NFKC", text)
    found: dict[str, list[str]] = {}
    for name, spec in policy.entities.items():
        values: list[str] = []
        for m in spec.find(normalized):
            value = spec.value(m)
            if value and value not in values:
                values.append(value)
        if values:
            found[name] = values
    for name, regex in BUILTIN.items():
        if not _may_match(name, normalized):
            continue
        values = []
        for m in regex.finditer(normalized):
            value = m.group(0).rstrip(".,!?)")
            if name == "phone" and any(value in v or v in value for vs in found.values() for v in vs):
                continue  # an order number is not a phone number
            if value not in values:
                values.append(value)
        if values:
            found[name] = values
    return found


def template_values(event: InboundEvent, entities: dict[str, list[str]], policy: Policy) -> dict[str, str]:
    """Values for template variables. Missing ones are simply absent."""
    values: dict[str, str] = dict(policy.variables)
    values["platform"] = event.platform
    name = clean_name(event.author.name)
    if name:
        values["name"] = name
        values["first_name"] = name.split(" ")[0]
    for key, found in entities.items():
        values[key] = found[0]
    return values
