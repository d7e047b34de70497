"""How many adversarial drafts get through the LLM guardrails, and how many good rewrites are kept.

    REDIS_URL=redis://127.0.0.1:6379/14 python bench/guardrails.py [--workers 2] [--update-readme]

Every case of ``eval/adversarial.py`` (attacks in six classes, EN and JA, and good rewrites) is
one customer message, ingested with ``replyguard ingest`` and decided by ``--workers`` real
``replyguard worker --burst`` processes (RQ, forking); the LLM is a loopback OpenAI-compatible
server answering each personalisation request with its case's draft. A draft "gets through"
when the decision used it and the outbox carries it. Also reported: the guardrails' CPU time
per draft (all checks, in this process, after warm-up).

The database in REDIS_URL is flushed. Without REDIS_URL an embedded server is used.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.readme_table import save_results, update_readme  # noqa: E402
from eval.adversarial import CASES, AdversarialLLM, collect, events, summary, write_policies  # noqa: E402
from worker.brands import load_brands  # noqa: E402
from worker.connection import EmbeddedRedis  # noqa: E402
from worker.guardrails import check_draft, failed  # noqa: E402
from worker.settings import Settings  # noqa: E402


def guardrail_cpu(settings: Settings) -> float:
    """Milliseconds of CPU per draft for all checks (the abuse model included)."""
    brand = load_brands(settings)["demo-shop"]
    abuse = brand.abuse
    drafts = []
    for case in CASES:
        template = (
            "Thanks Aiko! You can follow order KM-400001 live at https://komorebi.example/orders/KM-400001. "
            "Orders ship within 2 business days and you get an e-mail with tracking as soon as yours leaves Kyoto."
        )
        if case.language == "ja":
            template = (
                "田中 花子様、お問い合わせありがとうございます。ご注文 KM-400001 の配送状況は https://komorebi.example/orders/KM-400001 "
                "でご確認いただけます。ご注文から2営業日以内に発送し、発送時に追跡番号をメールでお送りしています。"
            )
        try:
            drafts.append((case, template, case.draft(template)))
        except ValueError:
            continue

    def run() -> None:
        for case, template, draft in drafts:
            failed(
                check_draft(
                    draft,
                    template_text=template,
                    customer_text="where is my order KM-400001?",
                    language=case.language,
                    policy=brand.policy,
                    max_chars=2000,
                    abuse=lambda t: dict(zip(abuse.labels, abuse.predict_proba([t])[0], strict=True)),
                    abuse_thresholds={"hate": 0.6, "offensive": 0.8},
                )
            )

    run()
    start = time.process_time()
    for _ in range(5):
        run()
    return (time.process_time() - start) * 1000 / (5 * len(drafts))


def measure(url: str, workers: int) -> dict:
    client = redis.Redis.from_url(url)
    client.flushdb()
    with AdversarialLLM() as server, tempfile.TemporaryDirectory(prefix="rg-guard-") as tmp:
        policies = write_policies(Path(tmp) / "policies", server.base_url, ROOT / "policies")
        settings = Settings(redis_url=url, home=Path(tmp) / "home", policies_dir=policies)
        env = {
            **os.environ,
            "REDIS_URL": url,
            "REPLYGUARD_POLICIES_DIR": str(policies),
            "REPLYGUARD_LOG_LEVEL": "WARNING",
        }
        data = Path(tmp) / "events.jsonl"
        data.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events()), encoding="utf-8")
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "worker.cli", "ingest", str(data)],
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "worker.cli", "worker", "--burst"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        for proc in procs:
            proc.wait(timeout=600)
        # a burst worker may quit before the LLM queue filled: finish it with one more
        subprocess.run(
            [sys.executable, "-m", "worker.cli", "worker", "--burst"], env=env, capture_output=True, timeout=600
        )
        seconds = time.monotonic() - started
        results = collect(client, settings)
        out = summary(results)
        out["seconds"] = round(seconds, 1)
        out["reasons"] = {r.case.id: r.reason for r in results}
        out["cpu_ms_per_draft"] = round(guardrail_cpu(settings), 2)
    client.flushdb()
    return out


def table(results: dict) -> str:
    lines = ["| class | attacks (EN / JA) | sent |", "|---|---:|---:|"]
    for category, row in results["by_category"].items():
        en = sum(c.kind == "attack" and c.category == category and c.language == "en" for c in CASES)
        ja = row["attacks"] - en
        lines.append(f"| {category} | {row['attacks']} ({en} / {ja}) | {row['through']} |")
    lines.append(
        f"| **all attacks** | **{results['attacks']}** ({results['attacks_en']} / {results['attacks_ja']}) "
        f"| **{results['attacks_through']}** |"
    )
    lines.append("")
    lines.append(
        f"Good rewrites kept: **{results['good_kept']} of {results['good']}**. Guardrail CPU time: "
        f"{results['cpu_ms_per_draft']} ms per draft (all checks incl. the abuse model). "
        f"Measured {results['date']} ({results['machine']}; {results['seconds']} s end to end with "
        f"{results['workers']} workers)."
    )
    if results["through"] or results["refused_good"] or results["not_planned"]:
        lines.append(
            f"Sent attacks: {results['through']}; refused good rewrites: {results['refused_good']}; "
            f"not personalised: {results['not_planned']}."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    server = None
    url = os.environ.get("REDIS_URL")
    if not url:
        server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="rg-bench-")), persist=False).start()
        url = server.url
    try:
        results = measure(url, args.workers)
    finally:
        if server:
            server.stop()
            shutil.rmtree(server.directory, ignore_errors=True)
    results.update(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        workers=args.workers,
        machine=f"{platform.machine()} Python {platform.python_version()}",
    )
    save_results("guardrails", results)
    text = table(results)
    print(text)
    if args.update_readme:
        update_readme("guardrails", text)


if __name__ == "__main__":
    main()
