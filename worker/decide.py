"""The rules: from an event, its scores and its conversation context to a decision.

This module makes every outcome replyguard reaches: :func:`decide` (the rules
below), :func:`error_outcome` (deciding failed unexpectedly), the outcomes of
LLM tasks (:func:`llm_personalised`, :func:`llm_refused`, :func:`llm_fallback`,
:func:`llm_deadline`, :func:`llm_cascade`, :func:`llm_second_opinion`) and what
a threshold means (:func:`threshold_actions`, also used by the eval tool's
policy proposal). All are pure; no other module edits a decision's actions,
rule, escalation or reply (a test checks the source).

:func:`decide` is pure (no Redis, no clock): everything it needs is passed in,
so it is tested directly and replayed over stored decisions by the eval tool.
Rules run in this order. The first rule that fires names the decision's
``rule``, except that ``template.*`` problems and ``opt_out.suppressed`` take
over the name because they changed the outcome; every rule that fired is listed
in ``rules`` with its score and threshold:

1. ``opt_out.keyword`` / ``opt_in.keyword``: the whole message is an opt-out
   (opt-in) keyword: tag (untag) the author; optionally confirm once.
2. ``vip``: the author has a VIP tag: escalate, nothing automated.
3. ``moderation.spam``, ``moderation.hate``, ``moderation.offensive``: scores
   at or above the thresholds. Hate is always hidden and escalated; spam and
   offensive take the policy's actions (offensive may ``continue``).
4. ``content.unreadable`` (a sticker, a location, an image without caption: the
   event's ``unreadable`` names the type; the policy's ``unreadable`` action,
   else the fallback), ``text.empty`` (checked before moderation: there is nothing to moderate) and
   ``text.too_long`` (an unseen tail).
5. ``keyword.<name>``: the whole message is a quick-reply keyword.
6. ``private_matter.entities``: a public comment exposes personal data.
7. ``intent.*``: a confident intent routes to auto_reply / escalate / ignore;
   ``private_matter.intent`` answers private intents on comments with "please DM
   us"; ``intent.out_of_scope`` and ``intent.low_confidence`` use the fallback;
   ``template.missing`` / ``template.variable_missing`` escalate.

Afterwards: ``opt_out.suppressed`` removes any reply to an opted-out author;
``greeting.first_contact`` puts a greeting before the reply on a conversation's
first message; ``business_hours.away`` adds an away message to escalations
outside business hours (at most once per ``away_interval_hours``).

:func:`sla_breach` is the other outcome made here: what a missed SLA target does to
an escalation (raise its priority, re-route it, notify).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from pydantic_core import to_jsonable_python

from worker import defaults
from worker.brands import Brand
from worker.entities import extract, template_values
from worker.exceptions import RenderError
from worker.language import detect_language
from worker.models import (
    Action,
    Decision,
    DecisionContext,
    Escalation,
    InboundEvent,
    IntentResult,
    LLMRecord,
    RuleHit,
    TemplatePart,
    TemplateRef,
    parse_event,
)
from worker.policy import Fallback, Policy, PolicyView, normalize_keyword
from worker.sla.config import SlaPolicy
from worker.templates import render
from worker.unvalidated import built, given, shallow_copy


@dataclass
class Outcome:
    decision: Decision
    optout_op: str | None = None  # "add" | "remove" | None
    away_sent: bool = False


_OPTIONAL_FLOAT = (float, type(None))
_OPTIONAL_STR = (str, type(None))
_PRIORITIES = frozenset(defaults.PRIORITIES)  # worker.models.Priority
#: Action's members: ``Action.X`` is a class attribute read through the enum metaclass's ``__getattr__`` hook
#: (~0.15 µs, dozens a message); the same objects
_AUTO_REPLY, _HIDE, _ESCALATE, _TAG, _IGNORE = (
    Action.AUTO_REPLY,
    Action.HIDE,
    Action.ESCALATE,
    Action.TAG,
    Action.IGNORE,
)
_SENDING = frozenset({_AUTO_REPLY, _HIDE, _ESCALATE})  # what makes "ignore" redundant


class _Builder:
    """Collects actions, rule hits and reply parts while the rules run.

    ``fast``: the scores are the classifiers' plain floats (:func:`_plain_scores`), so the rule hits,
    the escalation and the intent are built without validation (:func:`worker.unvalidated.given`)
    from values of their declared types (each checked here, else validated as before)."""

    def __init__(
        self,
        event: InboundEvent,
        brand: Brand,
        view: PolicyView,
        language: str,
        values: dict[str, str],
        fast: bool = False,
    ):
        self.fast = fast
        self.event = event
        self.brand = brand
        self.view = view
        self.language = language
        self.values = values
        self.actions: list[Action] = []
        self.rules: list[RuleHit] = []
        self.primary: RuleHit | None = None
        self.parts: list[tuple[TemplatePart, str, TemplateRef]] = []  # (part, text, ref)
        self.escalation: Escalation | None = None
        self.tags: list[str] = []
        self.untags: list[str] = []
        self.moderated = False
        self.intent: IntentResult | None = None
        self.reply_intent: str | None = None  # the intent whose answer is the reply (for the greeting rule)

    def hit(
        self,
        name: str,
        *,
        score: float | None = None,
        threshold: float | None = None,
        detail: str | None = None,
        primary: bool = True,
        override: bool = False,
    ) -> RuleHit:
        """Record a rule. The first primary rule names the decision, unless a later one ``override``s it."""
        if (
            self.fast
            and type(name) is str
            and type(score) in _OPTIONAL_FLOAT
            and type(threshold) in _OPTIONAL_FLOAT
            and type(detail) in _OPTIONAL_STR
        ):
            rule = given(RuleHit, {"name": name, "score": score, "threshold": threshold, "detail": detail})
        else:
            rule = RuleHit(name=name, score=score, threshold=threshold, detail=detail)
        self.rules.append(rule)
        if (primary and self.primary is None) or override:
            self.primary = rule
        return rule

    def act(self, action: Action) -> None:
        if action not in self.actions:
            self.actions.append(action)

    def apply(self, actions: Sequence[str], role: str, priority: str, reason: str) -> None:
        """A moderation rule's configured actions (escalations get ``role``/``priority``/``reason``)."""
        for action in actions:
            if action == "escalate":
                self.escalate(role, priority, reason)
            else:
                self.act(Action(action))

    def escalate(self, role: str, priority: str, reason: str) -> None:
        self.act(_ESCALATE)
        if self.escalation is None:
            if (
                self.fast
                and type(role) is str
                and type(priority) is str
                and priority in _PRIORITIES
                and type(reason) is str
            ):
                self.escalation = given(Escalation, {"role": role, "priority": priority, "reason": reason})
            else:
                self.escalation = Escalation(role=role, priority=priority, reason=reason)  # type: ignore[arg-type]

    def template_for(self, intent: str) -> tuple[object, str] | None:
        """(template, language) for ``intent`` in the message language, per the language fallback."""
        books = self.brand.templates
        template = books.approved(intent, self.language)
        if template is not None:
            return template, self.language
        policy = self.brand.policy
        if policy.language_fallback == "default_language":
            template = books.approved(intent, policy.default_language)
            if template is not None:
                return template, policy.default_language
        return None

    def add_part(self, part: TemplatePart, intent: str) -> str | None:
        """Render ``intent``'s template as ``part``. Returns an error rule name or None."""
        found = self.template_for(intent)
        if found is None:
            return "template.missing"
        template, _ = found
        try:
            rendered = render(template, self.values)  # type: ignore[arg-type]
        except RenderError:
            return "template.variable_missing"
        self.parts.append((part, rendered.text, rendered.ref(part)))
        return None

    def fallback(self, fallback: Fallback, reason: str) -> None:
        if fallback.action == "ignore":
            self.act(_IGNORE)
        else:
            self.escalate(fallback.role, fallback.priority, reason)


