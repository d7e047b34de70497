"""Brand policies: ``policies/<brand>.yaml``, validated by the models below.

A policy that does not validate raises :class:`~worker.exceptions.PolicyError`
listing the file, the field path (with its line) and the reason for every
problem; the worker refuses to start. Nothing falls back to defaults silently:
fields with defaults are documented in ``policies/README.md``.

The policy's version is the sha256 of the file's bytes, recorded in every
decision.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import regex
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from worker import defaults
from worker.exceptions import PolicyError, Problem
from worker.guardrail_settings import GuardrailSettings
from worker.models import BRAND_PATTERN, Kind, Platform, Priority
from worker.placeholders import fill, parse_text, variables_of
from worker.privacy.config import Retention
from worker.sla.config import Sla
from worker.yaml_source import load_validated

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Role = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]

SPAM_LABELS = ("spam",)
ABUSE_LABELS = ("hate", "offensive")
#: Variables every template may use (filled from the event); entity names and
#: policy ``variables`` add to these.
BUILTIN_VARIABLES = ("first_name", "name", "platform")
#: Entities extracted without a policy pattern.
BUILTIN_ENTITIES = ("email", "phone", "url")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
log = logging.getLogger(__name__)


def _backtracking_probe(compiled: "regex.Pattern[str]") -> str | None:
    """A probe string on which ``compiled`` runs out of time, or None."""
    own = "".join(sorted({c for c in compiled.pattern if c.isalnum()}))[:8]
    runs = ["1", "a", "A", " ", "-", ".", "_", "a1", "1-", "a ", "1 "] + ([own] if own else [])
    for run in runs:
        body = (run * 48)[:48]
        for tail in ("!", "\u3042", ""):
            for attempt in (1, 2):  # twice: a busy machine may stall one search
                try:
                    compiled.search(body + tail, timeout=defaults.ENTITY_REGEX_PROBE_SECONDS)
                    break
                except TimeoutError:
                    if attempt == 2:
                        return (body + tail)[:20] + "…"
    return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Model):
    """task -> label -> minimum calibrated probability for the rule to fire."""

    spam: dict[str, Probability] = Field(default_factory=dict)
    abuse: dict[str, Probability] = Field(default_factory=dict)
    intent: dict[str, Probability] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_labels(self) -> "Thresholds":
        for task, allowed in (("spam", SPAM_LABELS), ("abuse", ABUSE_LABELS)):
            unknown = set(getattr(self, task)) - set(allowed)
            if unknown:
                raise ValueError(f"{task}: unknown label(s) {sorted(unknown)}; allowed: {list(allowed)}")
        return self

    def merged(self, other: "Thresholds | None") -> "Thresholds":
        if other is None:
            return self
        return Thresholds(
            spam={**self.spam, **other.spam},
            abuse={**self.abuse, **other.abuse},
            intent={**self.intent, **other.intent},
        )


class Route(_Model):
    """What to do with a confidently classified intent."""

    action: Literal["auto_reply", "escalate", "ignore"]
    role: Role | None = None
    priority: Priority | None = None
    template_intent: Name | None = Field(
        default=None, description="Intent whose approved templates answer it (default: the intent itself)."
    )

    @model_validator(mode="after")
    def _escalation_has_role(self) -> "Route":
        if self.action == "escalate" and not self.role:
            raise ValueError("role is required when action is 'escalate'")
        if self.action != "escalate" and (self.role or self.priority):
            raise ValueError("role/priority only apply when action is 'escalate'")
        return self


class Fallback(_Model):
    """What to do when no rule resolves a message (out of scope, not confident, no template)."""

    action: Literal["escalate", "ignore"] = "escalate"
    role: Role = "tier1"
    priority: Priority = "normal"


class Override(_Model):
    """Thresholds, routes or fallback that apply only on some platforms and/or kinds."""

    name: Name
    platforms: list[Platform] | None = None
    kinds: list[Kind] | None = None
    thresholds: Thresholds | None = None
    routes: dict[Name, Route] | None = None
    fallback: Fallback | None = None

    @model_validator(mode="after")
    def _scoped(self) -> "Override":
        if not self.platforms and not self.kinds:
            raise ValueError("an override needs platforms and/or kinds to say where it applies")
        if self.thresholds is None and self.routes is None and self.fallback is None:
            raise ValueError("an override must change thresholds, routes or fallback")
        return self

    def applies(self, platform: str, kind: str) -> bool:
        return (not self.platforms or platform in self.platforms) and (not self.kinds or kind in self.kinds)


class SpamRule(_Model):
    actions: list[Literal["hide", "escalate", "ignore"]] = Field(default=["hide"], min_length=1)  # pydantic copies it
    role: Role = "moderator"
    priority: Priority = "low"


class HateRule(_Model):
    """Hate above threshold is always hidden and escalated; role and priority are configurable."""

    role: Role = "moderator"
    priority: Priority = "high"


class OffensiveRule(_Model):
    actions: list[Literal["hide", "escalate", "ignore"]] = Field(min_length=1)
    role: Role = "moderator"
    priority: Priority = "normal"
    then: Literal["stop", "continue"] = Field(
        default="stop",
        description="continue: after these actions, still route the intent (a rude but real question gets its answer).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "OffensiveRule":
        if "ignore" in self.actions and len(self.actions) > 1:
            raise ValueError("'ignore' cannot be combined with other actions")
        if self.then == "continue" and "hide" in self.actions:
            raise ValueError("then: continue cannot be used with hide (a hidden comment must not be answered)")
        return self


class Moderation(_Model):
    spam: SpamRule = Field(default_factory=SpamRule)
    hate: HateRule = Field(default_factory=HateRule)
    offensive: OffensiveRule


class IntentRouting(_Model):
    out_of_scope_label: Name = "out_of_scope"
    routes: dict[Name, Route] = Field(min_length=1)
    fallback: Fallback = Field(default_factory=Fallback)

    @model_validator(mode="after")
    def _oos_not_routed(self) -> "IntentRouting":
        if self.out_of_scope_label in self.routes:
            raise ValueError(f"routes: {self.out_of_scope_label!r} is the out-of-scope label; it uses fallback")
        return self


class EntityPattern(_Model):
    """An entity extracted from message text by a regular expression.

    Patterns run on customer text, so they are compiled with the ``regex`` package and every
    search has a time limit (``defaults.ENTITY_REGEX_TIMEOUT_SECONDS``). At load time the pattern
    is also tried on probe strings (long runs of digits, letters, spaces, the pattern's own
    characters); one that backtracks catastrophically on them is refused.
    """

    pattern: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    format: str | None = Field(
        default=None, description="Normalised form using the pattern's named groups, e.g. 'KM-{digits}'."
    )
    case: Literal["keep", "upper", "lower"] = "keep"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = regex.compile(value, flags=regex.V0)
        except (regex.error, ValueError, OverflowError, RecursionError) as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        slow = _backtracking_probe(compiled)
        if slow is not None:
            raise ValueError(
                f"backtracks catastrophically: a search on {slow!r} took over "
                f"{defaults.ENTITY_REGEX_PROBE_SECONDS * 1000:.0f} ms (avoid nested quantifiers like (\\d+)+ "
                "or overlapping alternatives like (\\d|\\d\\d)+)"
            )
        return value

    @model_validator(mode="after")
    def _format_groups(self) -> "EntityPattern":
        if self.format is not None:
            groups = set(self.regex.groupindex)
            used = set(variables_of(self.format))  # raises ValueError on anything but {name}
            missing = used - groups
            if missing:
                raise ValueError(f"format uses {sorted(missing)} but the pattern has no such named group")
        return self

    @cached_property
    def regex(self) -> "regex.Pattern[str]":
        return regex.compile(self.pattern, flags=regex.V0)

    @cached_property
    def required(self) -> tuple[str, bool] | None:
        """(a text every match contains, whether its case is ignored) or None: the "required string"
        the regex package works out when it compiles the pattern and looks for before it searches
        (a fuzzy part never gives one), read from what the compiled pattern pickles (offset,
        characters, flags). Only one compared exactly, or ignoring case the simple way and ASCII
        (no full case folding, no locale), in a pattern that does not search backwards."""
        compiled = self.regex
        try:
            _, chars, flags = compiled._pickled_data[7:10]
            text = "".join(map(chr, chars))
        except (AttributeError, TypeError, ValueError):  # another version of the regex package
            return None
        if not text or compiled.flags & (regex.REVERSE | regex.LOCALE | regex.FULLCASE):
            return None
        if flags == 0:
            return text, False
        if flags == regex.IGNORECASE and text.isascii():
            return text.lower(), True
        return None

    def find(self, text: str) -> list[Any]:
        """Matches in ``text``; a search that runs out of time keeps the matches found so far.

        A text without the pattern's required text (:attr:`required`) is not searched: it cannot
        match (ignoring case, only an ASCII text is checked: its ``lower()`` is what ignoring case
        compares, and no other character matches an ASCII one there). Most messages hold no order
        number, and a search with a time limit also reads the process's CPU clock twice (two system
        calls, which callgrind's instruction counts do not show)."""
        required = self.required
        if required is not None:
            if not required[1]:
                if required[0] not in text:
                    return []
            elif text.isascii() and required[0] not in text.lower():
                return []
        found: list[Any] = []  # regex.Match (the regex package has no type information)
        try:
            # (string, pos, endpos, overlapped, concurrent, partial, timeout) by position, as regex's own
            # finditer passes them: by keyword, parsing the arguments was most of a search's cost
            for match in self.regex.finditer(
                text, None, None, False, None, False, defaults.ENTITY_REGEX_TIMEOUT_SECONDS
            ):
                found.append(match)
        except TimeoutError:
            log.warning("entity pattern %r ran out of time on a %d-character text", self.pattern[:60], len(text))
        return found

    def value(self, match: re.Match[str]) -> str:
        """The normalised value of one match."""
        if self.format is None:
            value = match.group(0)
        else:
            value = fill(parse_text(self.format), {k: v or "" for k, v in match.groupdict().items()})[0] or ""
        if self.case == "upper":
            return value.upper()
        if self.case == "lower":
            return value.lower()
        return value


