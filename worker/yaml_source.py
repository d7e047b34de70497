"""Strict YAML reading for policies and templates.

``yaml.safe_load`` only (no Python tags), duplicate keys are an error (PyYAML
would silently keep the last one), and every value remembers its line so that
validation errors can say ``thresholds.intent.pricing (line 23)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


class YamlProblem(Exception):
    def __init__(self, where: str, reason: str):
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # PyYAML reports unhashable keys itself
            if key in seen:
                raise YamlProblem(
                    f"line {key_node.start_mark.line + 1}",
                    f"duplicate key {key!r} (first defined on line {seen[key]})",
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 reads `on`, `off`, `yes`, `no` as booleans, which turns a weekday list
# or a keyword like NO into True/False. Keep only true/false as booleans.
# (A new dict for this subclass: PyYAML's resolver table is shared by every loader.)
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


@dataclass
class YamlDocument:
    path: Path
    raw: bytes
    data: Any
    root: Node | None

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        """1-based line of the value at ``loc`` (or of its deepest existing parent)."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            if isinstance(node, MappingNode):
                for key_node, value_node in node.value:
                    if isinstance(key_node, ScalarNode) and key_node.value == str(part):
                        node = value_node
                        line = key_node.start_mark.line + 1
                        break
                else:
                    return line
            elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def read_yaml(path: Path) -> YamlDocument:
    """Read and parse ``path``. Raises YamlProblem (with a line) or OSError."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblem(f"byte {exc.start}", f"not valid UTF-8 ({exc.reason})") from exc
    loader: _StrictLoader | None = None
    try:  # one parse: the nodes (for line numbers) and the data built from them
        loader = _StrictLoader(text)  # (reading a non-printable character raises here)
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except YamlProblem:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise YamlProblem(where, f"YAML syntax error: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise YamlProblem("(file)", f"YAML error: {exc}") from exc
    except RecursionError as exc:
        raise YamlProblem("(file)", "nested too deeply") from exc
    except (ValueError, OverflowError, TypeError) as exc:  # e.g. a 5,000-digit integer
        raise YamlProblem("(file)", f"unreadable value: {str(exc)[:200]}") from exc
    finally:
        if loader is not None:
            loader.dispose()
    if root is not None and _expanded_size(root) > MAX_YAML_VALUES:
        raise YamlProblem("(file)", f"expands to more than {MAX_YAML_VALUES:,} values (aliases of aliases?)")
    return YamlDocument(path=path, raw=raw, data=data, root=root)


#: Most values a policy or template file may expand to, counting every use of an alias
#: ("billion laughs" files are small but expand to billions of values).
MAX_YAML_VALUES = 100_000


def _expanded_size(root: Node) -> int:
    """Values in the document with aliases expanded, counted iteratively up to just past the limit."""
    count, stack = 0, [root]
    while stack and count <= MAX_YAML_VALUES:
        node = stack.pop()
        count += 1
        if isinstance(node, MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return count


M = TypeVar("M", bound=BaseModel)


def load_validated(
    path: Path,
    model: type[M],
    error: Callable[[str, list[Any]], Exception],
    describe: Callable[[tuple[Any, ...], Any], str | None] | None = None,
) -> tuple[M, YamlDocument]:
    """Read ``path`` and validate it as ``model``; raise ``error(file, problems)`` naming each field and line.

    ``describe(loc, data)`` may add context to a field path (e.g. which template it belongs to).
    """
    from worker.exceptions import Problem
    from worker.models import problems_from

    source = str(path)
    try:
        doc = read_yaml(path)
    except OSError as exc:
        raise error(source, [Problem("(file)", f"cannot read: {exc.strerror or exc}")]) from exc
    except YamlProblem as exc:
        raise error(source, [Problem(exc.where, exc.reason)]) from exc
    if not isinstance(doc.data, dict):
        raise error(source, [Problem("(file)", "must be a YAML mapping at the top level")])
    try:
        return model.model_validate(doc.data), doc
    except ValidationError as exc:
        problems = []
        for err, problem in zip(exc.errors(include_url=False), problems_from(exc), strict=True):
            loc = tuple(err["loc"])
            where = problem.where if problem.where != "(event)" else "(file)"
            if describe is not None:
                where = describe(loc, doc.data) or where
            line = doc.line_of(loc)
            problems.append(Problem(f"{where} (line {line})" if line else where, problem.reason))
        raise error(source, problems) from exc