class ClassifierScores(dict[str, dict[str, float]]):
    """One message's scores as :func:`worker.pipeline.classify` makes them: task -> label -> score,
    each label a ``str`` and each score a ``float`` by construction (checked there once a model and
    batch), so :func:`_plain_scores` need not look at each of them again."""

    __slots__ = ()


def _plain_scores(scores: dict[str, dict[str, float]]) -> bool:
    """Scores as the classifiers give them (task -> label -> float): a decision can then be built
    without validation; anything else (ints from a test, a replayed oddity) is validated as before."""
    if type(scores) is ClassifierScores:  # made so (~12k instructions a message to check label by label)
        return True
    if type(scores) is not dict:
        return False
    for labels in scores.values():  # plain loops: the nested generators cost ~5 µs a message
        if type(labels) is not dict:
            return False
        for label, p in labels.items():
            if type(label) is not str or type(p) is not float:
                return False
    return True


_versions: dict[int, tuple[Brand, dict[str, str]]] = {}


def _model_versions(brand: Brand) -> dict[str, str]:
    """``brand.model_versions()``, remembered per brand object (a brand's models never change; a
    reload makes a new Brand). A copy each time: a decision's dict is its own."""
    found = _versions.get(id(brand))
    if found is None or found[0] is not brand:
        if len(_versions) > 256:
            _versions.clear()
        found = _versions[id(brand)] = (brand, brand.model_versions())
    return dict(found[1])


def event_json(event: InboundEvent) -> dict[str, Any]:
    """``event.model_dump(mode="json")``, ~4x cheaper (tests/test_unvalidated.py compares them)."""
    fields = event.__dict__  # one read: a model's attribute reads go through pydantic's __getattr__ hook
    author = fields["author"].__dict__
    metadata = fields["metadata"]
    return {
        "id": fields["id"],
        "brand": fields["brand"],
        "platform": fields["platform"],
        "kind": fields["kind"],
        "conversation_id": fields["conversation_id"],
        "post_id": fields["post_id"],
        "author": {
            "id": author["id"],
            "name": author["name"],
            "locale": author["locale"],
            "tags": list(author["tags"]),
        },
        "text": fields["text"],
        "created_at": to_jsonable_python(fields["created_at"]),
        "metadata": to_jsonable_python(metadata) if metadata else {},
        "unreadable": fields["unreadable"],
    }


