"""What people do to review items: claim, reply, hide, label, re-route, resolve, tag or block.

Every action is one Redis transaction that (a) checks the item is not claimed by
someone else (WATCH on the claim), (b) writes its effects — outbox entries go
through :meth:`worker.store.Store.queue_outbox`, the same stream and payload shape
as automated replies and hides, so the same deliverer carries them out — and
(c) appends the audit entry (:mod:`worker.audit`). All or nothing.

When an SLA tracker is given (:class:`worker.sla.tracker.SlaTracker`), a person's
reply meets the response targets and resolving stops the clocks, right after
the action's transaction.

Errors are :class:`ActionError` with an HTTP-like ``status`` (403 not allowed,
404 unknown item, 409 claimed by someone else, 422 bad input).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import redis

from worker import defaults
from worker.accounts import User
from worker.audit import AuditEntry, AuditLog
from worker.entities import template_values
from worker.exceptions import RenderError, ReplyguardError, TemplateError
from worker.models import Correction, Decision, Escalation, InboundEvent
from worker.placeholders import parse_text
from worker.store import Store, outbox_payload, review_member, review_score

ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
TAG_PATTERN = re.compile(r"^[\w][\w .:-]{0,63}$")
#: A placeholder left in text a person wrote: {name} (the only placeholder syntax there is).
UNFILLED = re.compile(r"\{[a-z_][a-z0-9_]*\}")
MAX_REPLY_CHARS = 4_000

_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if (not holder) or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return ARGV[1]
end
return holder
"""


