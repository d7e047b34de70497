"""``python -m worker.standins graph|youtube|chatwoot|webhook [--port P] [--token T]``: run one stand-in
in the foreground (for the benchmark and for trying replyguard by hand). Prints its URL."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from worker.standins import ChatwootStandIn, GraphStandIn, WebhookReceiver, YouTubeStandIn

KINDS = {"graph": GraphStandIn, "youtube": YouTubeStandIn, "chatwoot": ChatwootStandIn}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.standins")
    parser.add_argument("kind", choices=[*KINDS, "webhook"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="standin-token", help="the access token it accepts (webhook: the secret)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every answer takes")
    args = parser.parse_args(argv)
    if args.kind == "webhook":
        server = WebhookReceiver(secret=args.token, port=args.port, delay=args.delay)
    else:
        server = KINDS[args.kind](token=args.token, port=args.port, delay=args.delay)
    server.start()
    print(server.url, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    server.stop()
    print(f"received {len(server.requests)} requests", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
