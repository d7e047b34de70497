"""Keep customer text, names, e-mails and phone numbers out of logs.

:func:`install` (called by every command line entry point before it logs anything) wraps the
logging record factory: each record's message is formatted once, and e-mail addresses,
phone-like digit runs and the values of known customer fields (``text``, ``name``,
``first_name``, ``last_name``, ``display_name``, ``email``, ``phone``, ``body``, ``message``,
``author``, ``customer_message``; written ``"text": "..."`` as JSON or ``'text': '...'`` as a
Python repr) are replaced by ``[redacted]``. Exceptions logged with a traceback are redacted
the same way (their formatted text is what a handler would print). Work-horses forked by RQ
inherit the factory.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from worker import defaults

CUSTOMER_FIELDS = (
    "text",
    "name",
    "first_name",
    "last_name",
    "display_name",
    "email",
    "phone",
    "body",
    "message",
    "author",
    "customer_message",
    "reply",
    "note",
)

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
#: 9 or more digits, optionally with + ( ) . - or spaces between them (not inside a longer word or number)
PHONE = re.compile(r"(?<![\w.-])\+?\(?\d(?:[\d\s().-]{7,}\d)(?![\w-])")
_FIELDS = "|".join(CUSTOMER_FIELDS)
#: "field": "value" (JSON, escapes allowed) and 'field': 'value' / "value" (Python reprs)
JSON_FIELD = re.compile(r'("(?:' + _FIELDS + r')"\s*:\s*)"(?:[^"\\]|\\.)*"')
REPR_FIELD = re.compile(r"('(?:" + _FIELDS + r")'\s*:\s*)(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")
#: a nested author object in JSON: {"id": ..., "name": ...} is handled by JSON_FIELD; this catches author=...
KEYWORD_FIELD = re.compile(r"\b((?:" + _FIELDS + r")=)(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")


def _phone(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match.group(0))
    return defaults.LOG_REDACTED if digits >= 9 else match.group(0)


def redact(text: str) -> str:
    """``text`` with e-mails, phone numbers and customer fields' values replaced."""
    if not text:
        return text
    red = defaults.LOG_REDACTED
    text = JSON_FIELD.sub(lambda m: f'{m.group(1)}"{red}"', text)
    text = REPR_FIELD.sub(lambda m: f"{m.group(1)}'{red}'", text)
    text = KEYWORD_FIELD.sub(lambda m: f"{m.group(1)}'{red}'", text)
    text = EMAIL.sub(red, text)
    return PHONE.sub(_phone, text)


class RedactingFilter(logging.Filter):
    """For handlers of code that builds records without our factory (also usable on its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def _redact_record(record: logging.LogRecord) -> None:
    if getattr(record, "_replyguard_redacted", False):
        return
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string: log it as written, redacted
        message = str(record.msg)
    record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    record._replyguard_redacted = True


_installed = False


def install() -> None:
    """Redact every log record made in this process from now on (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