class ActionError(ReplyguardError):
    """An action was refused. ``status`` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str, **detail: Any):
        self.status = status
        self.detail = detail
        super().__init__(message)


class ReviewActions:
    def __init__(self, store: Store, brands: dict[str, Any], audit: AuditLog, sla: Any = None):
        self.store = store
        self.sla = sla
        self.client = store.client
        self.keys = store.keys
        self.brands = brands
        self.audit = audit
        self._claim = self.client.register_script(_CLAIM)

    # -- helpers ------------------------------------------------------------------------

    def decision(self, user: User, brand: str, message_id: str) -> Decision:
        """The item's decision, or 404 (also when the user may not see the brand: no hint it exists)."""
        decision = self.store.decision(brand, message_id) if user.may_see(brand) else None
        if decision is None:
            raise ActionError(404, f"no item {brand}/{message_id}")
        return decision

    def _moderator(self, user: User, action: str) -> None:
        if not user.moderates:
            raise ActionError(
                403,
                f"{action}: role {user.role} may not take moderation actions "
                f"(allowed: {', '.join(defaults.MODERATION_ROLES)})",
            )

    def _state(self, brand: str, message_id: str) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.client.hgetall(self.keys.item(brand, message_id)).items()}

    def _hidden(self, decision: Decision, state: dict[str, str]) -> bool:
        if "hidden" in state:
            return state["hidden"] == "1"
        return "hide" in [a.value for a in decision.actions]

    def _commit(
        self,
        user: User,
        decision: Decision,
        action: str,
        before: dict[str, Any],
        after: dict[str, Any],
        write: Callable[[Any, AuditEntry], list[dict[str, Any]]],
        note: str | None = None,
    ) -> AuditEntry:
        """Run ``write(pipe, entry)`` (returns the outbox payloads it queued) and the audit entry atomically,
        unless someone else holds the item's claim."""
        brand, mid = decision.brand, decision.message_id
        claim_key = self.keys.claim(brand, mid)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(claim_key, self.keys.item(brand, mid), self.keys.decision(brand, mid))
                    holder = pipe.get(claim_key)
                    if holder is not None and holder.decode() != user.name:
                        pipe.unwatch()
                        raise ActionError(
                            409, f"{brand}/{mid} is claimed by {holder.decode()}", claimed_by=holder.decode()
                        )
                    entry = AuditEntry(
                        action=action,
                        user=user.name,
                        role=user.role,
                        brand=brand,
                        message_id=mid,
                        before=before,
                        after=after,
                        note=note,
                    )
                    pipe.multi()
                    payloads = write(pipe, entry)
                    for payload in payloads:
                        payload.update(by=user.name, action_id=entry.action_id)
                        self.store.queue_outbox(pipe, payload)
                    entry.outbox = [p["type"] for p in payloads]
                    self.audit.append(pipe, entry)
                    results = pipe.execute()
                    entry.id = results[-1].decode() if isinstance(results[-1], bytes) else str(results[-1])
                    return entry
                except redis.WatchError:
                    continue

    def _event(self, decision: Decision) -> InboundEvent:
        return InboundEvent.model_validate(decision.event)

    def _resolve_ops(self, pipe: Any, user: User, decision: Decision, resolution: str) -> None:
        brand, mid = decision.brand, decision.message_id
        pipe.zrem(self.keys.review, review_member(brand, mid))
        pipe.hset(
            self.keys.item(brand, mid),
            mapping={
                "status": "resolved",
                "resolved_by": user.name,
                "resolution": resolution,
                "resolved_at": datetime.now(timezone.utc).isoformat(),
            },
        )
        pipe.delete(self.keys.claim(brand, mid))

    def _sla_after(self, decision: Decision, user: User, responded: bool = False, resolved: bool = False) -> None:
        """Tell the SLA timers a person answered and/or closed the item (no-op without a tracker or timer)."""
        if self.sla is None:
            return
        now = datetime.now(timezone.utc)
        if responded:
            self.sla.responded(decision.brand, decision.message_id, now, by=user.name, automated=False)
        if resolved:
            self.sla.resolved(decision.brand, decision.message_id, now, by=user.name)

    def _open(self, decision: Decision) -> bool:
        return self.client.zscore(self.keys.review, review_member(decision.brand, decision.message_id)) is not None

    # -- claim --------------------------------------------------------------------------

    def claim(self, user: User, brand: str, message_id: str) -> dict[str, Any]:
        decision = self.decision(user, brand, message_id)
        holder = self._claim(
            keys=[self.keys.claim(brand, message_id)], args=[user.name, defaults.CLAIM_TTL_SECONDS]
        ).decode()
        if holder != user.name:
            raise ActionError(409, f"{brand}/{message_id} is claimed by {holder}", claimed_by=holder)
        self._commit(user, decision, "claim", {}, {"claimed_by": user.name}, lambda pipe, entry: [])
        return {"claimed_by": user.name, "expires_in": defaults.CLAIM_TTL_SECONDS}

    def release(self, user: User, brand: str, message_id: str) -> dict[str, Any]:
        decision = self.decision(user, brand, message_id)
        key = self.keys.claim(brand, message_id)
        holder = self.client.get(key)
        if holder is None:
            return {"claimed_by": None}
        holder_name = holder.decode()
        if holder_name != user.name and user.role not in ("manager", "admin"):
            raise ActionError(409, f"{brand}/{message_id} is claimed by {holder_name}", claimed_by=holder_name)

        def write(pipe: Any, entry: AuditEntry) -> list[dict[str, Any]]:
            pipe.delete(key)
            return []

        if holder_name != user.name:  # a manager taking a claim away: bypass the claim check
            with self.client.pipeline(transaction=True) as pipe:
                entry = AuditEntry(
                    action="release",
                    user=user.name,
                    role=user.role,
                    brand=brand,
                    message_id=message_id,
                    before={"claimed_by": holder_name},
                    after={"claimed_by": None},
                )
                pipe.delete(key)
                self.audit.append(pipe, entry)
                pipe.execute()
        else:
            self._commit(user, decision, "release", {"claimed_by": holder_name}, {"claimed_by": None}, write)
        return {"claimed_by": None}

    # -- replies --------------------------------------------------------------------------

    def templates(self, brand: str) -> list[dict[str, Any]]:
        """Approved templates of ``brand`` (what a person may send), with their variables."""
        config = self.brands.get(brand)
        if config is None:
            return []
        rows = []
        for t in config.templates.by_id.values():
            if t.status != "approved":
                continue
            names = [s.name for s in parse_text(t.body) if not isinstance(s, str)]
            rows.append(
                {
                    "id": t.id,
                    "intent": t.intent,
                    "language": t.language,
                    "version": t.version,
                    "body": t.body,
                    "variables": list(dict.fromkeys(names)),
                }
            )
        return sorted(rows, key=lambda r: (r["intent"], r["language"]))

    def preview(
        self, user: User, brand: str, message_id: str, template_id: str, variables: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """The template filled for this item: ``text`` or the ``missing`` variables (never a fallback body:
        a person chose this template and sees exactly what goes out)."""
        decision = self.decision(user, brand, message_id)
        config = self.brands.get(brand)
        template = config.templates.by_id.get(template_id) if config else None
        if config is None or template is None or template.status != "approved":
            raise ActionError(422, f"template {template_id!r} is not an approved template of {brand}")
        values = template_values(self._event(decision), decision.entities, config.policy)
        known = config.policy.template_variables()
        for name, value in (variables or {}).items():
            if name not in known:
                raise ActionError(422, f"unknown template variable {{{name}}}; known: {', '.join(sorted(known))}")
            if not isinstance(value, str) or len(value) > 500:
                raise ActionError(422, f"variable {{{name}}}: must be text of at most 500 characters")
            if value.strip():
                values[name] = value.strip()
        needed = [s.name for s in parse_text(template.body) if not isinstance(s, str)]
        missing = [n for n in dict.fromkeys(needed) if not values.get(n)]
        text = None
        if not missing:
            from worker.placeholders import fill

            text, _ = fill(parse_text(template.body), values)
        return {
            "template": {"id": template.id, "version": template.version},
            "text": text,
            "missing": missing,
            "values": {n: values.get(n, "") for n in dict.fromkeys(needed)},
        }

    def reply_template(
        self,
        user: User,
        brand: str,
        message_id: str,
        template_id: str,
        variables: dict[str, str] | None = None,
        resolve: bool = True,
    ) -> dict[str, Any]:
        preview = self.preview(user, brand, message_id, template_id, variables)
        if preview["missing"]:
            raise ActionError(
                422,
                "fill every variable before sending: " + ", ".join("{" + m + "}" for m in preview["missing"]),
                missing=preview["missing"],
            )
        ref = f"{preview['template']['id']}@{preview['template']['version']}"
        return self._reply(user, brand, message_id, preview["text"], [ref], human_written=False, resolve=resolve)

    def send_text(self, user: User, brand: str, message_id: str, text: str, resolve: bool = True) -> dict[str, Any]:
        """Send text a person wrote (recorded as human-written). Refuses an unfilled {placeholder}."""
        if not isinstance(text, str) or not text.strip():
            raise ActionError(422, "text: write the reply first")
        if len(text) > MAX_REPLY_CHARS:
            raise ActionError(422, f"text: {len(text)} characters; at most {MAX_REPLY_CHARS}")
        left = UNFILLED.findall(text)
        if left:
            raise ActionError(
                422,
                f"text still contains unfilled placeholder(s) {', '.join(dict.fromkeys(left))}",
                placeholders=list(dict.fromkeys(left)),
            )
        from worker.models import _check_unicode

        try:
            _check_unicode(text)
        except ValueError as exc:
            raise ActionError(422, f"text: {exc}") from exc
        return self._reply(user, brand, message_id, text.strip(), [], human_written=True, resolve=resolve)

    def _reply(
        self,
        user: User,
        brand: str,
        message_id: str,
        text: str,
        templates: list[str],
        human_written: bool,
        resolve: bool,
    ) -> dict[str, Any]:
        decision = self.decision(user, brand, message_id)
        event = self._event(decision)
        was_open = self._open(decision)
        resolve = resolve and was_open

        def write(pipe: Any, entry: AuditEntry) -> list[dict[str, Any]]:
            self.store.queue_brand_message(
                pipe, brand, event.conversation_id, message_id, text, datetime.now(timezone.utc)
            )
            pipe.hset(self.keys.item(brand, message_id), mapping={"replied_by": user.name})
            if resolve:
                self._resolve_ops(pipe, user, decision, "replied")
            return [
                outbox_payload(event, "reply", text=text, templates=templates, llm=False, human_written=human_written)
            ]

        action = "reply_template" if templates else "send_text"
        entry = self._commit(
            user,
            decision,
            action,
            {"status": "open" if was_open else "closed"},
            {
                "reply": text,
                "templates": templates,
                "human_written": human_written,
                "status": "resolved" if resolve else ("open" if was_open else "closed"),
            },
            write,
        )
        self._sla_after(decision, user, responded=True, resolved=resolve)
        return {
            "sent": True,
            "text": text,
            "templates": templates,
            "human_written": human_written,
            "resolved": resolve,
            "audit_id": entry.id,
        }

    # -- moderation -------------------------------------------------------------------------

    def hide(self, user: User, brand: str, message_id: str, hidden: bool = True) -> dict[str, Any]:
        name = "hide" if hidden else "unhide"
        self._moderator(user, name)
        decision = self.decision(user, brand, message_id)
        if decision.kind != "comment":
            raise ActionError(422, f"{name}: only public comments can be hidden (this is a {decision.kind})")
        was = self._hidden(decision, self._state(brand, message_id))
        if was == hidden:
            return {"hidden": hidden, "changed": False}
        event = self._event(decision)

        def write(pipe: Any, entry: AuditEntry) -> list[dict[str, Any]]:
            pipe.hset(self.keys.item(brand, message_id), "hidden", "1" if hidden else "0")
            return [outbox_payload(event, name)]

        self._commit(user, decision, name, {"hidden": was}, {"hidden": hidden}, write)
        return {"hidden": hidden, "changed": True}

    def not_label(self, user: User, brand: str, message_id: str, which: str) -> dict[str, Any]:
        """``not_spam`` / ``not_abusive``: record the correction, unhide if hidden, resolve if open."""
        self._moderator(user, which)
        decision = self.decision(user, brand, message_id)
        change = {"spam": False} if which == "not_spam" else {"abuse": "neither"}
        state = self._state(brand, message_id)
        was_hidden = self._hidden(decision, state)
        was_open = self._open(decision)
        event = self._event(decision)
        previous, merged = self._merged_correction(user, decision, change)

        def write(pipe: Any, entry: AuditEntry) -> list[dict[str, Any]]:
            self._correction_ops(pipe, merged)
            payloads = []
            if was_hidden and decision.kind == "comment":
                pipe.hset(self.keys.item(brand, message_id), "hidden", "0")
                payloads.append(outbox_payload(event, "unhide"))
            if was_open:
                self._resolve_ops(pipe, user, decision, which)
            return payloads

        self._commit(
            user,
            decision,
            which,
            {"correction": previous, "hidden": was_hidden, "open": was_open},
            {
                "correction": merged.model_dump(mode="json"),
                "hidden": False if decision.kind == "comment" else was_hidden,
                "open": False,
            },
            write,
        )
        self._sla_after(decision, user, resolved=was_open)
        return {
            "correction": merged.model_dump(mode="json"),
            "unhidden": was_hidden and decision.kind == "comment",
            "resolved": was_open,
        }

    def _merged_correction(
        self, user: User, decision: Decision, change: dict[str, Any]
    ) -> tuple[dict | None, Correction]:
        raw = self.client.get(self.keys.correction(decision.brand, decision.message_id))
        previous = json.loads(raw) if raw else None
        base = {k: v for k, v in (previous or {}).items() if k in ("intent", "spam", "abuse", "note")}
        base.update({k: v for k, v in change.items()})
        try:
            merged = Correction(
                brand=decision.brand,
                message_id=decision.message_id,
                by=user.name,
                at=datetime.now(timezone.utc),
                **base,
            )
        except ValueError as exc:
            raise ActionError(422, f"labels: {exc}") from exc
        return previous, merged

    def _correction_ops(self, pipe: Any, correction: Correction) -> None:
        pipe.set(self.keys.correction(correction.brand, correction.message_id), correction.model_dump_json())
        pipe.zadd(
            self.keys.corrections(correction.brand), {correction.message_id: int(correction.at.timestamp() * 1000)}
        )

    def correct_labels(
        self,
        user: User,
        brand: str,
        message_id: str,
        intent: str | None = None,
        spam: bool | None = None,
        abuse: str | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Record the right labels (what ``eval --replay`` and retraining read). The item stays where it is."""
        decision = self.decision(user, brand, message_id)
        config = self.brands.get(brand)
        if intent is not None and config is not None and intent not in config.intent.labels:
            raise ActionError(422, f"intent: {intent!r} is not a label of {config.intent.ref}")
        if abuse is not None and abuse not in ("hate", "offensive", "neither"):
            raise ActionError(422, "abuse: must be hate, offensive or neither")
        if spam is not None and not isinstance(spam, bool):
            raise ActionError(422, "spam: must be true or false")
        change = {
            k: v for k, v in {"intent": intent, "spam": spam, "abuse": abuse, "note": note}.items() if v is not None
        }
        if not change:
            raise ActionError(422, "labels: give at least one of intent, spam, abuse, note")
        previous, merged = self._merged_correction(user, decision, change)

        def write(pipe: Any, entry: AuditEntry) -> list[dict[str, Any]]:
            self._correction_ops(pipe, merged)
            return []

        self._commit(
            user,
            decision,
            "correct_labels",
            {"correction": previous},
            {"correction": merged.model_dump(mode="json")},
            write,
        )
        return {"correction": merged.model_dump(mode="json")}

    # -- routing and resolving ----------------------------------------------------------------

    def reroute(
        self, user: User, brand: str, message_id: str, role: str | None = None, priority: str | None = None
    ) -> dict[str, Any]:
        """Move the item to another role and/or priority (re-opens it if it was resolved)."""
        decision = self.decision(user, brand, message_id)
        if role is None and priority is None:
            raise ActionError(422, "route: give a role or a priority")
        if role is not None and not ROLE_PATTERN.match(role):
            raise ActionError(422, f"role: {role!r} is not a role name")
        if priority is not None and priority not in defaults.PRIORITIES:
            raise ActionError(422, f"priority: must be one of {', '.join(defaults.PRIORITIES)}")
        state = self._state(brand, message_id)
        score = self.client.zscore(self.keys.review, review_member(brand, message_id))
        escalation = decision.escalation
        old_priority = (
            defaults.PRIORITIES[min(int(score // 1e13), len(defaults.PRIORITIES) - 1)]
            if score is not None
            else state.get("priority") or (escalation.priority if escalation else "normal")
        )
        old_role = state.get("role") or (escalation.role if escalation else None)
        new_priority, new_role = priority or old_priority, role or old_role or "tier1"
        created = datetime.fromisoformat(decision.event["created_at"])

        def write(pipe: Any, entry: AuditEntry) -> list[dict[str, Any]]:
            pipe.zadd(self.keys.review, {review_member(brand, message_id): review_score(new_priority, created)})
            if escalation is not None and "role" not in state:
                # the escalation itself changes, through the store's one path for escalation changes
                reason = f"re-routed by {user.name} (was {escalation.role}, {escalation.priority}): {escalation.reason}"
                self.store.queue_escalation_change(
                    pipe,
                    decision,
                    Escalation(role=new_role, priority=new_priority, reason=reason[:1000]),  # type: ignore[arg-type]
                )
                pipe.hset(self.keys.item(brand, message_id), "status", "open")
            else:  # a reopened automated outcome: the person's routing lives with the item
                pipe.hset(
                    self.keys.item(brand, message_id),
                    mapping={"role": new_role, "priority": new_priority, "status": "open"},
                )
            return []

        self._commit(
            user,
            decision,
            "reroute",
            {"role": old_role, "priority": old_priority, "open": score is not None},
            {"role": new_role, "priority": new_priority, "open": True},
            write,
        )
        return {"role": new_role, "priority": new_priority}

    def reopen(self, user: User, brand: str, message_id: str, note: str | None = None) -> dict[str, Any]:
        """Undo an automated outcome: put the message in the queue for a person (reason: reopened by …)."""
        decision = self.decision(user, brand, message_id)
        if self._open(decision):
            raise ActionError(409, f"{brand}/{message_id} is already in the queue")
        config = self.brands.get(brand)
        role = config.policy.view(decision.platform, decision.kind).fallback.role if config else "tier1"
        role = role or "tier1"
        created = datetime.fromisoformat(decision.event["created_at"])

        def write(pipe: Any, entry: AuditEntry) -> list[dict[str, Any]]:
            pipe.zadd(self.keys.review, {review_member(brand, message_id): review_score("normal", created)})
            pipe.hset(
                self.keys.item(brand, message_id),
                mapping={
                    "status": "open",
                    "role": role,
                    "priority": "normal",
                    "reopened_by": user.name,
                    "reason": f"reopened by {user.name}: {note or 'automated outcome under review'}"[:300],
                },
            )
            return []

        self._commit(
            user,
            decision,
            "reopen",
            {"open": False, "actions": [a.value for a in decision.actions]},
            {"open": True, "role": role, "priority": "normal"},
            write,
            note=note,
        )
        return {"open": True, "role": role, "priority": "normal"}

    def resolve(self, user: User, brand: str, message_id: str, note: str | None = None) -> dict[str, Any]:
        """Close the item without replying."""
        decision = self.decision(user, brand, message_id)
        if not self._open(decision):
            raise ActionError(409, f"{brand}/{message_id} is not open")

        def write(pipe: Any, entry: AuditEntry) -> list[dict[str, Any]]:
            self._resolve_ops(pipe, user, decision, "no_reply")
            return []

        self._commit(
            user,
            decision,
            "resolve",
            {"open": True},
            {"open": False, "resolution": "no_reply"},
            write,
            note=(note or None) and str(note)[:500],
        )
        self._sla_after(decision, user, resolved=True)
        return {"resolved": True}

    # -- the author -------------------------------------------------------------------------

    def tag_author(self, user: User, brand: str, message_id: str, tag: str, remove: bool = False) -> dict[str, Any]:
        decision = self.decision(user, brand, message_id)
        if not isinstance(tag, str) or not TAG_PATTERN.match(tag) or tag == "blocked":
            raise ActionError(
                422, f"tag: {tag!r} is not a tag (1–64 letters, digits, space . : - _; use block for 'blocked')"
            )
        key = self.keys.author(brand, decision.author_id)
        had = bool(self.client.sismember(key, tag))

        def write(pipe: Any, entry: AuditEntry) -> list[dict[str, Any]]:
            (pipe.srem if remove else pipe.sadd)(key, tag)
            return []

        self._commit(
            user,
            decision,
            "untag_author" if remove else "tag_author",
            {"author": decision.author_id, "tag": tag, "present": had},
            {"author": decision.author_id, "tag": tag, "present": not remove},
            write,
        )
        return {"author": decision.author_id, "tags": sorted(t.decode() for t in self.client.smembers(key))}

    def block_author(self, user: User, brand: str, message_id: str, blocked: bool = True) -> dict[str, Any]:
        name = "block_author" if blocked else "unblock_author"
        self._moderator(user, name)
        decision = self.decision(user, brand, message_id)
        key = self.keys.author(brand, decision.author_id)
        was = bool(self.client.sismember(key, "blocked"))
        if was == blocked:
            return {"blocked": blocked, "changed": False}
        event = self._event(decision)

        def write(pipe: Any, entry: AuditEntry) -> list[dict[str, Any]]:
            (pipe.sadd if blocked else pipe.srem)(key, "blocked")
            return [outbox_payload(event, "block" if blocked else "unblock")]

        self._commit(user, decision, name, {"blocked": was}, {"blocked": blocked}, write)
        return {"blocked": blocked, "changed": True}

    # -- bulk -------------------------------------------------------------------------------

    BULK = ("claim", "release", "hide", "unhide", "not_spam", "not_abusive", "resolve", "reroute")

    def bulk(
        self, user: User, action: str, items: object, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run ``action`` on each ``brand/message_id``; one result per item (ok or the error), in order."""
        if action not in self.BULK:
            raise ActionError(422, f"bulk action {action!r}: one of {', '.join(self.BULK)}")
        if not isinstance(items, list) or not items or len(items) > defaults.BULK_MAX_ITEMS:
            raise ActionError(422, f"items: give 1 to {defaults.BULK_MAX_ITEMS} items as brand/message_id")
        params = params or {}
        results = []
        for item in items:
            brand, _, mid = str(item).partition("/")
            try:
                if action == "claim":
                    out = self.claim(user, brand, mid)
                elif action == "release":
                    out = self.release(user, brand, mid)
                elif action in ("hide", "unhide"):
                    out = self.hide(user, brand, mid, hidden=action == "hide")
                elif action in ("not_spam", "not_abusive"):
                    out = self.not_label(user, brand, mid, action)
                elif action == "resolve":
                    out = self.resolve(user, brand, mid, params.get("note"))
                else:
                    out = self.reroute(user, brand, mid, params.get("role"), params.get("priority"))
                results.append({"item": item, "ok": True, **out})
            except ActionError as exc:
                results.append({"item": item, "ok": False, "status": exc.status, "error": str(exc)})
            except (RenderError, TemplateError) as exc:
                results.append({"item": item, "ok": False, "status": 422, "error": str(exc)})
        return results
