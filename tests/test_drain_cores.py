"""bench/drain_cores.py's accounting of idle core time during a drain, on synthetic scheduler samples."""

from __future__ import annotations

from bench.drain_cores import summarise


def _samples(pattern: list[tuple[float, str]]) -> list[tuple[float, str]]:
    return [(t, states) for t, states in pattern]


def test_idle_core_time_is_split_by_cause() -> None:
    # letters: worker 0, worker 1, Redis, ingest; R runnable, S blocked
    samples = _samples(
        [
            (0.5, "SSSR"),  # before any job: 1 core idle (start)
            (1.5, "RRSS"),  # both workers running: none idle
            (2.5, "SSRS"),  # both in a job, both blocked, Redis runs: 1 idle (both blocked)
            (3.5, "RSSS"),  # worker 1 between its jobs: 1 idle (between jobs)
            (4.5, "RSRS"),  # worker 1 in a job, blocked on Redis which runs: none idle
            (5.5, "RSSS"),  # worker 1 has finished its last job: 1 idle (tail)
            (6.5, "SSSS"),  # after the drain: outside the window
        ]
    )
    jobs = {0: [(1.0, 5.9)], 1: [(1.0, 3.0), (4.0, 5.0)]}
    out = summarise(samples, jobs, started=0.0, ingested=0.6, ended=6.0)
    assert out["samples"] == 6
    share = 1 / 6
    assert out["idle_cores"] == {
        "all": round(4 * share, 3),
        "start": round(share, 3),
        "tail": round(share, 3),
        "between jobs": round(share, 3),
        "both workers blocked": round(share, 3),
        "other": 0.0,
    }
    assert out["both_workers_blocked"] == round(2 * share, 3)  # at the start and while both were in a job
    assert out["runnable_share"][2] == round(2 * share, 3) and out["runnable_share"][1] == round(4 * share, 3)
    assert out["tail_seconds"] == 0.9 and out["seconds"] == 6.0


def test_no_samples_in_the_window() -> None:
    assert summarise([(9.0, "RRRR")], {0: [], 1: []}, started=0.0, ingested=0.1, ended=1.0) == {"samples": 0}
