"""Run every benchmark (``make bench``): throughput and memory, LLM guardrails, then classifier quality.

    python bench/run.py [--messages 10000] [--update-readme] [--skip-quality]

Throughput (bench/throughput.py) runs its own private redis-server (so that Redis's CPU time is its
own); bench/guardrails.py uses an embedded Redis unless REDIS_URL is set, in which case it FLUSHES
that database. Quality (bench/quality.py) needs
../shared/datasets; without them it is skipped with the reason. Each script writes
its results to bench/results/ and, with --update-readme, its table to README.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages for the throughput benchmark")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args(argv)
    readme = ["--update-readme"] if args.update_readme else []
    if os.environ.get("REDIS_URL"):
        print("guardrails: using REDIS_URL (its database is flushed)", file=sys.stderr)
    status = subprocess.call(
        [
            sys.executable,
            str(ROOT / "bench" / "throughput.py"),
            "--messages",
            str(args.messages),
            "--workers",
            str(args.workers),
            *readme,
        ]
    )
    if status:
        return status
    status = subprocess.call(
        [sys.executable, str(ROOT / "bench" / "guardrails.py"), "--workers", str(args.workers), *readme]
    )
    if status:
        return status
    if args.skip_quality:
        return 0
    if not (Path(args.shared) / "clinc150.jsonl").exists():
        print(f"quality: skipped, it needs the shared datasets at {args.shared}", file=sys.stderr)
        return 0
    return subprocess.call([sys.executable, str(ROOT / "bench" / "quality.py"), "--shared", args.shared, *readme])


if __name__ == "__main__":
    sys.exit(main())
