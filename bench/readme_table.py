"""What every benchmark script does with its figures: save them under bench/results/ and write
their table into README.md between ``<!-- bench:<name>:start -->`` and ``<!-- bench:<name>:end -->``.

    from bench.readme_table import load_note, save_results, update_readme

    save_results("webhooks", results)          # bench/results/webhooks.json
    update_readme("webhooks", table_text)      # README.md, between the bench:webhooks markers

The scripts put the repository root on ``sys.path`` before importing this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "bench" / "results"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def replace_block(content: str, name: str, text: str) -> str:
    """``content`` with what stands between the ``name`` markers replaced by ``text``.

    Raises ValueError naming the missing marker (a README without them is not silently left as it was).
    """
    start, end = markers(name)
    if start not in content:
        raise ValueError(f"README.md has no {start} marker")
    head, rest = content.split(start, 1)
    if end not in rest:
        raise ValueError(f"README.md has no {end} marker after {start}")
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{text.strip(chr(10))}\n{end}{tail}"


def update_readme(name: str, text: str, readme: Path = README) -> None:
    """Write ``text`` between the ``bench:<name>`` markers of ``readme``; exits with a message if they are missing."""
    try:
        updated = replace_block(readme.read_text(encoding="utf-8"), name, text)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    readme.write_text(updated, encoding="utf-8")


def save_results(name: str, results: object, directory: Path = RESULTS) -> Path:
    """``bench/results/<name>.json`` (UTF-8, indented); returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load_note() -> str:
    """The machine's load averages now (1, 5, 15 min) and its cores, for the line beside a figure."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} cores"
