"""What every command shares: exit codes, settings, the Redis connection, terminal output."""

from __future__ import annotations

import argparse
import json

EXIT_INPUT = 1
EXIT_CONFIG = 2
EXIT_REDIS = 3


def at_least_one(value: str) -> int:
    """An argparse type: a whole number of at least 1 (``--limit 0`` would show or replay nothing and say nothing)."""
    return _whole_number(value, 1)


def not_negative(value: str) -> int:
    """An argparse type: a whole number of at least 0 (``--offset``)."""
    return _whole_number(value, 0)


def _whole_number(value: str, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``; else an argparse usage error (exit 2, before any work)."""
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least {minimum}, got {value!r}")
    return number


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