def _scores_top(scores: dict[str, float]) -> tuple[str, float]:
    """The highest-scoring label and its score (the first such label on a tie, as before)."""
    return max(scores.items(), key=itemgetter(1))


def decide(
    event: InboundEvent,
    scores: dict[str, dict[str, float]],
    context: DecisionContext,
    brand: Brand,
    *,
    truncated: bool = False,
    cascade_choice: tuple[str, str] | None = None,
) -> Outcome:
    """Apply ``brand``'s policy to ``event`` given its classifier ``scores``.

    ``cascade_choice`` = (intent, note) replaces the classifier's uncertain intent with the
    LLM cascade's choice (rules ``cascade.*``); the classifier's scores are still recorded.
    """
    policy = brand.policy
    fields = event.__dict__  # one read: a model's attribute reads go through pydantic's __getattr__ hook
    policy_fields = policy.__dict__  # the same for the policy's fields
    text, kind = fields["text"], fields["kind"]
    view = policy.view(fields["platform"], kind)
    language = detect_language(
        text, fields["author"].locale, policy_fields["languages"], policy_fields["default_language"]
    )
    entities = extract(text, policy)
    values = template_values(event, entities, policy)
    b = _Builder(event, brand, view, language, values, fast=_plain_scores(scores))
    keyword_text = normalize_keyword(text)
    if scores.get("intent"):
        top_label, top_score = _scores_top(scores["intent"])
        oos = top_label == policy_fields["intents"].out_of_scope_label
        top_threshold = None if oos else view.intent_threshold(top_label)
        if b.fast and type(top_threshold) in _OPTIONAL_FLOAT:  # label and score: plain, checked with the scores
            b.intent = given(IntentResult, {"label": top_label, "score": top_score, "threshold": top_threshold})
        else:
            b.intent = IntentResult(label=top_label, score=top_score, threshold=top_threshold)
    optout_op: str | None = None
    opted_out = context.opted_out
    stop = False

    # 1. opt-out / opt-in keywords
    opt = policy_fields["opt_out"]
    if opt and keyword_text and keyword_text in policy.opt_out_words:
        b.hit("opt_out.keyword", detail=f"author tagged {opt.tag}")
        b.act(_TAG)
        b.tags.append(opt.tag)
        optout_op = "add"
        if opt.confirm_intent and not opted_out and b.add_part("confirm", opt.confirm_intent) is None:
            b.act(_AUTO_REPLY)
        else:
            b.act(_IGNORE)
        return _finish(b, scores, context, entities, truncated, optout_op, away=False, greet=False)
    if opt and keyword_text and keyword_text in policy.opt_in_words:
        b.hit("opt_in.keyword", detail=f"tag {opt.tag} removed")
        b.act(_TAG)
        b.untags.append(opt.tag)
        b.act(_IGNORE)
        return _finish(b, scores, context, entities, truncated, "remove", away=False, greet=False)

    # 2. VIP authors always reach a human
    vip = policy_fields["vip"]
    author_tags = fields["author"].tags
    if vip and author_tags and set(vip.tags) & set(author_tags):  # most authors have no tags: no sets built
        tag = sorted(set(vip.tags) & set(fields["author"].tags))[0]
        b.hit("vip", detail=f"author tag {tag!r}")
        b.escalate(vip.role, vip.priority, f"VIP author (tag {tag!r}): always handled by a person")
        return _finish(b, scores, context, entities, truncated, optout_op, away=True, greet=False)

    # 3. moderation (of text: an attachment-only message goes straight to the fallback)
    unreadable = fields["unreadable"]
    if unreadable and not text.strip():
        b.hit("content.unreadable", detail=unreadable)
        b.fallback(
            policy_fields["unreadable"] or view.fallback,
            f"a {unreadable} message: replyguard cannot read it, a person should look",
        )
        return _finish(b, scores, context, entities, truncated, optout_op, away=True, greet=True)
    if not text.strip():
        b.hit("text.empty")
        b.fallback(view.fallback, "message has no text (attachment or sticker only)")
        return _finish(b, scores, context, entities, truncated, optout_op, away=True, greet=True)
    mod = policy_fields["moderation"]
    spam_score = scores["spam"].get("spam", 0.0)
    spam_t = view.thresholds.spam["spam"]
    if spam_score >= spam_t:
        b.hit("moderation.spam", score=spam_score, threshold=spam_t)
        b.moderated = True
        b.apply(
            threshold_actions(policy, "spam", "spam"),
            mod.spam.role,
            mod.spam.priority,
            f"spam score {spam_score:.2f} ≥ {spam_t:.2f}",
        )
        return _finish(b, scores, context, entities, truncated, optout_op, away=False, greet=False)
    hate_score = scores["abuse"].get("hate", 0.0)
    hate_t = view.thresholds.abuse["hate"]
    if hate_score >= hate_t:
        b.hit("moderation.hate", score=hate_score, threshold=hate_t)
        b.moderated = True
        b.apply(
            threshold_actions(policy, "abuse", "hate"),
            mod.hate.role,
            mod.hate.priority,
            f"hate score {hate_score:.2f} ≥ {hate_t:.2f}: hidden, please review",
        )
        return _finish(b, scores, context, entities, truncated, optout_op, away=False, greet=False)
    off_score = scores["abuse"].get("offensive", 0.0)
    off_t = view.thresholds.abuse["offensive"]
    if off_score >= off_t:
        b.hit("moderation.offensive", score=off_score, threshold=off_t)
        b.apply(
            threshold_actions(policy, "abuse", "offensive"),
            mod.offensive.role,
            mod.offensive.priority,
            f"offensive score {off_score:.2f} ≥ {off_t:.2f}",
        )
        if mod.offensive.then == "stop":
            b.moderated = True
            return _finish(b, scores, context, entities, truncated, optout_op, away=False, greet=False)

    # 4. too much to classify
    if truncated:
        b.hit("text.too_long", detail=f"only the first {defaults.CLASSIFY_MAX_CHARS} characters were classified")
        b.escalate(
            view.fallback.role,
            view.fallback.priority,
            f"message longer than {defaults.CLASSIFY_MAX_CHARS} characters; not answered automatically",
        )
        stop = True

    # 5. keyword quick replies
    keyword = policy.keyword_index.get(keyword_text) if not stop and keyword_text else None
    if keyword is not None:
        b.hit(f"keyword.{keyword.name}")
        if keyword.action == "escalate":
            b.escalate(
                keyword.role or view.fallback.role,
                keyword.priority or "normal",
                f"customer sent keyword {text.strip()!r}",
            )
        else:
            _auto_reply(b, keyword.intent or "")
        stop = True

    # 6. personal data in a public comment
    private = policy_fields["private_matters"]
    exposed = sorted(set(private.entities) & set(entities)) if entities and private and kind == "comment" else []
    if not stop and private and exposed:
        b.hit("private_matter.entities", detail=f"public comment contains {', '.join(exposed)}")
        if set(private.hide_entities) & set(exposed):
            b.act(_HIDE)
        _auto_reply(b, private.reply_intent, rule_on_error=False)
        if _AUTO_REPLY not in b.actions:
            b.fallback(view.fallback, "public comment with personal data; no approved 'please DM us' template")
        stop = True

    # 7. intent (or the LLM cascade's choice, when the policy lets it lead to a reply)
    label: str | None
    score: float | None
    threshold: float | None
    if not stop and cascade_choice is not None:
        label, note = cascade_choice
        rule_prefix = "cascade"
        score = b.intent.score if b.intent else None
        threshold = None
    elif not stop and b.intent is not None:
        label, score, threshold = b.intent.label, b.intent.score, b.intent.threshold
        rule_prefix, note = "intent", ""
    else:
        label = None
    if not stop and label is not None:
        route = view.routes.get(label)
        tag = f"{label}{note}"
        branch = intent_branch(view, label, score, threshold)
        if branch == "out_of_scope":
            b.hit(f"{rule_prefix}.out_of_scope", score=score, detail=note or None)
            b.fallback(view.fallback, f"out of scope ({'LLM' if note else f'p={score:.2f}'})")
        elif branch == "low_confidence":
            b.hit("intent.low_confidence", score=score, threshold=threshold, detail=label)
            b.fallback(view.fallback, f"not confident: {label} p={score:.2f} < {threshold:.2f}")
        elif route is None:  # branch == "unrouted"
            b.hit(f"{rule_prefix}.unrouted", score=score, threshold=threshold, detail=tag)
            b.fallback(view.fallback, f"intent {label} has no route in the policy")
        elif private and kind == "comment" and label in private.intents and branch == "auto_reply":
            b.hit("private_matter.intent", score=score, threshold=threshold, detail=tag)
            _auto_reply(b, private.reply_intent, rule_on_error=False)
            if _AUTO_REPLY not in b.actions:
                b.fallback(view.fallback, f"private matter ({label}) in a public comment; no 'please DM us' template")
        elif branch == "auto_reply":
            b.hit(f"{rule_prefix}.auto_reply", score=score, threshold=threshold, detail=tag)
            b.reply_intent = label
            _auto_reply(b, route.template_intent or label)
        elif branch == "escalate":
            b.hit(f"{rule_prefix}.escalate", score=score, threshold=threshold, detail=tag)
            b.escalate(
                route.role or view.fallback.role,
                route.priority or view.fallback.priority,
                f"intent {label} is routed to a person{note}",
            )
        else:
            b.hit(f"{rule_prefix}.ignore", score=score, threshold=threshold, detail=tag)
            b.act(_IGNORE)
    elif not stop:
        b.hit("intent.out_of_scope")
        b.fallback(view.fallback, "no intent scores")

    return _finish(b, scores, context, entities, truncated, optout_op, away=True, greet=True)


