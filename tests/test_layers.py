"""One direction of dependencies between replyguard's packages, checked on every import.

classifiers/ is the bottom layer and imports nothing of ours; worker/ builds on
classifiers/; eval/ may import both. Only the command-line entry point
(the module worker/cli.py) sees everything. Every import statement counts: module level,
inside functions, under ``if TYPE_CHECKING``, relative imports, and
``importlib.import_module("...")`` / ``__import__("...")`` with a literal name.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from tests.source_trees import parsed

ROOT = Path(__file__).resolve().parent.parent

#: package -> rank; a module may import packages of its own rank or lower.
LAYERS = {"classifiers": 0, "worker": 1, "eval": 2}
#: the command-line entry point, the one module that may import any layer (its command groups that
#: need no eval/ live in worker/commands/, which is checked like the rest of worker/).
ENTRY_POINT = "worker/cli.py"


def _module_name(path: Path, root: Path) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_names(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file at ``path``."""
    tree = parsed(path)
    here = _module_name(path, root)
    package = here if path.name == "__init__.py" else here[:-1]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            # ``from worker import x`` may import the submodule worker.x: the package is what matters here
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in ("import_module", "__import__") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    out.append((node.lineno, first.value))
    return out


def layer_violations(root: Path) -> list[str]:
    """Every import in ``root``'s layered packages that points upward, as ``file:line: a -> b``."""
    problems = []
    for package, rank in LAYERS.items():
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative == ENTRY_POINT:
                continue
            for line, name in imported_names(path, root):
                target = name.split(".")[0]
                if target in LAYERS and LAYERS[target] > rank:
                    problems.append(f"{relative}:{line}: {package} imports {name} (layer {target} is above {package})")
    return problems


def test_no_import_points_upward():
    assert layer_violations(ROOT) == []


def test_every_package_has_a_layer():
    """A new top-level package must be given a place in LAYERS (or the check would skip it)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.split(".")[0].rstrip("*") for p in include}
    on_disk = {d.name for d in ROOT.iterdir() if (d / "__init__.py").exists() and d.name != "tests"}
    assert packages == on_disk, "pyproject's packages.find must include every top-level package"
    assert packages == set(LAYERS)


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    for package in LAYERS:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_checker_finds_a_planted_upward_import(tmp_path):
    root = _plant(
        tmp_path,
        {
            "classifiers/ok.py": "import numpy\nfrom classifiers import errors\n",
            "classifiers/bad.py": "def f():\n    from worker.exceptions import ConfigError\n    return ConfigError\n",
            "worker/sub/deep.py": "def g():\n    from ...eval import metrics\n    return metrics\n",
            "worker/dynamic.py": "import importlib\nm = importlib.import_module('eval.replay')\n",
            "worker/fine.py": "import classifiers.metrics\nfrom . import fine\n",
            "worker/cli.py": "from eval import report\n",  # the entry point may
            "worker/commands/models.py": "from eval import report\n",  # a command group may not
            "eval/top.py": "import worker\nimport classifiers\n",
        },
    )
    found = layer_violations(root)
    assert found == [
        "classifiers/bad.py:2: classifiers imports worker.exceptions (layer worker is above classifiers)",
        "worker/commands/models.py:1: worker imports eval (layer eval is above worker)",
        "worker/dynamic.py:2: worker imports eval.replay (layer eval is above worker)",
        "worker/sub/deep.py:2: worker imports eval (layer eval is above worker)",
    ]


def test_checker_finds_an_import_under_type_checking(tmp_path):
    root = _plant(
        tmp_path,
        {
            "classifiers/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import eval.metrics\n",
        },
    )
    assert layer_violations(root) == [
        "classifiers/typed.py:3: classifiers imports eval.metrics (layer eval is above classifiers)"
    ]


def test_the_slow_lists_name_tests_that_exist():
    """A misspelt entry in conftest's SLOW_TESTS / SLOW_MODULES would silently put a slow test in the inner loop."""
    from tests.conftest import SLOW_MODULES, SLOW_TESTS

    root = Path(__file__).resolve().parent.parent
    missing = [m for m in SLOW_MODULES if not (root / m).is_file()]
    for nodeid in SLOW_TESTS:
        module, _, name = nodeid.partition("::")
        path = root / module
        tree = parsed(path) if path.is_file() else ast.Module(body=[])
        if not any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body):
            missing.append(nodeid)
    assert missing == []
