"""CLINC150 training time of the intent default (issue 12's goal: under 2 minutes on 2 cores).

    python bench/training.py [--shared ../shared/datasets] [--processes N] [--save FILE.npy]
    python bench/training.py --compare A.npy B.npy

Fits ``DEFAULT_CONFIGS["intent"]`` on CLINC150's train split exactly as ``eval`` does for
bench/quality.py's CLINC150 row (``fitted_config``, then ``classifiers.build.fit``) and prints the fit's
wall seconds (the table's ``train time``), the CPU seconds of this process and of its worker processes,
and the load average before and after (the machine is shared: compare checkouts in alternating runs,
``PYTHONPATH=<other checkout> python bench/training.py``). ``--save`` writes the model's predicted
probabilities on the val and test splits, ``--compare`` says whether two such files are bit-identical
(the same model, so the same quality figures) and how far apart they are if not. Nothing else is written.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path and not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(ROOT))


def compare(a: Path, b: Path) -> int:
    left, right = np.load(a), np.load(b)
    if left.shape != right.shape:
        print(f"different shapes: {left.shape} {right.shape}")
        return 1
    same = np.array_equal(left, right)
    print(f"bit-identical: {same}; max abs diff {np.abs(left - right).max():.3g}; rows {len(left)}")
    return 0 if same else 1


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--processes", type=int, default=None, help="worker processes (default: fit's own choice)")
    parser.add_argument("--save", type=Path, help="write val+test predicted probabilities here (.npy)")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("A", "B"))
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)

    from joblib.externals.loky import get_reusable_executor

    import classifiers.build
    from classifiers.build import DEFAULT_CONFIGS, fit, fitted_config
    from classifiers.datasets import read_dataset, with_splits

    ds = with_splits(read_dataset(Path(args.shared) / "clinc150.jsonl"))
    train = ds.split("train")
    config, _ = fitted_config(DEFAULT_CONFIGS["intent"], [e.label for e in train])
    load_before = os.getloadavg()
    cpu_before = cpu_seconds(resource.RUSAGE_SELF)
    started = time.perf_counter()
    model = fit(config, [e.text for e in train], [e.label for e in train], [e.weight for e in train], args.processes)
    seconds = time.perf_counter() - started
    cpu_main = cpu_seconds(resource.RUSAGE_SELF) - cpu_before
    load_after = os.getloadavg()
    get_reusable_executor().shutdown(wait=True)  # reaped worker processes count in RUSAGE_CHILDREN
    cpu_workers = cpu_seconds(resource.RUSAGE_CHILDREN)
    print(
        f"{classifiers.build.__file__}: train {seconds:.1f} s wall; CPU {cpu_main + cpu_workers:.1f} s "
        f"(this process {cpu_main:.1f}, workers {cpu_workers:.1f}); load {load_before[0]:.1f} -> {load_after[0]:.1f}; "
        f"{len(train)} rows, {os.cpu_count()} cores, processes {args.processes or classifiers.build.TRAINING_PROCESSES}",
        flush=True,
    )
    if args.save:
        rows = ds.split("val") + ds.split("test")
        np.save(args.save, model.predict_proba([e.text for e in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