def _auto_reply(b: _Builder, intent: str, *, rule_on_error: bool = True) -> None:
    error = b.add_part("reply", intent)
    if error is None:
        b.act(_AUTO_REPLY)
        return
    if not rule_on_error:
        return
    reason = {
        "template.missing": f"no approved {intent!r} template in {b.language!r}",
        "template.variable_missing": f"template for {intent!r} could not be filled (missing details)",
    }[error]
    # the template problem, not the intent, decided the outcome
    tried = b.primary is not None and b.primary.name.startswith(("intent.", "keyword.", "cascade."))
    b.hit(error, detail=reason, override=tried)
    b.escalate(b.view.fallback.role, b.view.fallback.priority, reason)


def _finish(
    b: _Builder,
    scores: dict[str, dict[str, float]],
    context: DecisionContext,
    entities: dict[str, list[str]],
    truncated: bool,
    optout_op: str | None,
    *,
    away: bool,
    greet: bool,
) -> Outcome:
    policy_fields = b.brand.policy.__dict__  # one read each: a model's attribute reads go through
    event = b.event
    ev = event.__dict__  # pydantic's __getattr__ hook
    opted_out = context.opted_out and optout_op != "remove"

    # opted-out authors never get automated messages
    if opted_out and any(part != "confirm" for part, _, _ in b.parts):
        b.parts = []
        b.actions = [a for a in b.actions if a != _AUTO_REPLY]
        b.hit("opt_out.suppressed", detail="author opted out of automated messages", override=True)
        if _ESCALATE not in b.actions and _IGNORE not in b.actions and _HIDE not in b.actions:
            opt = policy_fields["opt_out"]
            role = opt.role if opt else b.view.fallback.role
            prio = opt.priority if opt else "low"
            b.escalate(role, prio, "author opted out of automated replies; answer personally if needed")
    can_message = not opted_out and not b.moderated and _HIDE not in b.actions

    # greeting on the first message of a conversation
    greeting = policy_fields["greeting"]
    main_intent = b.reply_intent
    if (
        greet
        and can_message
        and greeting
        and context.first_contact
        and ev["kind"] in greeting.kinds
        and main_intent not in greeting.skip_for_intents
        and (b.parts or _ESCALATE in b.actions)
    ):
        found = b.template_for(greeting.intent)
        if found is not None:
            try:
                rendered = render(found[0], b.values)  # type: ignore[arg-type]
                b.parts.insert(0, ("greeting", rendered.text, rendered.ref("greeting")))
                b.hit("greeting.first_contact", primary=False)
            except RenderError:
                pass

    # away message on escalations outside business hours
    away_sent = False
    hours = policy_fields["business_hours"]
    if (
        away
        and can_message
        and hours
        and _ESCALATE in b.actions
        and ev["kind"] in hours.away_kinds
        and not hours.is_open(ev["created_at"])
    ):
        created_at = ev["created_at"]
        recent = context.away_sent_at is not None and created_at - context.away_sent_at < timedelta(
            hours=hours.away_interval_hours
        )
        if not recent:
            found = b.template_for(hours.away_intent)
            if found is not None:
                try:
                    rendered = render(found[0], b.values)  # type: ignore[arg-type]
                    b.parts.append(("away", rendered.text, rendered.ref("away")))
                    b.hit("business_hours.away", detail=f"closed at {created_at.isoformat()}", primary=False)
                    away_sent = True
                except RenderError:
                    pass

    if b.parts:
        b.act(_AUTO_REPLY)
    if _IGNORE in b.actions and not _SENDING.isdisjoint(b.actions):
        b.actions.remove(_IGNORE)  # "ignore" only means "nothing else to do"
    if not b.actions:
        b.act(_IGNORE)
    reply = "\n\n".join(text for _, text, _ in b.parts) or None
    refs = [ref for _, _, ref in b.parts]
    main = next((r for r in refs if r.part in ("reply", "confirm")), refs[0] if refs else None)
    primary = b.primary or RuleHit(name="none")
    # the rule hits, escalation and template references are small (validating them costs what
    # building them would); the decision is not: built without validation from what this module
    # made, unless the scores came in another form than the classifiers' (then validated as before)
    fast = b.fast
    fields: dict[str, Any] = {
        "message_id": ev["id"],
        "brand": ev["brand"],
        "platform": ev["platform"],
        "kind": ev["kind"],
        "conversation_id": ev["conversation_id"],
        "author_id": ev["author"].id,
        "language": b.language,
        "actions": b.actions,
        "rule": primary.name,
        "threshold": primary.threshold,
        "score": primary.score,
        "rules": b.rules,
        # validation copies what it is given: a built decision shares nothing with the caller either
        "scores": {task: dict(labels) for task, labels in scores.items()} if fast else scores,
        "intent": b.intent,
        "template": main,
        "templates": refs,
        "reply": reply,
        "escalation": b.escalation,
        "tags": b.tags,
        "untags": b.untags,
        "entities": entities,
        "truncated": truncated,
        "context": shallow_copy(context) if fast and type(context) is DecisionContext else context.model_copy(),
        "policy_version": b.brand.policy_version,
        "template_versions": {r.id: r.version for r in refs},
        "model_versions": _model_versions(b.brand),
        "decided_at": ev["created_at"],  # replaced by the pipeline with the wall-clock time
        "event": event_json(event) if fast else event.model_dump(mode="json"),
    }
    decision = built(Decision, fields) if fast else Decision(**fields)
    return Outcome(decision=decision, optout_op=optout_op, away_sent=away_sent)


