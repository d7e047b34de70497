"""The second half of ``replyguard demo``: platform-shaped webhooks through ``replyguard serve``.

It starts ``replyguard serve`` and a ``replyguard deliver`` process (live mode) pointed at a
loopback Graph API stand-in, posts signed Meta webhooks for the demo brand's example
accounts (WhatsApp in English and Japanese, a sticker, Messenger, an Instagram DM and
comments, a Facebook comment), repeats one as Meta's retry would, sends one unsigned,
and prints what each platform received. The RQ workers of the first half decide them.
Secrets are demo values set for these child processes only.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import time
from typing import Any

import httpx

from worker.inbound import samples as s
from worker.models import Decision
from worker.store import Store
from worker.web.process import ServeProcess, WorkerProcess

APP_SECRET = "demo-app-secret"
TOKEN = "standin-token"


def demo_env(graph_url: str) -> dict[str, str]:
    return {
        "META_APP_SECRET": APP_SECRET,
        "META_VERIFY_TOKEN": "demo-verify-token",
        "WHATSAPP_TOKEN": TOKEN,
        "META_PAGE_TOKEN": TOKEN,
        "REPLYGUARD_META_API_BASE": graph_url,
        "REPLYGUARD_DELIVERY_MODE": "live",
        "REPLYGUARD_LOG_LEVEL": "WARNING",
    }


def webhooks(run: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, message id, payload) of the demo's webhooks; ids and senders are unique per run."""
    now = int(time.time())
    ts, ms = str(now), now * 1000

    def wa(mid: str, sender: str, text: str, name: str) -> Any:
        return s.whatsapp([s.wa_text(mid, text, sender=sender, ts=ts)], name=name, wa_id=sender)

    return [
        (
            "whatsapp text",
            f"wamid.{run}1",
            wa(f"wamid.{run}1", f"8190{run}1", "Hi! Where is my order KM-204815?", "Kerry Fisher"),
        ),
        (
            "whatsapp text",
            f"wamid.{run}2",
            wa(f"wamid.{run}2", f"8190{run}2", "注文KM-318220はいつ届きますか？", "佐藤 陽翔"),
        ),
        (
            "whatsapp sticker",
            f"wamid.{run}3",
            s.whatsapp(
                [
                    s.wa_message(
                        f"wamid.{run}3",
                        "sticker",
                        {"id": "st-1", "mime_type": "image/webp"},
                        sender=f"8190{run}3",
                        ts=ts,
                    )
                ],
                name="Mia",
                wa_id=f"8190{run}3",
            ),
        ),
        (
            "messenger dm",
            f"m_{run}4",
            s.messaging(
                "page", s.PAGE_ID, [s.dm(f"m_{run}4", "What are your opening hours?", sender=f"62{run}4", ts_ms=ms)]
            ),
        ),
        (
            "instagram dm",
            f"ig_{run}5",
            s.messaging(
                "instagram",
                s.IG_ID,
                [
                    s.dm(
                        f"ig_{run}5",
                        "Do you ship to Canada? How long does it take?",
                        sender=f"11{run}5",
                        account=s.IG_ID,
                        ts_ms=ms,
                    )
                ],
            ),
        ),
        (
            "instagram comment",
            f"17{run}6",
            s.ig_comments(
                [
                    s.ig_comment(
                        f"17{run}6",
                        "CONGRATULATIONS you WON a FREE iPhone!!! claim now at http://prize-claims.example/win",
                        author_id=f"178{run}6",
                        username="prize.bot",
                    )
                ]
            ),
        ),
        (
            "facebook comment",
            f"{run}_7",
            s.page_feed([s.feed_comment(f"{run}_7", "How much is shipping to Japan?", author_id=f"54{run}7", ts=now)]),
        ),
    ]


def post(url: str, payload: dict[str, Any], signed: bool = True) -> int:
    body = s.dumps(payload)
    headers = {"content-type": "application/json"}
    if signed:
        headers["x-hub-signature-256"] = s.signature(body, APP_SECRET)
    return httpx.post(url + "/webhooks/meta", content=body, headers=headers, timeout=10).status_code


def _sent_text(body: dict[str, Any]) -> str | None:
    if isinstance(body.get("text"), dict):
        return body["text"].get("body")
    if isinstance(body.get("message"), dict):
        return body["message"].get("text")
    if isinstance(body.get("message"), str):
        return body["message"]
    if isinstance(body.get("template"), dict):
        return f"template {body['template'].get('name')}"
    return None


def what_was_sent(recorded: list[Any], decision: Decision) -> list[str]:
    """The Graph API calls the stand-in received for this decision."""
    keys = {decision.message_id, decision.author_id, str((decision.event.get("metadata") or {}).get("comment_id"))}
    out = []
    for r in recorded:
        blob = r.path + json.dumps(r.json, ensure_ascii=False) + json.dumps(r.query)
        if not any(k and k != "None" and k in blob for k in keys):
            continue
        text = _sent_text(r.json if isinstance(r.json, dict) else {})
        hidden = " hide" if "true" in (r.query.get("is_hidden"), r.query.get("hide")) else ""
        out.append(f"{r.method} {r.path}{hidden}" + (f" “{' '.join(str(text).split())}”" if text else ""))
    return out