class Keyword(_Model):
    """A quick reply: the whole message (ignoring case, width and punctuation) equals one of ``match``."""

    name: Name
    match: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(min_length=1)
    action: Literal["auto_reply", "escalate"]
    intent: Name | None = Field(default=None, description="Templates of this intent answer it (auto_reply).")
    role: Role | None = None
    priority: Priority | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Keyword":
        if self.action == "auto_reply" and not self.intent:
            raise ValueError("intent is required when action is 'auto_reply' (its templates are the reply)")
        if self.action == "escalate" and not self.role:
            raise ValueError("role is required when action is 'escalate'")
        return self


class OptOut(_Model):
    keywords: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(min_length=1)
    opt_in_keywords: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(default_factory=list)
    tag: Name = "opted_out"
    confirm_intent: Name | None = Field(
        default=None, description="If set, one confirmation from these templates is sent when a customer opts out."
    )
    role: Role = "tier1"
    priority: Priority = "low"


class Vip(_Model):
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(min_length=1)
    role: Role = "vip"
    priority: Priority = "high"


_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class BusinessHours(_Model):
    timezone: str
    weekly: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[str]]
    holidays: list[date] = Field(default_factory=list)
    away_intent: Name
    away_kinds: list[Kind] = Field(default=["dm"])  # pydantic copies a mutable default
    away_interval_hours: float = Field(default=12.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("weekly")
    @classmethod
    def _spans(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, spans in value.items():
            for span in spans:
                m = _SPAN.match(span)
                if not m:
                    raise ValueError(f"{day}: {span!r} is not HH:MM-HH:MM")
                if (int(m[3]), int(m[4])) <= (int(m[1]), int(m[2])):
                    raise ValueError(f"{day}: {span!r} ends before it starts")
                if m[3] == "24" and m[4] != "00":
                    raise ValueError(f"{day}: {span!r}: 24:00 is the latest end")
        return value

    @cached_property
    def _minutes(self) -> dict[str, list[tuple[int, int]]]:
        """day -> [(start minute, end minute)] parsed once from ``weekly``."""
        out: dict[str, list[tuple[int, int]]] = {}
        for day, spans in self.weekly.items():
            for span in spans:
                m = _SPAN.match(span)
                if m:  # always true: validated in _spans
                    out.setdefault(day, []).append((int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])))
        return out

    def spans_by_weekday(self) -> dict[int, list[tuple[int, int]]]:
        """weekday (0 = Monday) -> [(start minute, end minute)], for the SLA business-time calendar."""
        return {WEEKDAYS.index(day): spans for day, spans in self._minutes.items()}

    @cached_property
    def _zoneinfo(self) -> ZoneInfo:
        """The policy's time zone, looked up once (``is_open`` runs for every DM a brand with hours decides)."""
        return ZoneInfo(self.timezone)

    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` (timezone-aware) falls inside opening hours, in the policy's time zone."""
        local = at.astimezone(self._zoneinfo)
        if local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self._minutes.get(WEEKDAYS[local.weekday()], []))


class Greeting(_Model):
    """On the first message of a conversation, the reply starts with this intent's template."""

    intent: Name
    kinds: list[Kind] = Field(default=["dm"])  # pydantic copies a mutable default
    skip_for_intents: list[Name] = Field(
        default_factory=lambda: ["greeting"], description="Intents whose own reply already greets."
    )


class PrivateMatters(_Model):
    """Public comments about private matters get a public 'please DM us' reply instead of an answer."""

    intents: list[Name] = Field(default_factory=list, description="Intents not to be answered in public.")
    entities: list[Name] = Field(default_factory=list, description="Entities that make a comment private.")
    hide_entities: list[Name] = Field(
        default_factory=list, description="Entities (personal data) that also get the comment hidden."
    )
    reply_intent: Name


class LLMProvider(_Model):
    """An OpenAI-compatible endpoint (OpenAI, Azure OpenAI, vLLM, Ollama, llama.cpp server, ...)."""

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    api_key_env: Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]{0,63}$")] | None = Field(
        default=None, description="Environment variable holding the API key (never the key itself)."
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    max_retries: int = Field(default=2, ge=0, le=6)
    concurrency: int = Field(default=4, ge=1, le=256)
    monthly_token_budget: int = Field(default=1_000_000, ge=0)
    circuit_failures: int = Field(default=5, ge=1, le=100, description="Consecutive failures that open the circuit.")
    circuit_cooldown_seconds: float = Field(default=30.0, gt=0, le=3600)
    default_query: dict[str, str] = Field(
        default_factory=dict, description="Query parameters on every request, e.g. Azure OpenAI's api-version."
    )
    api_key_header: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")] | None = Field(
        default=None, description="Send the key in this header instead of 'Authorization: Bearer' (Azure: api-key)."
    )


class DraftSettings(_Model):
    """How one intent's approved template may be personalised."""

    provider: Name | None = None
    model: str | None = Field(default=None, description="Overrides the provider's model.")
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=16, le=4000)
    system_prompt: Name | None = None
    on_guardrail_failure: Literal["template", "escalate"] | None = None
    max_chars: int | None = Field(default=None, ge=40, le=4000)


class Personalise(_Model):
    defaults: DraftSettings = Field(default_factory=DraftSettings)
    intents: dict[Name, DraftSettings] = Field(
        default_factory=dict, description="Intents whose replies are personalised."
    )
    deadline_seconds: float = Field(default=20.0, gt=0, le=600, description="After this, the plain template goes out.")


class Cascade(_Model):
    """Uncertain intents: ask the LLM to choose among the top candidates (structured output)."""

    provider: Name | None = None
    model: str | None = None
    system_prompt: Name = "classify"
    band_low: float = Field(
        ge=0.0, le=1.0, description="Top intent probability from here up to its threshold is 'uncertain'."
    )
    top_k: int = Field(default=3, ge=2, le=10)
    min_llm_confidence: float = Field(default=0.7, ge=0, le=1)
    may_auto_reply: bool = Field(default=False, description="False: the LLM's choice only routes the escalation.")
    deadline_seconds: float = Field(default=20.0, gt=0, le=600)


class ModerationOpinion(_Model):
    """Borderline abuse: ask the server's moderation endpoint for a second opinion (where it has one)."""

    provider: Name | None = None
    model: str | None = None
    hate_band_low: float = Field(ge=0.0, le=1.0)
    deadline_seconds: float = Field(default=20.0, gt=0, le=600)


class LLMSettings(_Model):
    providers: dict[Name, LLMProvider] = Field(min_length=1)
    default_provider: Name
    personalise: Personalise | None = None
    cascade: Cascade | None = None
    moderation: ModerationOpinion | None = None

    @model_validator(mode="after")
    def _providers_exist(self) -> "LLMSettings":
        named: list[tuple[str, str | None]] = [("default_provider", self.default_provider)]
        if self.personalise:
            named.append(("personalise.defaults.provider", self.personalise.defaults.provider))
            named += [(f"personalise.intents.{k}.provider", v.provider) for k, v in self.personalise.intents.items()]
        if self.cascade:
            named.append(("cascade.provider", self.cascade.provider))
        if self.moderation:
            named.append(("moderation.provider", self.moderation.provider))
        for where, name in named:
            if name is not None and name not in self.providers:
                raise ValueError(f"{where}: provider {name!r} is not defined under llm.providers")
        return self

    def provider(self, name: str | None) -> LLMProvider:
        return self.providers[name or self.default_provider]

    def draft_settings(self, intent: str) -> DraftSettings | None:
        """Merged settings for personalising ``intent``'s replies, or None when it is not personalised."""
        if not self.personalise or intent not in self.personalise.intents:
            return None
        base = self.personalise.defaults.model_dump(exclude_none=True)
        base.update(self.personalise.intents[intent].model_dump(exclude_none=True))
        return DraftSettings.model_validate(base)


EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]


class Channel(_Model):
    """One platform the brand is on: the accounts that route to it, and where its secrets live
    (names of environment variables, never the secrets)."""

    account_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(min_length=1)
    app_secret_env: EnvName | None = None
    verify_token_env: EnvName | None = None
    access_token_env: EnvName | None = None


class Channels(_Model):
    whatsapp: Channel | None = None
    messenger: Channel | None = None
    instagram: Channel | None = None
    facebook: Channel | None = None
    youtube: Channel | None = None

    def get(self, platform: str) -> Channel | None:
        return getattr(self, platform, None) if platform in type(self).model_fields else None


class YouTubeModeration(_Model):
    """How a ``hide`` is carried out on YouTube (comments.setModerationStatus)."""

    hide_as: Literal["heldForReview", "rejected"] = "heldForReview"
    ban_author_rules: list[str] = Field(
        default_factory=list,
        description="Rules (e.g. moderation.hate) whose hides reject the comment and ban its author.",
    )


class Delivery(_Model):
    """How decisions reach the platforms (REPLYGUARD_DELIVERY_MODE overrides ``mode``)."""

    mode: Literal["dry_run", "live"] = "dry_run"
    rate_limit_per_second: Annotated[float, Field(gt=0, le=1000)] | None = None
    private_replies: bool = Field(
        default=False, description="Answer private matters in Instagram/Facebook comments with one private reply."
    )
    youtube: YouTubeModeration = Field(default_factory=YouTubeModeration)


class WebhookConnector(_Model):
    """An outbound, signed webhook (CRM, ticketing): every decision, or those matching the filter."""

    name: Name
    url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2048)]
    secret_env: EnvName
    actions: list[Literal["auto_reply", "hide", "escalate", "tag", "ignore"]] | None = None
    rules: list[str] | None = Field(default=None, description="Rule names or prefixes ending in '.' / '*'.")
    sla_events: bool = Field(default=True, description="Also receive SLA events marked notify (sla.breached …).")

    def wants(self, actions: list[str], rule: str) -> bool:
        if self.actions is not None and not set(self.actions) & set(actions):
            return False
        if self.rules is not None:
            return any(rule == r or (r.endswith((".", "*")) and rule.startswith(r.rstrip("*"))) for r in self.rules)
        return True


class ChatwootConnector(_Model):
    """replyguard as the Agent Bot of a Chatwoot inbox."""

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2048)]
    account_id: Annotated[int, Field(ge=1)]
    api_token_env: EnvName
    webhook_secret_env: EnvName
    inbox_ids: list[int] | None = None


class Connectors(_Model):
    webhooks: list[WebhookConnector] = Field(default_factory=list)
    chatwoot: ChatwootConnector | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> "Connectors":
        names = [w.name for w in self.webhooks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"webhook connector names must be unique: {dupes}")
        return self


class Api(_Model):
    """Who may post this brand's events to ``POST /v1/events``: names of environment variables
    holding a bearer token and/or an HMAC signing secret (never the secrets themselves)."""

    token_env: EnvName | None = None
    signing_secret_env: EnvName | None = None


class Models(_Model):
    spam: str
    abuse: str
    intent: str


class Policy(_Model):
    schema_version: Literal[1]
    brand: Annotated[str, StringConstraints(pattern=BRAND_PATTERN)]
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    languages: list[Language] = Field(min_length=1)
    default_language: Language
    language_fallback: Literal["escalate", "default_language"] = "escalate"
    variables: dict[Name, str] = Field(default_factory=dict)
    models: Models
    thresholds: Thresholds
    overrides: list[Override] = Field(default_factory=list)
    moderation: Moderation
    intents: IntentRouting
    entities: dict[Name, EntityPattern] = Field(default_factory=dict)
    keywords: list[Keyword] = Field(default_factory=list)
    opt_out: OptOut | None = None
    vip: Vip | None = None
    business_hours: BusinessHours | None = None
    greeting: Greeting | None = None
    private_matters: PrivateMatters | None = None
    llm: LLMSettings | None = None
    api: Api = Field(default_factory=Api)
    unreadable: Fallback | None = Field(
        default=None,
        description="What to do with a message replyguard cannot read (rule content.unreadable); "
        "default: the intents fallback.",
    )
    sla: Sla | None = None
    guardrails: GuardrailSettings = Field(default_factory=GuardrailSettings)
    channels: Channels = Field(default_factory=Channels)
    delivery: Delivery = Field(default_factory=Delivery)
    connectors: Connectors = Field(default_factory=Connectors)
    retention: Retention = Field(default_factory=Retention)

    @model_validator(mode="after")
    def _cross_checks(self) -> "Policy":
        problems: list[str] = []
        if self.default_language not in self.languages:
            problems.append(f"default_language {self.default_language!r} is not in languages {self.languages}")
        for task, required in (("spam", ("spam",)), ("abuse", ("hate", "offensive")), ("intent", ("default",))):
            missing = [label for label in required if label not in getattr(self.thresholds, task)]
            if missing:
                problems.append(f"thresholds.{task}: missing {missing} (every policy sets these explicitly)")
        clash = (set(self.entities) | set(BUILTIN_ENTITIES)) & set(self.variables)
        clash |= set(BUILTIN_VARIABLES) & (set(self.variables) | set(self.entities))
        if clash:
            problems.append(f"variables/entities {sorted(clash)} clash with built-in or entity names")
        names = [k.name for k in self.keywords] + [o.name for o in self.overrides]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"keyword/override names must be unique: {dupes}")
        seen: dict[str, str] = {}
        words = [(w, f"keywords[{k.name}]") for k in self.keywords for w in k.match]
        if self.opt_out:
            words += [(w, "opt_out.keywords") for w in self.opt_out.keywords]
            words += [(w, "opt_out.opt_in_keywords") for w in self.opt_out.opt_in_keywords]
        for word, where in words:
            norm = normalize_keyword(word)
            if not norm:
                problems.append(f"{where}: {word!r} is empty after normalisation")
            elif norm in seen and seen[norm] != where:
                problems.append(f"{where}: {word!r} is also a keyword in {seen[norm]}")
            seen.setdefault(norm, where)
        if self.private_matters:
            for name in ("entities", "hide_entities"):
                unknown = set(getattr(self.private_matters, name)) - set(self.entities) - set(BUILTIN_ENTITIES)
                if unknown:
                    problems.append(f"private_matters.{name}: {sorted(unknown)} are not declared under entities")
        if self.llm and self.llm.cascade:
            low = self.llm.cascade.band_low
            too_high = [k for k, v in self.thresholds.intent.items() if v < low]
            if too_high:
                problems.append(f"llm.cascade.band_low {low} is above the intent threshold of {too_high}")
        if (
            self.llm
            and self.llm.moderation
            and self.llm.moderation.hate_band_low > self.thresholds.abuse.get("hate", 1)
        ):
            problems.append("llm.moderation.hate_band_low is above thresholds.abuse.hate")
        if self.llm and self.llm.personalise:
            missing = self.guardrails.missing_kinds(self.languages)
            if missing:
                problems.append(
                    f"guardrails: no term list for {missing} (kind/language); drafts in these "
                    "languages could not be checked"
                )
        foreign = sorted({t.language for t in self.guardrails.term_lists} - set(self.languages))
        if foreign:
            problems.append(f"guardrails.term_lists: languages {foreign} are not in languages {self.languages}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _sla_clock_needs_hours(self) -> "Policy":
        if self.sla and self.business_hours is None:
            named = [p.name for p in self.sla.policies if p.clock == "business_hours"]
            if named:
                raise ValueError(f"sla: {named} count business hours but the policy sets no business_hours")
        return self

    # -- derived views ------------------------------------------------------------

    def base_view(self) -> "PolicyView":
        """The policy as written, no override applied (an override always names a platform or a kind)."""
        return self.view("", "")

    def view(self, platform: str, kind: str) -> "PolicyView":
        """The policy with the overrides for (platform, kind) merged in (computed once)."""
        views = self.view_table  # one attribute read: every decision asks (a private attribute costs ~4 µs)
        found = views.get((platform, kind))
        if found is None:
            found = views[(platform, kind)] = PolicyView(self, platform, kind)
        return found

    @cached_property
    def view_table(self) -> dict[tuple[str, str], "PolicyView"]:
        """(platform, kind) -> its view, filled by :meth:`view`."""
        return {}

    @cached_property
    def opt_out_words(self) -> frozenset[str]:
        return frozenset(normalize_keyword(k) for k in self.opt_out.keywords) if self.opt_out else frozenset()

    @cached_property
    def opt_in_words(self) -> frozenset[str]:
        return frozenset(normalize_keyword(k) for k in self.opt_out.opt_in_keywords) if self.opt_out else frozenset()

    @cached_property
    def keyword_index(self) -> dict[str, "Keyword"]:
        """Normalised keyword -> its quick-reply rule (keywords are unique, see _cross_checks)."""
        return {normalize_keyword(m): k for k in self.keywords for m in k.match}

    def template_intents(self) -> set[str]:
        """Every intent whose templates this policy may send."""
        out: set[str] = set()
        routes = [self.intents.routes] + [o.routes for o in self.overrides if o.routes]
        for table in routes:
            for label, route in table.items():
                if route.action == "auto_reply":
                    out.add(route.template_intent or label)
        out |= {k.intent for k in self.keywords if k.intent}
        if self.opt_out and self.opt_out.confirm_intent:
            out.add(self.opt_out.confirm_intent)
        if self.business_hours:
            out.add(self.business_hours.away_intent)
        if self.greeting:
            out.add(self.greeting.intent)
        if self.private_matters:
            out.add(self.private_matters.reply_intent)
        return out

    def template_variables(self) -> set[str]:
        return set(BUILTIN_VARIABLES) | set(BUILTIN_ENTITIES) | set(self.entities) | set(self.variables)


class PolicyView:
    """The policy as it applies to one (platform, kind): overrides merged in order."""

    def __init__(self, policy: Policy, platform: str, kind: str):
        self.policy = policy
        self.platform = platform
        self.kind = kind
        thresholds = policy.thresholds
        routes = dict(policy.intents.routes)
        fallback = policy.intents.fallback
        applied = []
        for override in policy.overrides:
            if override.applies(platform, kind):
                applied.append(override.name)
                thresholds = thresholds.merged(override.thresholds)
                routes.update(override.routes or {})
                fallback = override.fallback or fallback
        self.thresholds = thresholds
        self.routes = routes
        self.fallback = fallback
        self.overrides_applied = applied

    def intent_threshold(self, label: str) -> float:
        return self.thresholds.intent.get(label, self.thresholds.intent["default"])


_KEYWORD_STRIP = re.compile(r"[\s\W_]+", re.UNICODE)
#: the ASCII characters _KEYWORD_STRIP removes (taken from the pattern itself)
_ASCII_STRIP = bytes(c for c in range(128) if _KEYWORD_STRIP.match(chr(c)))


def normalize_keyword(text: str) -> str:
    """How keywords and messages are compared: NFKC, case-folded, punctuation and spaces removed.

    ASCII text (most messages) takes a shortcut with the same result: NFKC leaves it as it is,
    case-folding it is ``lower()``, and the removed characters are deleted by ``bytes.translate``
    (a quarter of the instructions of the substitution; every message is normalised once)."""
    if text.isascii():
        return text.lower().encode().translate(None, _ASCII_STRIP).decode()
    return _KEYWORD_STRIP.sub("", unicodedata.normalize("NFKC", text).casefold())


class LoadedPolicy:
    """A validated policy plus where it came from and its content hash."""

    def __init__(self, policy: Policy, path: Path, raw: bytes):
        self.policy = policy
        self.path = path
        self.version = "sha256:" + hashlib.sha256(raw).hexdigest()[:16]

    @property
    def brand(self) -> str:
        return self.policy.brand


def load_policy(path: Path, *, name_must_match: bool = True) -> LoadedPolicy:
    """Load and validate one policy file; raise PolicyError naming file, field path, line and reason.

    Policies in the policies directory must be named ``<brand>.yaml``; a candidate policy
    elsewhere (``policy.proposed.yaml`` for a replay) need not be (``name_must_match=False``).
    """
    policy, doc = load_validated(path, Policy, PolicyError)
    source = str(path)
    expected = path.stem
    if name_must_match and policy.brand != expected:
        raise PolicyError(
            source,
            Problem(
                f"brand (line {doc.line_of(('brand',))})",
                f"is {policy.brand!r} but the file is named {path.name}; name it {policy.brand}.yaml",
            ),
        )
    return LoadedPolicy(policy, path, doc.raw)


def load_policies(directory: Path) -> dict[str, LoadedPolicy]:
    """Load every ``*.yaml`` policy in ``directory``. Raises PolicyError for the first broken file."""
    if not directory.is_dir():
        raise PolicyError(str(directory), Problem("(directory)", "policies directory does not exist"))
    policies: dict[str, LoadedPolicy] = {}
    for path in sorted(directory.glob("*.yaml")):
        loaded = load_policy(path)
        policies[loaded.brand] = loaded
    if not policies:
        raise PolicyError(str(directory), Problem("(directory)", "holds no *.yaml policy"))
    _account_ids_unique_across_brands(policies)
    return policies


def _account_ids_unique_across_brands(policies: dict[str, LoadedPolicy]) -> None:
    """A platform account (phone number id, page id, ...) routes to one brand only: two brands
    claiming it would make every webhook for it ambiguous, so start-up stops."""
    owner: dict[tuple[str, str], str] = {}
    for brand, loaded in sorted(policies.items()):
        channels = loaded.policy.channels
        for platform in type(channels).model_fields:
            channel = channels.get(platform)
            for account in channel.account_ids if channel else []:
                first = owner.setdefault((platform, account), brand)
                if first != brand:
                    raise PolicyError(
                        str(loaded.path),
                        Problem(
                            f"channels.{platform}.account_ids",
                            f"{account!r} is also an account of brand {first!r} "
                            f"({policies[first].path.name}); an account routes to one brand only",
                        ),
                    )


def schema() -> dict[str, Any]:
    """JSON Schema of a policy file (published as policies/policy.schema.json)."""
    out = Policy.model_json_schema()
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["title"] = "replyguard brand policy"
    return out