# -- SLA breaches ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SlaBreachOutcome:
    """What a missed SLA target does to an escalation (see :func:`sla_breach`)."""

    escalation: Escalation
    notify: bool
    changed: bool


def sla_breach(escalation: Escalation, rule: SlaPolicy, target: str, due_at: datetime) -> SlaBreachOutcome:
    """The escalation after ``rule``'s ``target`` was missed: priority raised (never lowered),
    re-routed to a role, and whether the outbound webhook is told. Pure, like :func:`decide`."""
    actions = rule.on_breach
    if actions is None:
        return SlaBreachOutcome(escalation=escalation, notify=False, changed=False)
    priority = escalation.priority
    if actions.raise_priority is not None:
        priority = min(priority, actions.raise_priority, key=defaults.PRIORITIES.index)
    role = actions.reroute_to or escalation.role
    changed = (role, priority) != (escalation.role, escalation.priority)
    reason = escalation.reason
    if changed:
        moved = f"re-routed from {escalation.role} to {role}" if role != escalation.role else f"now {priority}"
        if role != escalation.role and priority != escalation.priority:
            moved += f", {priority}"
        note = f"SLA {rule.name}: {target.replace('_', ' ')} due {due_at.isoformat(timespec='minutes')} missed; {moved}"
        reason = f"{note} (was: {escalation.reason})"[:1000]
    return SlaBreachOutcome(
        escalation=Escalation(role=role, priority=priority, reason=reason), notify=actions.notify, changed=changed
    )


