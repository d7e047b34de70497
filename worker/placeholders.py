"""``{name}`` placeholders: the only substitution syntax replyguard has.

Text is literal except ``{lowercase_name}`` placeholders; ``{{`` and ``}}`` are
literal braces. There are no attribute lookups, indexes, format specs,
conversions or expressions (unlike ``str.format``), so placeholder text cannot
run code or reach into objects, and values are substituted in a single pass: a
value that itself looks like ``{order_id}`` stays literal text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\{\{|\}\}|\{([a-z_][a-z0-9_]*)\}|\{|\}")


@dataclass(frozen=True)
class Var:
    name: str


Segment = str | Var


@functools.lru_cache(maxsize=4096)
def parse_text(text: str) -> tuple[Segment, ...]:
    """Split text into literal strings and variables. Raises ValueError on any other brace.

    Cached: templates and formats are parsed once, not per message.
    """
    segments: list[Segment] = []
    literal: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        literal.append(text[pos : m.start()])
        token = m.group()
        if token == "{{":
            literal.append("{")
        elif token == "}}":
            literal.append("}")
        elif m.group(1):
            segments.append("".join(literal))
            literal = []
            segments.append(Var(m.group(1)))
        else:
            snippet = text[m.start() : m.start() + 20]
            raise ValueError(
                f"unexpected {token!r} at character {m.start()} ({snippet!r}): placeholders are "
                "{lowercase_name}; write {{ or }} for a literal brace"
            )
        pos = m.end()
    literal.append(text[pos:])
    segments.append("".join(literal))
    return tuple(s for s in segments if s != "")


def variables_of(text: str) -> list[str]:
    return [s.name for s in parse_text(text) if isinstance(s, Var)]


def fill(segments: tuple[Segment, ...], values: dict[str, str]) -> tuple[str | None, list[str]]:
    """Substitute ``values``; returns (text, []) or (None, missing names). Empty values count as missing."""
    parts: list[str] = []
    missing: list[str] = []
    for s in segments:  # one pass (it runs for every reply part of every decision)
        if isinstance(s, Var):
            value = values.get(s.name)
            if value:
                parts.append(value)
            else:
                missing.append(s.name)
        else:
            parts.append(s)
    if missing:
        return None, missing
    return "".join(parts), []
