"""What every command shares: exit codes, settings, the Redis connection, terminal output."""

from __future__ import annotations

import argparse
import json

EXIT_INPUT = 1
EXIT_CONFIG = 2
EXIT_REDIS = 3


def settings_for(args: argparse.Namespace):
    from worker.settings import Settings

    return Settings.from_env(policies_dir=getattr(args, "policies", None))


def connect_redis(settings):
    from worker.connection import connect

    return connect(settings)


def print_json(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def short(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"
