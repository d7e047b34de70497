"""From one outbox entry and its decision to the outbound calls that carry it out.

Entry types: ``reply`` (text of approved templates), ``hide``, and ``decision`` (every final
decision, for connectors). Rules applied here:

* **24-hour window** (WhatsApp, Messenger, Instagram DMs): a free-form reply later than 24 h after
  the customer's last message is not sent. On WhatsApp the main template's registered
  ``whatsapp_template`` is sent instead when it declares one; otherwise the step is *skipped*
  with ``window_closed`` and the decision escalates with the reason.
* **Private replies**: with ``delivery.private_replies``, a private-matter answer to an
  Instagram / Facebook comment is sent as the one private reply to that comment (within 7 days).
* **YouTube hides** become ``setModerationStatus`` (``delivery.youtube.hide_as``; ``rejected`` with
  ``banAuthor`` for the rules in ``ban_author_rules``).
* **Connectors**: every webhook connector whose filter wants the decision gets a signed POST;
  a Chatwoot conversation that escalated gets a private note and is opened for people.

Each step has an idempotency ``key`` (unique within its message) used by the deliverer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import httpx

from worker import defaults
from worker.delivery import webhooks
from worker.delivery.chatwoot import ChatwootClient, handoff_note
from worker.delivery.graph import GraphClient
from worker.delivery.youtube import YouTubeClient, count_quota
from worker.models import Action, Decision
from worker.policy import Policy
from worker.settings import Settings
from worker.templates import TemplateBook

WINDOW_PLATFORMS = ("whatsapp", "messenger", "instagram")


@dataclass
class Step:
    key: str  # idempotency key within the message (reply, hide, webhook:crm, …)
    action: str  # what is done (reply, template, private_reply, hide, webhook:crm, chatwoot_note, …)
    target: str  # platform or connector
    account: str | None = None  # rate-limit bucket
    send: Callable[[], str] | None = None  # returns the platform's id for what it created
    skip: tuple[str, str] | None = None  # (code, detail): not sent, recorded as skipped
    escalate_skip: bool = True  # a skipped step escalates the decision
    dedupable: bool = False  # the receiver drops repeats (our delivery id): re-sending is safe
    on_failure: Literal["escalate", "dead_letter"] = "escalate"
    chars: int = 0  # for logs: how much text (never the text)


class MissingToken(Exception):
    def __init__(self, variable: str):
        self.variable = variable


class Planner:
    """Builds steps; holds the HTTP client shared by the platform clients."""

    def __init__(
        self,
        settings: Settings,
        store: Any,
        policies: Mapping[str, Policy],
        books: Mapping[str, TemplateBook],
        http: httpx.Client,
        environ: Mapping[str, str] | None = None,
    ):
        self.settings = settings
        self.store = store
        self.policies = policies
        self.books = books
        self.http = http
        self.environ = os.environ if environ is None else environ

    def mode(self, brand: str) -> str:
        return self.settings.delivery_mode or self.policies[brand].delivery.mode

    def _secret(self, variable: str | None) -> str:
        value = self.environ.get(variable or "") if variable else None
        if not value:
            raise MissingToken(variable or "(no variable configured)")
        return value

    # -- clients (built per call: tokens are read from the environment when needed) --------

    def _graph(self, policy: Policy, platform: str) -> GraphClient:
        channel = policy.channels.get(platform)
        return GraphClient(
            self.settings.meta_api_base, self._secret(channel.access_token_env if channel else None), self.http
        )

    def _youtube(self, policy: Policy) -> YouTubeClient:
        channel = policy.channels.youtube
        return YouTubeClient(
            self.settings.youtube_api_base, self._secret(channel.access_token_env if channel else None), self.http
        )

    def _chatwoot(self, policy: Policy) -> ChatwootClient:
        cw = policy.connectors.chatwoot
        if cw is None:
            raise MissingToken("connectors.chatwoot (not configured)")
        return ChatwootClient(cw.base_url, cw.account_id, self._secret(cw.api_token_env), self.http)

    def _account(self, policy: Policy, decision: Decision) -> str | None:
        meta = decision.event.get("metadata") or {}
        for name in ("account_id", "phone_number_id", "page_id"):
            if meta.get(name):
                return str(meta[name])
        channel = policy.channels.get(decision.platform)
        return channel.account_ids[0] if channel else None

    # -- steps ---------------------------------------------------------------------------

    def steps(self, payload: dict[str, Any], decision: Decision, now: datetime | None = None) -> list[Step]:
        now = now or datetime.now(timezone.utc)
        kind = payload.get("type")
        human = bool(payload.get("by"))  # written by a person in the review app
        if kind == "reply":
            steps = [self._reply(decision, str(payload.get("text") or ""), now, human=human)]
        elif kind in ("hide", "unhide"):
            steps = [self._hide(decision, unhide=kind == "unhide")]
        elif kind == "decision":
            return self._connectors(decision)
        elif kind in ("block", "unblock"):
            steps = [
                Step(
                    str(kind),
                    str(kind),
                    decision.platform,
                    escalate_skip=False,
                    skip=("unsupported", f"replyguard does not {kind} authors on {decision.platform} through its API"),
                )
            ]
        else:
            steps = [
                Step(
                    f"unknown:{kind}",
                    str(kind),
                    "none",
                    escalate_skip=False,
                    skip=("unknown_entry", f"outbox entry type {kind!r} is not known"),
                )
            ]
        if payload.get("action_id"):  # a person's action: its own idempotency record, apart from the automated one
            for step in steps:
                step.key = f"{step.key}:{payload['action_id']}"
        return steps

    def _reply(self, d: Decision, text: str, now: datetime, *, human: bool = False) -> Step:
        policy = self.policies[d.brand]
        meta = d.event.get("metadata") or {}
        platform, chars = d.platform, len(text)
        if isinstance(meta.get("chatwoot"), dict) and policy.connectors.chatwoot:
            conv = meta["chatwoot"].get("conversation_id")
            return Step(
                "reply",
                "reply",
                "chatwoot",
                account=str(policy.connectors.chatwoot.account_id),
                send=lambda: self._chatwoot(policy).message(conv, text),
                chars=chars,
            )
        account = self._account(policy, d)
        created = datetime.fromisoformat(d.event["created_at"])
        if d.kind == "dm" and platform in WINDOW_PLATFORMS:
            last = self.store.last_customer_message(d.brand, d.conversation_id)
            last = max(created, last) if last else created
            closed = now - last > timedelta(seconds=defaults.CUSTOMER_SERVICE_WINDOW_SECONDS)
            if platform == "whatsapp":
                if account is None:
                    return Step(
                        "reply",
                        "reply",
                        platform,
                        chars=chars,
                        skip=(
                            "no_account",
                            "no WhatsApp phone_number_id in the event or the brand's channels.whatsapp",
                        ),
                    )
                if closed:
                    wa = self._whatsapp_template(d)
                    if wa is None:
                        return Step(
                            "reply",
                            "reply",
                            platform,
                            account=account,
                            chars=chars,
                            skip=(
                                "window_closed",
                                f"customer's last message {_hours(now - last)} ago; "
                                f"template {d.template.id if d.template else '?'} declares no whatsapp_template",
                            ),
                        )
                    name, language = wa
                    return Step(
                        "reply",
                        "template",
                        platform,
                        account=account,
                        chars=0,
                        send=lambda: self._graph(policy, platform).whatsapp_template(
                            account, d.author_id, name, language, callback_data=f"{d.brand}/{d.message_id}/reply"
                        ),
                    )
                return Step(
                    "reply",
                    "reply",
                    platform,
                    account=account,
                    chars=chars,
                    send=lambda: self._graph(policy, platform).whatsapp_text(
                        account,
                        d.author_id,
                        text,
                        reply_to=d.message_id,
                        callback_data=f"{d.brand}/{d.message_id}/reply",
                    ),
                )
            if closed and human and now - last <= timedelta(seconds=defaults.HUMAN_AGENT_WINDOW_SECONDS):
                # a person's answer may go out up to 7 days later with the HUMAN_AGENT tag
                return Step(
                    "reply",
                    "reply",
                    platform,
                    account=account,
                    chars=chars,
                    send=lambda: self._graph(policy, platform).send_message(d.author_id, text, tag="HUMAN_AGENT"),
                )
            if closed:
                return Step(
                    "reply",
                    "reply",
                    platform,
                    account=account,
                    chars=chars,
                    skip=("window_closed", f"customer's last message {_hours(now - last)} ago"),
                )
            return Step(
                "reply",
                "reply",
                platform,
                account=account,
                chars=chars,
                send=lambda: self._graph(policy, platform).send_message(d.author_id, text),
            )
        comment_id = str(meta.get("comment_id") or d.message_id)
        if d.kind == "comment" and platform in ("instagram", "facebook"):
            if policy.delivery.private_replies and d.rule.startswith("private_matter"):
                if now - created > timedelta(seconds=defaults.PRIVATE_REPLY_WINDOW_SECONDS):
                    return Step(
                        "reply",
                        "private_reply",
                        platform,
                        account=account,
                        chars=chars,
                        skip=("private_reply_window_closed", f"comment written {_hours(now - created)} ago"),
                    )
                return Step(
                    "reply",
                    "private_reply",
                    platform,
                    account=account,
                    chars=chars,
                    send=lambda: self._graph(policy, platform).private_reply(account or "me", comment_id, text),
                )
            return Step(
                "reply",
                "reply",
                platform,
                account=account,
                chars=chars,
                send=lambda: self._graph(policy, platform).comment_reply(platform, comment_id, text),
            )
        if d.kind == "comment" and platform == "youtube":

            def insert() -> str:
                answer = self._youtube(policy).reply(comment_id, text)
                count_quota(self.store.client, self.store.keys, d.brand, "comments.insert")
                return answer

            return Step("reply", "reply", platform, account=account, chars=chars, send=insert)
        return Step(
            "reply",
            "reply",
            platform,
            account=account,
            chars=chars,
            escalate_skip=False,
            skip=("unsupported", f"replyguard cannot send {d.kind} replies on {platform}"),
        )

    def _whatsapp_template(self, d: Decision) -> tuple[str, str] | None:
        book = self.books.get(d.brand)
        template = book.by_id.get(d.template.id) if (book and d.template) else None
        if template is None or template.whatsapp_template is None:
            return None
        return template.whatsapp_template.name, template.whatsapp_template.language

    def _hide(self, d: Decision, *, unhide: bool = False) -> Step:
        policy = self.policies[d.brand]
        name = "unhide" if unhide else "hide"
        account = self._account(policy, d)
        comment_id = str((d.event.get("metadata") or {}).get("comment_id") or d.message_id)
        if d.kind == "comment" and d.platform in ("instagram", "facebook"):
            return Step(
                name,
                name,
                d.platform,
                account=account,
                send=lambda: self._graph(policy, d.platform).hide_comment(d.platform, comment_id, hidden=not unhide),
            )
        if d.kind == "comment" and d.platform == "youtube":
            yt = policy.delivery.youtube
            ban = d.rule in yt.ban_author_rules and not unhide
            status = "published" if unhide else ("rejected" if ban else yt.hide_as)

            def moderate() -> str:
                answer = self._youtube(policy).set_moderation_status(comment_id, status, ban_author=ban)
                count_quota(self.store.client, self.store.keys, d.brand, "comments.setModerationStatus")
                return answer

            return Step(name, f"{name}:{status}{'+ban' if ban else ''}", "youtube", account=account, send=moderate)
        return Step(
            name,
            name,
            d.platform,
            account=account,
            escalate_skip=False,
            skip=("unsupported", f"replyguard cannot hide a {d.kind} on {d.platform}"),
        )

    def sla_steps(self, brand: str, entry_id: str, payload: dict[str, Any]) -> list[Step]:
        """An SLA event marked for notification (``sla.breached`` …) → each webhook connector with
        ``sla_events`` gets it, signed like decisions (``{"event": type, "sla": payload}``)."""
        policy = self.policies[brand]
        kind = str(payload.get("type") or "sla")
        steps = []
        for hook in policy.connectors.webhooks:
            if not hook.sla_events:
                continue
            delivery_id = f"{brand}/{payload.get('message_id')}/{kind}/{entry_id}/webhook:{hook.name}"
            steps.append(
                Step(
                    f"{kind}:{entry_id}:webhook:{hook.name}",
                    f"webhook:{hook.name}:{kind}",
                    f"webhook:{hook.name}",
                    account=hook.name,
                    dedupable=True,
                    on_failure="dead_letter",
                    send=self._webhook_sender(hook, delivery_id, {"event": kind, "sla": payload}, kind),
                )
            )
        return steps

    def _webhook_sender(
        self, hook: Any, delivery_id: str, body: dict[str, Any], event: str = "decision"
    ) -> Callable[[], str]:
        """Posts ``body`` to ``hook`` when called (the secret is read then, not at planning)."""

        def send() -> str:
            return webhooks.post(self.http, hook.url, self._secret(hook.secret_env), delivery_id, body, event=event)

        return send

    def _connectors(self, d: Decision) -> list[Step]:
        policy = self.policies[d.brand]
        steps = []
        actions = [a.value for a in d.actions]
        for hook in policy.connectors.webhooks:
            if not hook.wants(actions, d.rule):
                continue
            delivery_id = f"{d.brand}/{d.message_id}/webhook:{hook.name}"
            steps.append(
                Step(
                    f"webhook:{hook.name}",
                    f"webhook:{hook.name}",
                    f"webhook:{hook.name}",
                    account=hook.name,
                    dedupable=True,
                    on_failure="dead_letter",
                    send=self._webhook_sender(hook, delivery_id, webhooks.payload(d)),
                )
            )
        meta = d.event.get("metadata") or {}
        cw = policy.connectors.chatwoot
        if cw and isinstance(meta.get("chatwoot"), dict) and Action.ESCALATE in d.actions:
            conv = meta["chatwoot"].get("conversation_id")
            note = handoff_note(d)
            steps.append(
                Step(
                    "chatwoot_note",
                    "chatwoot_note",
                    "chatwoot",
                    account=str(cw.account_id),
                    send=lambda: self._chatwoot(policy).message(conv, note, private=True),
                    escalate_skip=False,
                )
            )
            steps.append(
                Step(
                    "chatwoot_open",
                    "chatwoot_open",
                    "chatwoot",
                    account=str(cw.account_id),
                    send=lambda: self._chatwoot(policy).open(conv),
                )
            )
        return steps


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"
