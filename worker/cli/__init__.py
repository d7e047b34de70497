"""``replyguard`` command line.

Exit codes: 0 done; 1 some input was rejected (or missing, unreadable, or not
decided: no worker, a failed job, a timeout); 2 usage or configuration error
(broken policy, template, model, settings); 3 Redis unreachable. No command
prints a traceback. With ``--json`` stdout holds only JSON; progress and
messages go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys

from worker.cli import inbox, modelling, people, run
from worker.cli.console import EXIT_CONFIG, EXIT_INPUT, EXIT_REDIS, short
from worker.exceptions import ArtifactError, ConfigError, ReplyguardError, StoreError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="replyguard", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (run, inbox, modelling, people):
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from worker.privacy import redact

    redact.install()  # customer text, names, e-mails and phones never reach a log line
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # the reader went away (`replyguard show ID | head`): not an error of ours; stay quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REDIS
    except (ConfigError, ArtifactError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ReplyguardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - no traceback ever reaches a user
        if os.environ.get("REPLYGUARD_LOG_LEVEL", "").upper() == "DEBUG":
            import traceback

            traceback.print_exc()
        print(
            f"error: unexpected {type(exc).__name__}: {short(str(exc), 300)} "
            "(set REPLYGUARD_LOG_LEVEL=DEBUG for details)",
            file=sys.stderr,
        )
        return EXIT_INPUT
