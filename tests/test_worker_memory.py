"""What the worker's parent holds before it forks its processes (README "Worker memory").

Each check runs in a fresh interpreter: what a process has imported or allocated is process-wide."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_worker_whose_brands_use_no_llm_never_imports_openai() -> None:
    """openai is ~13 MB of Python objects that the parent would share with every process: imported only
    for a brand whose policy has an ``llm`` section (the default brand has none)."""
    out = _run(
        "import sys\n"
        "from worker.settings import Settings\n"
        "from worker.brands import load_brands\n"
        "import worker.cli, worker.pipeline, worker.prefork, worker.jobs, worker.queues, worker.drafting\n"
        "brands = load_brands(Settings())\n"
        "assert all(b.loaded.policy.llm is None for b in brands.values()), 'a default brand uses an LLM'\n"
        "print('openai' in sys.modules)\n"
        "from worker.llm import openai_package\n"
        "print(openai_package().__name__, 'openai' in sys.modules)\n"
    )
    assert out.splitlines() == ["False", "openai True"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RssAnon and malloc_trim are Linux/glibc")
def test_release_free_heap_gives_freed_heap_pages_back() -> None:
    """60 MB of 20 KB blocks freed below a live one stay resident in glibc's heap until trimmed."""
    out = _run(
        "from worker.prefork import release_free_heap\n"
        "def anon():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('RssAnon'): return int(line.split()[1]) // 1024\n"
        "blocks = [bytearray(20_000) for _ in range(3000)]\n"
        "live = bytearray(20_000)  # above the freed ones: free() alone cannot shrink the heap\n"
        "del blocks\n"
        "before = anon()\n"
        "print(release_free_heap(), before - anon())\n"
    )
    released, freed_mb = out.split()
    assert released == "True"
    assert int(freed_mb) >= 40, out


def _mapped(path: Path) -> bool:
    return any(line.rstrip().endswith(str(path)) for line in Path("/proc/self/maps").read_text().splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and fork")
def test_sentence_rows_are_the_files_read_once_into_memory_that_forked_processes_share() -> None:
    """SharedRows: the table's exact rows; a row a forked process reads is in memory its parent shares
    (MAP_SHARED), and the table file itself is never mapped (no fault-around of its cached pages)."""
    import os

    import numpy as np

    from classifiers.sentence import SharedRows, load_table, table_path

    table = load_table()
    rows = table.rows
    assert isinstance(rows, SharedRows) and not _mapped(table_path())
    reference = np.load(table_path(), mmap_mode="r")
    n_rows = reference.shape[0]
    ids = np.array(sorted({0, 1, 5, 4096, 77_777, n_rows - 2, n_rows - 1}))
    assert np.array_equal(rows.take(ids), reference[ids])  # the last page is a partial one
    fresh = np.array([1000, 1001, 50_000, 120_003])
    fresh = fresh[~rows._mine[fresh // rows._per_page]]  # rows this process has not read yet
    assert len(fresh) and not rows.rows[fresh].any()  # not read: zeros
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if np.array_equal(rows.take(fresh), reference[fresh]) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert np.array_equal(rows.rows[fresh], reference[fresh])  # read by the child, there in the parent too
    assert not rows._mine[fresh // rows._per_page].any()  # but the parent reads them itself before use
    assert np.array_equal(rows.take(fresh), reference[fresh])
    del reference  # the test's own mapping of the file
    assert not _mapped(table_path())


def test_every_vocabulary_shares_one_int_object_per_column() -> None:
    """The default models' vocabularies and the shared pass's unions number their terms with the same int
    objects (classifiers.features.columns), not ~400,000 ints of their own; the mappings are unchanged."""
    from classifiers.features import columns
    from classifiers.registry import ModelRegistry
    from classifiers.shared_pass import SharedPass

    registry = ModelRegistry()
    models = [registry.get(name) for name in ("spam-default", "abuse-default", "demo-shop-intent")]
    passes = SharedPass(models)
    vocabularies = [part.vocabulary_ for head in passes.heads for kind, part in head.blocks if kind == "ngrams"]
    vocabularies += list(passes.vocab.values())
    assert len(vocabularies) > 3
    for vocabulary in vocabularies:
        assert sorted(vocabulary.values()) == list(range(len(vocabulary)))  # column numbers 0 .. n-1
        shared = columns(len(vocabulary))
        assert all(column is shared[column] for column in vocabulary.values())
    for vocabulary in passes.vocab.values():  # the union numbers its terms in sorted order
        terms = sorted(vocabulary)
        assert all(vocabulary[term] == k for k, term in enumerate(terms))
    distinct = {id(column) for vocabulary in vocabularies for column in vocabulary.values()}
    assert len(distinct) == max(map(len, vocabularies))
