"""Syntax trees of source files, parsed once per test process.

The structural tests (tests/test_layers.py, tests/test_write_path.py) walk every module of
worker/, eval/ and classifiers/ (~0.6 s of CPU to parse them all); each used to parse them again.
A file's tree is kept with its size and modification time, so an edited file is parsed again.
"""

from __future__ import annotations

import ast
from pathlib import Path

_trees: dict[Path, tuple[tuple[int, int], ast.Module]] = {}


def parsed(path: Path) -> ast.Module:
    """The syntax tree of the Python file at ``path``. Callers must not change it."""
    stat = path.stat()
    stamp = (stat.st_size, stat.st_mtime_ns)
    found = _trees.get(path)
    if found is None or found[0] != stamp:
        found = _trees[path] = (stamp, ast.parse(path.read_bytes(), filename=str(path)))
    return found[1]
