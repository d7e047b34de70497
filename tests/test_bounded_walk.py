"""walk_problems first asks whether there is anything to name (bounded_json._any_problem, no paths
built); it must say yes exactly when the full walk finds a problem: random nested values with
too-deep containers, huge and oversized numbers, NaN and infinities, booleans, and the event shapes;
empty containers just above, at and below the depth limit (the quick check passes over those above it)."""

from __future__ import annotations

import math
import random
from typing import Any

import worker.bounded_json as bounded_json
from tests.conftest import make_event
from worker import defaults


def _value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(12 if depth < defaults.MAX_JSON_DEPTH + 3 else 8)
    if kind == 0:
        return rng.choice([True, False, None])
    if kind == 1:
        return rng.choice([0, 7, -3, 10 ** (defaults.MAX_JSON_INT_DIGITS + 5), 10**defaults.MAX_JSON_INT_DIGITS])
    if kind == 2:
        return rng.choice([0.5, math.inf, -math.inf, math.nan, 1e308])
    if kind == 3:
        return bounded_json.Oversized("too big")
    if kind < 8:
        return rng.choice(["", "x", "日本"])
    if kind < 10:
        return {f"k{i}": _value(rng, depth + 1) for i in range(rng.randrange(4))}
    return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_the_quick_check_agrees_with_the_full_walk() -> None:
    rng = random.Random(5)
    values = [make_event(), make_event(metadata={"a": [1, {"b": 2.5}]}), {}, []]
    values += [{"a": {}}, [[]], {"a": [[], {}]}, [[[[]]]], {"a": {"b": {"c": []}}}, [{}, [], 1], ()]
    values += [_value(rng, 0) for _ in range(3000)]
    found = 0
    for value in values:
        for limit in (1, 2, 3, defaults.MAX_JSON_DEPTH):
            full = bounded_json.walk_problems(value, max_depth=limit)
            check = bounded_json._any_problem
            try:
                bounded_json._any_problem = lambda data, limit: True  # type: ignore[assignment]
                named = bounded_json.walk_problems(value, max_depth=limit)
            finally:
                bounded_json._any_problem = check  # type: ignore[assignment]
            assert full == named, value
            assert check(value, limit) == bool(named), value
            found += bool(named)
    assert 1000 < found < 10000  # both kinds are well represented
