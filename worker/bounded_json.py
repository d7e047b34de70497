"""JSON reading with limits, for input nobody vouches for (events, webhook bodies).

Python's :func:`json.loads` recurses once per nesting level (a deep enough
document raises ``RecursionError``) and turns a 5,000-digit number into an
``int`` only to fail later. Here:

* nesting depth is measured *before* parsing, without recursion, by scanning
  the brackets outside strings (:func:`depth_problem`);
* integers longer than ``MAX_JSON_INT_DIGITS`` digits, floats that overflow to
  infinity and the non-standard ``NaN`` / ``Infinity`` are not converted: they
  become :class:`Oversized` markers, which :func:`walk_problems` reports with
  the path of the field that holds them;
* :func:`walk_problems` also checks depth and numbers of already-decoded
  objects (dicts handed to the Python API), iteratively.

Every problem is a :class:`~worker.exceptions.Problem` naming where it is.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from worker import defaults
from worker.exceptions import Problem

# a JSON string (possessive: linear even on hostile input), or one bracket
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]', re.DOTALL)


class Oversized:
    """A number that was not converted because it is out of bounds."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Oversized({self.reason!r})"


def _int(text: str) -> int | Oversized:
    digits = len(text.lstrip("-"))
    if digits > defaults.MAX_JSON_INT_DIGITS:
        return Oversized(f"integer of {digits} digits; the limit is {defaults.MAX_JSON_INT_DIGITS}")
    return int(text)


def _float(text: str) -> float | Oversized:
    if len(text) > 4 * defaults.MAX_JSON_INT_DIGITS:
        return Oversized(f"number written with {len(text)} characters")
    value = float(text)
    if not math.isfinite(value):
        return Oversized(f"number {text[:40]} is too large to represent")
    return value


def _constant(text: str) -> Oversized:
    return Oversized(f"{text} is not a JSON number")


def depth_problem(text: str, max_depth: int | None = None) -> Problem | None:
    """A problem if ``text`` nests arrays/objects deeper than ``max_depth`` (no parsing, no recursion)."""
    limit = defaults.MAX_JSON_DEPTH if max_depth is None else max_depth
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > limit:
                return Problem("(json)", f"nested deeper than {limit} levels at column {match.start() + 1}")
        elif char in "]}":
            depth -= 1
    return None


def loads(text: str) -> Any:
    """Parse JSON text whose depth was checked; out-of-bounds numbers become :class:`Oversized`.

    Raises ``json.JSONDecodeError`` for malformed text.
    """
    return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)


def _any_problem(data: Any, limit: int) -> bool:
    """Whether :func:`walk_problems` would find anything: the same walk and the same tests, without
    naming where (every event at ingest is walked, and almost none has a problem to name). Strings,
    None and booleans, most of an event, are never a problem: they are passed over, not stacked; so
    is an empty dict or list above the depth limit (an event's usual ``metadata`` and ``tags``), which
    holds nothing to walk and is not too deep."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    push, pop = stack.append, stack.pop
    while stack:
        value, depth = pop()
        if isinstance(value, dict):
            items: Any = value.values()
        elif isinstance(value, (list, tuple)):
            items = value
        else:
            if isinstance(value, Oversized):
                return True
            if isinstance(value, bool):
                continue
            if isinstance(value, int):
                if value.bit_length() > defaults.MAX_JSON_INT_DIGITS * 3.33:
                    return True
            elif isinstance(value, float) and not math.isfinite(value):
                return True
            continue
        if depth >= limit:
            return True
        below = depth + 1
        for item in items:
            kind = type(item)
            if kind is not str and kind is not bool and item is not None:
                if (kind is dict or kind is list) and not item and below < limit:
                    continue
                push((item, below))
    return False


def walk_problems(data: Any, root: str = "", max_depth: int | None = None) -> list[Problem]:
    """Every too-deep container and out-of-bounds number in decoded ``data`` (iterative)."""
    limit = defaults.MAX_JSON_DEPTH if max_depth is None else max_depth
    if not _any_problem(data, limit):
        return []
    problems: list[Problem] = []
    stack: list[tuple[Any, str, int]] = [(data, root, 0)]
    while stack and len(problems) < 20:
        value, where, depth = stack.pop()
        name = where or "(event)"
        if isinstance(value, dict):
            if depth >= limit:
                problems.append(Problem(name, f"nested deeper than {limit} levels"))
                continue
            stack.extend((v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            if depth >= limit:
                problems.append(Problem(name, f"nested deeper than {limit} levels"))
                continue
            stack.extend((v, f"{where}.{i}" if where else str(i), depth + 1) for i, v in enumerate(value))
        elif isinstance(value, Oversized):
            problems.append(Problem(name, value.reason))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            # compare by size, not by str(value): str() of a huge int is itself refused
            if value.bit_length() > defaults.MAX_JSON_INT_DIGITS * 3.33:
                problems.append(Problem(name, f"integer over {defaults.MAX_JSON_INT_DIGITS} digits"))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(Problem(name, f"{value} is not a JSON number"))
    return sorted(problems, key=lambda p: p.where)