def run_webhooks(
    redis_url: str, run: str, cell: Any, columns: int, env: dict[str, str] | None = None, key_prefix: str = "rg"
) -> int:
    """Post the demo webhooks, wait for decisions (and deliveries), print the table. Returns problems found."""
    import redis

    try:  # the Graph API stand-in comes with the delivery workers
        GraphStandIn = importlib.import_module("worker.standins.platforms").GraphStandIn  # noqa: N806
    except ImportError:  # not installed: show what the outbox holds for the deliverers
        GraphStandIn = None  # noqa: N806
    store = Store(redis.Redis.from_url(redis_url), key_prefix)
    problems = 0
    with contextlib.ExitStack() as stack:
        graph = stack.enter_context(GraphStandIn(token=TOKEN)) if GraphStandIn else None
        child_env = {**(env or {}), **demo_env(graph.url if graph else "http://127.0.0.1:9")}
        serve = stack.enter_context(ServeProcess(redis_url, env=child_env))
        if graph is not None:
            stack.enter_context(WorkerProcess(redis_url, env=child_env, command="deliver"))
            print(
                "\nPlatform webhooks through `replyguard serve` → decided → delivered to a loopback Graph API "
                f"stand-in\n\n  serve      {serve.url} (POST /webhooks/meta)   graph stand-in {graph.url}\n"
            )
        else:
            print(
                "\nPlatform webhooks through `replyguard serve` → decided → the outbox (no deliverer installed)\n"
                f"\n  serve      {serve.url} (POST /webhooks/meta)\n"
            )
        hooks = webhooks(run)
        statuses = [post(serve.url, payload) for _label, _mid, payload in hooks]
        retry = post(serve.url, hooks[0][2])  # Meta repeats a delivery it thinks failed
        unsigned = post(serve.url, hooks[1][2], signed=False)
        ids = [mid for _label, mid, _payload in hooks]
        deadline = time.monotonic() + 90
        decisions: list[Decision | None] = []
        while time.monotonic() < deadline:
            decisions = store.decisions([("demo-shop", i) for i in ids])
            if all(
                d is not None and (graph is None or len(getattr(d, "deliveries", [])) >= _expected(d))
                for d in decisions
            ):
                break
            time.sleep(0.2)
        time.sleep(0.5)
        recorded = list(graph.requests) if graph is not None else []
        outbox = [json.loads(f[b"payload"]) for _i, f in store.client.xrange(store.keys.outbox("demo-shop"))]
    width = max(30, columns - 60)
    print(
        f"{'webhook':18} {'HTTP':4} {cell('message', 34)} {'rule':22} "
        f"{'what the platform received' if graph else 'what the outbox holds for the platform'}"
    )
    print("-" * min(columns, 140))
    for (label, _mid, _payload), status, d in zip(hooks, statuses, decisions, strict=True):
        if d is None:
            problems += 1
            print(f"{label:18} {status:<4} (not decided)")
            continue
        text = d.event["text"]
        if graph is not None:
            sent = what_was_sent(recorded, d)
        else:
            sent = [
                f"{p['type']}" + (f" “{' '.join(str(p.get('text')).split())}”" if p.get("text") else "")
                for p in outbox
                if p.get("message_id") == d.message_id and p.get("type") in ("reply", "hide")
            ]
        sent = sent or [f"nothing ({_why_nothing(d)})"]
        print(
            f"{label:18} {status:<4} {cell(text or '(' + str(d.event.get('unreadable')) + ')', 34)} "
            f"{cell(d.rule, 22)} {cell(sent[0], width)}"
        )
        for extra in sent[1:]:
            print(f"{'':81} {cell(extra, width)}")
    first = decisions[0] if decisions else None
    if graph is not None:
        answers = len(what_was_sent(recorded, first)) if first else 0
        where = f"{answers} call{'s' if answers != 1 else ''} to the Graph API"
    else:
        answers = sum(
            1 for p in outbox if first and p.get("message_id") == first.message_id and p.get("type") == "reply"
        )
        where = f"{answers} reply in the outbox"
    print(f"\nMeta's retry of the first webhook: HTTP {retry}; it was decided and answered once ({where}).")
    print(f"An unsigned webhook: HTTP {unsigned}, nothing stored.")
    if retry != 200 or unsigned != 401 or answers != 1:
        problems += 1
    return problems


def _expected(d: Decision) -> int:
    """How many delivery records to wait for (replies and hides; escalations send nothing)."""
    return int(bool(d.reply)) + int(any(a.value == "hide" for a in d.actions))


def _why_nothing(d: Decision) -> str:
    if d.escalation:
        return f"escalated to {d.escalation.role}: {d.escalation.reason[:60]}"
    return ", ".join(f"{r.action} {r.status}" for r in getattr(d, "deliveries", [])) or "no action"