def opted_out_meanwhile(decision: Decision, policy: Policy | None = None) -> Decision:
    """A final decision whose author opted out after the message was decided (a STOP decided while
    an LLM task worked on this one): nothing automated is sent (rule ``opt_out.suppressed``); a
    decision that did nothing else escalates as ``policy``'s opt-out says (else tier1, low)."""
    if _AUTO_REPLY not in decision.actions:
        return decision
    actions = [a for a in decision.actions if a != _AUTO_REPLY]
    hit = RuleHit(name="opt_out.suppressed", detail="author opted out before the automated reply was sent")
    escalation = decision.escalation
    if not {_ESCALATE, _IGNORE, _HIDE} & set(actions):
        actions.append(_ESCALATE)
        opt = policy.opt_out if policy is not None else None
        escalation = Escalation(
            role=opt.role if opt else "tier1",
            priority=opt.priority if opt else "low",
            reason="author opted out of automated replies; answer personally if needed",
        )
    return decision.model_copy(
        update={
            "actions": actions,
            "rule": hit.name,
            "threshold": None,
            "score": None,
            "rules": [*decision.rules, hit],
            "reply": None,
            "template": None,
            "templates": [],
            "template_versions": {},
            "escalation": escalation,
        }
    )


def with_escalation(decision: Decision, escalation: Escalation) -> Decision:
    """``decision`` with its escalation replaced (an SLA breach's re-route or new priority, see :func:`sla_breach`)."""
    return decision.model_copy(update={"escalation": escalation})


# -- what a threshold means -----------------------------------------------------------------


def threshold_actions(policy: Policy, task: str, label: str) -> tuple[str, ...]:
    """The actions ``policy`` takes when ``task``'s ``label`` reaches its threshold.

    The moderation rules of :func:`decide` apply exactly these; the eval tool's policy
    proposal counts escalations and hides with them. Intent labels answer with their
    route's action (the fallback's when unrouted).
    """
    mod = policy.moderation
    if task == "spam":
        return tuple(mod.spam.actions) if label == "spam" else ()
    if task == "abuse":
        if label == "hate":
            return ("hide", "escalate")
        return tuple(mod.offensive.actions) if label == "offensive" else ()
    if task == "intent":
        return intent_actions(policy.base_view(), label, None, None)
    raise ValueError(f"unknown task {task!r} (spam | abuse | intent)")


