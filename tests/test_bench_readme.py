"""bench/readme_table.py: the one writer of benchmark tables into README.md."""

from __future__ import annotations

import pytest

from bench.readme_table import replace_block, update_readme
from worker.settings import REPO_ROOT


def test_replace_block_keeps_everything_around_the_markers() -> None:
    content = "intro\n<!-- bench:x:start -->\nold | row\n<!-- bench:x:end -->\noutro\n"
    assert (
        replace_block(content, "x", "| new |\n")
        == "intro\n<!-- bench:x:start -->\n| new |\n<!-- bench:x:end -->\noutro\n"
    )


def test_missing_markers_are_named(tmp_path) -> None:
    with pytest.raises(ValueError, match="bench:y:start"):
        replace_block("<!-- bench:x:start -->\n<!-- bench:x:end -->", "y", "t")
    with pytest.raises(ValueError, match="bench:x:end"):
        replace_block("<!-- bench:x:start -->\n", "x", "t")
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="bench:x:start"):
        update_readme("x", "t", readme)
    assert readme.read_text() == "no markers\n"


@pytest.mark.parametrize(
    "name", ["delivery", "guardrails", "reliability", "ordering", "quality", "webhooks", "throughput"]
)
def test_the_readme_has_the_markers_of_every_benchmark(name: str) -> None:
    replace_block((REPO_ROOT / "README.md").read_text(encoding="utf-8"), name, "t")