def intent_branch(view: PolicyView, label: str, score: float | None, threshold: float | None) -> str:
    """Which way rule 7 of :func:`decide` goes for a top intent ``label`` at ``score`` (``threshold``
    None: no threshold applies, as for the LLM cascade's choice).

    One of ``out_of_scope``, ``low_confidence``, ``unrouted`` (these three take the fallback),
    or the route's action: ``auto_reply``, ``escalate``, ``ignore``.
    """
    if label == view.policy.intents.out_of_scope_label:
        return "out_of_scope"
    if threshold is not None and score is not None and score < threshold:
        return "low_confidence"
    route = view.routes.get(label)
    return "unrouted" if route is None else route.action


def intent_actions(view: PolicyView, label: str, score: float | None, threshold: float | None) -> tuple[str, ...]:
    """The actions rule 7 of :func:`decide` takes for a top intent ``label`` at ``score``.

    What the eval tool's policy proposal counts as escalations and automatic answers. Other
    rules can still change a message's outcome (moderation, keywords, VIP authors, opt-outs,
    a missing template or variable, private matters in public comments); this is the
    intent's own part, the same branch :func:`decide` takes.
    """
    branch = intent_branch(view, label, score, threshold)
    if branch in ("out_of_scope", "low_confidence", "unrouted"):
        return (view.fallback.action,)
    return (branch,)


# -- outcomes decided after the rules: an internal error, the LLM tasks ----------------------------
#
# Each takes the decision as first decided and returns a new one; none calls an LLM or Redis.
# worker.drafting calls the LLM and checks its answer, then asks one of these for the outcome.


def error_outcome(
    event: InboundEvent,
    brand: Brand,
    scores: dict[str, dict[str, float]],
    error: str,
    now: datetime,
    context: DecisionContext | None = None,
) -> Outcome:
    """A message whose deciding failed unexpectedly: escalate it (rule ``error.internal``), high priority."""
    reason = f"internal error while deciding: {error}"[:500]
    decision = Decision(
        message_id=event.id,
        brand=event.brand,
        platform=event.platform,
        kind=event.kind,
        conversation_id=event.conversation_id,
        author_id=event.author.id,
        language="und",
        actions=[_ESCALATE],
        rule="error.internal",
        rules=[RuleHit(name="error.internal", detail=reason)],
        scores=scores,
        escalation=Escalation(role=brand.policy.intents.fallback.role, priority="high", reason=reason),
        policy_version=brand.policy_version,
        model_versions=brand.model_versions(),
        decided_at=now,
        event=event.model_dump(mode="json"),
        context=(context or DecisionContext()).model_copy(),
    )
    return Outcome(decision=decision)


def _finished(record: LLMRecord, at: datetime, outcome: str, **update: Any) -> LLMRecord:
    return record.model_copy(update={"status": "done", "outcome": outcome, "finished_at": at, **update})


def llm_fallback(decision: Decision, reason: str, detail: str = "", *, at: datetime, **record: Any) -> Decision:
    """The decision as first decided, finalised without the LLM's help (``reason`` says why)."""
    if decision.llm is None:
        raise ValueError(f"decision {decision.message_id} has no LLM task")
    final = decision.model_copy(deep=True)
    final.llm = _finished(decision.llm, at, "fallback", reason=reason, detail=detail[:500] or None, **record)
    return final


def llm_deadline(decision: Decision, *, at: datetime) -> Decision:
    """The plain outcome of a decision whose LLM task did not finish in time."""
    return llm_fallback(decision, "deadline", "no LLM result before the deadline", at=at)


def llm_personalised(decision: Decision, reply: str, prompt_ref: str, *, at: datetime, **record: Any) -> Decision:
    """The LLM's draft ``reply`` passed every guardrail: it replaces the template's text (rule ``llm.personalised``)."""
    final = decision.model_copy(deep=True)
    final.reply = reply
    final.rules.append(RuleHit(name="llm.personalised", detail=prompt_ref))
    final.llm = _finished(decision.llm, at, "used", **record)  # type: ignore[arg-type]
    return final


def llm_refused(decision: Decision, brand: Brand, reason: str, detail: str, *, at: datetime, **record: Any) -> Decision:
    """A draft failed a guardrail: the plain template goes out, or, if the policy says so, a person answers."""
    settings = brand.policy.llm.draft_settings(decision.intent.label) if brand.policy.llm and decision.intent else None
    final = llm_fallback(decision, reason, detail, at=at, **record)
    if settings is None or (settings.on_guardrail_failure or "template") != "escalate":
        return final
    view = brand.policy.view(decision.platform, decision.kind)
    final.llm.outcome = "escalated"  # type: ignore[union-attr]
    kept: list[Action] = [a for a in final.actions if a != _AUTO_REPLY]
    final.actions = [*kept, _ESCALATE]
    final.reply = None
    final.templates = []
    final.template = None
    final.escalation = Escalation(
        role=view.fallback.role,
        priority=view.fallback.priority,
        reason=f"LLM draft refused ({reason}); policy says escalate",
    )
    final.rules.append(RuleHit(name="llm.guardrail_escalate", detail=reason))
    return final


def llm_cascade(
    decision: Decision, brand: Brand, intent: str, confidence: float, why: str, *, at: datetime, **record: Any
) -> Decision:
    """The LLM's choice among the candidate intents of an uncertain message.

    Below ``llm.cascade.min_llm_confidence`` it is ignored (``llm_unsure``). If the policy lets
    the cascade lead to a reply and the intent is answerable, the message is decided again
    with the choice (rules ``cascade.*``); otherwise the choice only routes the escalation.
    """
    settings = brand.policy.llm.cascade
    if confidence < settings.min_llm_confidence:
        return llm_fallback(
            decision, "llm_unsure", f"LLM confidence {confidence:.2f} < {settings.min_llm_confidence}", at=at, **record
        )
    classifier = decision.intent
    note = f" (LLM cascade: {intent} {confidence:.2f}; classifier " + (
        f"{classifier.label} {classifier.score:.2f})" if classifier else "none)"
    )
    route = brand.policy.view(decision.platform, decision.kind).routes.get(intent)
    answerable = route is not None and route.action == "auto_reply"
    llm = _finished(decision.llm, at, "used", **record)  # type: ignore[arg-type]
    if answerable and settings.may_auto_reply:
        redone = decide(
            parse_event(decision.event),
            decision.scores,
            decision.context,
            brand,
            truncated=decision.truncated,
            cascade_choice=(intent, note),
        ).decision
        redone.decided_at, redone.job_id, redone.timings = decision.decided_at, decision.job_id, decision.timings
        redone.llm = llm
        return redone
    final = decision.model_copy(deep=True)
    final.llm = llm
    oos = brand.policy.intents.out_of_scope_label
    if final.escalation is not None and intent != oos:
        role = route.role if route is not None and route.action == "escalate" and route.role else final.escalation.role
        final.escalation = final.escalation.model_copy(
            update={"role": role, "reason": f"classifier unsure; LLM suggests {intent} ({confidence:.2f}): {why}"[:500]}
        )
    final.rules.append(RuleHit(name="llm.cascade_routed", detail=note.strip()))
    return final


def llm_second_opinion(
    decision: Decision, brand: Brand, flagged: bool, hateful: Sequence[str], *, at: datetime, **record: Any
) -> Decision:
    """A moderation endpoint's verdict on a borderline hate score: hide and escalate only if it flags hate."""
    if not (flagged and hateful):
        final = decision.model_copy(deep=True)
        final.llm = _finished(decision.llm, at, "unchanged", **record)  # type: ignore[arg-type]
        return final
    categories = sorted(hateful)
    mod = brand.policy.moderation.hate
    final = decision.model_copy(deep=True)
    final.actions = [Action(a) for a in threshold_actions(brand.policy, "abuse", "hate")]
    final.reply, final.template, final.templates = None, None, []
    final.rule = "moderation.hate"
    final.rules.append(
        RuleHit(
            name="moderation.hate",
            score=decision.scores.get("abuse", {}).get("hate"),
            detail=f"second opinion: moderation endpoint flagged {categories}",
        )
    )
    final.escalation = Escalation(
        role=mod.role, priority=mod.priority, reason=f"borderline hate score; moderation endpoint flagged {categories}"
    )
    final.llm = _finished(decision.llm, at, "used", **record)  # type: ignore[arg-type]
    return final


# -- delivery failures ------------------------------------------------------------------------

#: Why a delivery problem needs a person, by the delivery error's code.
_DELIVERY_REASONS = {
    "window_closed": "the platform's 24-hour customer-service window had closed, so the automated reply was not sent",
    "private_reply_window_closed": "the 7-day window for a private reply to this comment had closed",
    "token_expired": "the platform refused the brand's access token (expired or revoked)",
    "missing_token": "no access token is configured for this channel",
    "invalid_recipient": "the platform says the recipient cannot be reached",
    "unknown": "the deliverer stopped while sending; the reply may or may not have reached the customer",
}


def escalate_after_delivery(decision: Decision, policy: Policy, action: str, code: str, detail: str = "") -> Decision:
    """The decision after one of its outbound actions failed for good: it escalates with the reason.

    Rule ``delivery.<code>`` is added (and names the decision unless it already escalated);
    the escalation goes to the platform's fallback role at high priority.
    """
    view = policy.view(decision.platform, decision.kind)
    why = _DELIVERY_REASONS.get(code, f"the platform did not carry out the {action} ({code})")
    reason = f"{action} not delivered: {why}" + (f" — {detail}" if detail else "")
    updated = decision.model_copy(deep=True)
    hit = RuleHit(name=f"delivery.{code}", detail=f"{action}: {detail}"[:300] if detail else action)
    updated.rules.append(hit)
    if _ESCALATE not in updated.actions:
        updated.actions.append(_ESCALATE)
        updated.escalation = Escalation(role=view.fallback.role, priority="high", reason=reason[:500])
        updated.rule = hit.name
        updated.threshold = updated.score = None
    return updated
