"""The message contract (inbound events) and the decision record.

Inbound events are validated with :func:`parse_event`, which raises
:class:`~worker.exceptions.InvalidEvent` naming every bad field. The JSON Schema
published in ``worker/schema/inbound-event.schema.json`` is generated from
:class:`InboundEvent` (``replyguard schema event``); a test keeps the two equal.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from json.encoder import encode_basestring_ascii
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import SchemaValidator, to_json

from worker import bounded_json, defaults
from worker.exceptions import InvalidEvent, Problem
from worker.unvalidated import given

Platform = Literal["whatsapp", "instagram", "facebook", "messenger", "tiktok", "youtube", "x", "other"]
Kind = Literal["dm", "comment"]
PLATFORMS: tuple[str, ...] = Platform.__args__  # type: ignore[attr-defined]
KINDS: tuple[str, ...] = Kind.__args__  # type: ignore[attr-defined]

BRAND_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256)]
BrandId = Annotated[str, StringConstraints(pattern=BRAND_PATTERN)]

#: C0 controls except tab, LF and CR; DEL; and the C1 controls U+0080–U+009F.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: The characters (besides unpaired surrogates) that the event's string checks refuse or remove: the
#: controls above and the bidi controls below (a character class's inside, for _NOT_CANONICAL and the
#: validation screen's pattern).
_REFUSED_OR_REMOVED = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: Bidi embeddings, overrides and isolates (LRE RLE PDF LRO RLO, LRI RLI FSI PDI). They can make
#: text display in another order than it is stored ("2" shown as "22", a URL reversed).
#: The marks LRM, RLM and ALM are ordinary text and stay.
BIDI_CONTROLS = re.compile(r"[\u202a-\u202e\u2066-\u2069]")


def _check_unicode(value: str) -> str:
    """Reject text that cannot be stored or sent: unpaired surrogates, C0 and C1 controls."""
    if value.isascii():  # an ASCII string holds no surrogate: one scan of it spared
        if value.isprintable():  # nor, when printable (a C loop, no regex), any control: both spared
            return value
    else:
        match = _SURROGATE.search(value)
        if match:
            raise ValueError(
                f"contains an unpaired UTF-16 surrogate at character {match.start()} (not valid Unicode text)"
            )
    match = _CONTROL.search(value)
    if match:
        raise ValueError(f"contains control character U+{ord(match.group()):04X} at character {match.start()}")
    return value


def _check_identifier(value: str) -> str:
    """Identifiers are compared and displayed: bidi controls in them are refused, not removed."""
    value = _check_unicode(value)
    match = None if value.isascii() else BIDI_CONTROLS.search(value)  # bidi controls are never ASCII
    if match:
        raise ValueError(f"contains bidi control U+{ord(match.group()):04X} at character {match.start()}")
    return value


def _strip_bidi(value: str) -> str:
    """Free text (message, display name): bidi controls are removed (platforms insert them around names)."""
    value = _check_unicode(value)
    return value if value.isascii() else BIDI_CONTROLS.sub("", value)  # bidi controls are never ASCII


def _check_metadata(value: dict[str, Any]) -> None:
    """Raise ValueError unless ``value`` is JSON-serialisable within ``MAX_METADATA_BYTES``."""
    try:
        size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"is not JSON-serialisable: {exc}") from exc
    if size > defaults.MAX_METADATA_BYTES:
        raise ValueError(f"is {size} bytes of JSON; the limit is {defaults.MAX_METADATA_BYTES}")


def _lacks_post(kind: str, post_id: str | None) -> bool:
    """A comment must name its post."""
    return kind == "comment" and not post_id


class Author(BaseModel):
    """Who wrote the message, as the platform reports it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier = Field(description="Platform user id (stable per platform account).")
    name: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        default=None, description="Display name. Used in replies only if it looks like a name."
    )
    locale: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")] | None = Field(
        default=None, description="BCP 47 language tag, e.g. en-GB or ja-JP. A hint for language detection."
    )
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=50, description='CRM tags, e.g. ["vip"].'
    )

    # Printable ASCII (most values) holds nothing the checks refuse or remove: the validators return it
    # without calling them (each call a Python frame or two, several a message; tests/test_ascii_shortcuts.py).

    @field_validator("id")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return value if value.isascii() and value.isprintable() else _check_identifier(value)

    @field_validator("name")
    @classmethod
    def _free_text(cls, value: str | None) -> str | None:
        return value if value is None or (value.isascii() and value.isprintable()) else _strip_bidi(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return [tag if tag.isascii() and tag.isprintable() else _check_identifier(tag) for tag in value]


class InboundEvent(BaseModel):
    """One inbound DM or public comment."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="replyguard inbound event",
        json_schema_extra={
            "$comment": (
                f"text longer than {defaults.MAX_TEXT_CHARS} characters is rejected; "
                f"text longer than {defaults.CLASSIFY_MAX_CHARS} characters is moderated on its first "
                f"{defaults.CLASSIFY_MAX_CHARS} characters and escalated, never auto-replied (rule text.too_long)."
            )
        },
    )

    id: Identifier = Field(
        description="Message id, unique per brand. Ingesting the same (brand, id) twice yields one decision."
    )
    brand: BrandId = Field(description="Which brand's policy applies (policies/<brand>.yaml).")
    platform: Platform
    kind: Kind = Field(description="dm for a private message, comment for a public comment.")
    conversation_id: Identifier = Field(description="DM thread, or the comment thread, this message belongs to.")
    post_id: Identifier | None = Field(
        default=None, description="The post or video commented on. Required for comments."
    )
    author: Author
    text: str = Field(max_length=defaults.MAX_TEXT_CHARS, description="Message text; may be empty (attachment only).")
    created_at: AwareDatetime = Field(description="When the customer sent it: ISO 8601 with a UTC offset.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form, stored with the decision.")
    unreadable: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_:+-]{0,63}$")] | None = Field(
        default=None,
        description="The platform's type of a message replyguard cannot read (sticker, location, an image without "
        "caption...). Such an event is decided by rule content.unreadable (the policy's "
        "``unreadable`` action, else its fallback), never classified.",
    )

    # as Author's: printable ASCII returned without calling the checks

    @field_validator("id", "conversation_id", "post_id")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        return value if value is None or (value.isascii() and value.isprintable()) else _check_identifier(value)

    @field_validator("text")
    @classmethod
    def _free_text(cls, value: str) -> str:
        return value if value.isascii() and value.isprintable() else _strip_bidi(value)

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value:  # most events: '{}' is 2 bytes
            _check_metadata(value)
        return value

    @model_validator(mode="after")
    def _comment_has_post(self) -> "InboundEvent":
        if _lacks_post(self.kind, self.post_id):
            raise ValueError("post_id is required when kind is 'comment'")
        return self

    @property
    def key(self) -> tuple[str, str]:
        """Idempotency key: (brand, message id)."""
        return (self.brand, self.id)


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def problems_from(exc: ValidationError) -> list[Problem]:
    """Convert pydantic's errors into replyguard problems, one per bad field."""
    problems = []
    for err in exc.errors(include_url=False):
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if err["type"] == "extra_forbidden":
            message = "unknown field (not part of the message contract)"
        where = _loc(err["loc"]) or "(event)"
        problems.append(Problem(where, message))
    return problems


#: A string the event's string validators (``_identifier``, ``_free_text``) return unchanged:
#: none of the characters they refuse or remove. A pydantic-core pattern, matched in Rust; an unpaired
#: surrogate, which a Rust string cannot hold, already fails as a string there.
_CANONICAL_PATTERN = f"^[^{_REFUSED_OR_REMOVED}]*$"
#: The validators the screen replaces by ``_CANONICAL_PATTERN`` on their strings, and the ones
#: :func:`_screened` runs itself after it (in Python, only when they can fail).
_PATTERNED = frozenset({"_identifier", "_free_text"})
_CHECKED_AFTER = frozenset({"_metadata_size", "_comment_has_post"})
#: The keys of a pydantic-core schema node that hold schemas the screen rewrites.
_SUBSCHEMAS = ("schema", "items_schema", "keys_schema", "values_schema")


def _patterned(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` (a string or optional string) with ``_CANONICAL_PATTERN`` on its string."""
    kind = node["type"]
    if kind == "str" and "pattern" not in node:
        return {**node, "pattern": _CANONICAL_PATTERN}
    if kind in ("nullable", "default"):
        return {**node, "schema": _patterned(node["schema"])}
    raise TypeError(f"the event screen cannot put a pattern on a {kind!r} schema")


def _screen_schema(node: Any, top: bool = False) -> Any:
    """``node``, a pydantic-core schema of the event (``top``: the whole event's), with each of its
    Python validators either replaced by ``_CANONICAL_PATTERN`` or left to :func:`_screened`; any other
    validator is refused (TypeError at import), so a validator added to the event cannot be skipped
    unnoticed. A nested model (the author) is kept as it is: pydantic-core validates it with the
    model's own validator anyway (its ``__pydantic_validator__``, validators and all)."""
    if not isinstance(node, dict):
        return node
    kind = node.get("type", "")
    if kind == "model" and not top:
        return node
    if kind == "function-after":
        name = node["function"]["function"].__name__
        inner = _screen_schema(node["schema"], top)
        if name in _CHECKED_AFTER:
            return inner
        if name in _PATTERNED:
            return _patterned(inner)
        raise TypeError(f"the event screen does not know the validator {name}")
    if kind.startswith("function") or node.get("custom_init") or kind not in _SCREENED_TYPES:
        raise TypeError(f"the event screen does not know a {kind!r} schema")
    out = {key: _screen_schema(value) if key in _SUBSCHEMAS else value for key, value in node.items()}
    if "fields" in node:
        out["fields"] = {name: _screen_schema(field) for name, field in node["fields"].items()}
    return out


#: The schema types of the event's models (a new one is refused, see _screen_schema).
_SCREENED_TYPES = frozenset(
    {"model", "model-fields", "model-field", "str", "nullable", "default", "list", "dict", "any", "literal", "datetime"}
)
_MODEL_SCHEMA = InboundEvent.__pydantic_core_schema__
#: ``InboundEvent.model_validate`` without the event's own Python validators: its strings' checks are
#: the pattern, in Rust (~6k instructions an event fewer than the callbacks and model_validate's wrapper)
_SCREEN = SchemaValidator(_screen_schema(_MODEL_SCHEMA, top=True), _MODEL_SCHEMA["schema"]["config"]).validate_python


def _screened(data: dict[Any, Any]) -> InboundEvent | None:
    """The event :func:`parse_event` returns for ``data``, when the screen accepts it; else None (then
    the full checks run and decide, naming every problem).

    The screen accepts what validation accepts and leaves unchanged: the same fields, types and
    constraints, strings with no character the validators refuse or remove (so they return them as
    given), then the comment's post and non-empty metadata checked here. Its instance is the one
    validation makes (same class, values, fields set). The bounds walk that precedes validation finds
    nothing in what the screen accepts with empty metadata: every value but metadata is a string, a
    date and time (a number as a timestamp is within the datetime range, far below the digit limit),
    None, or the author (strings and a list of them, depth 2); with metadata, the walk runs as before."""
    try:
        event = _SCREEN(data)
    except (ValidationError, RecursionError, ValueError, TypeError, OverflowError):
        return None
    fields = event.__dict__
    if _lacks_post(fields["kind"], fields["post_id"]):
        return None
    metadata = fields["metadata"]
    if metadata:
        if bounded_json.walk_problems(data):
            return None
        try:
            _check_metadata(metadata)
        except ValueError:
            return None
    return event


def parse_event(data: object, source: str = "(unnamed)") -> InboundEvent:
    """Validate one event (a dict, or JSON text/bytes). Raises InvalidEvent naming every bad field.

    Nesting depth and number sizes are bounded (``defaults.MAX_JSON_DEPTH``,
    ``MAX_JSON_INT_DIGITS``) before anything recursive or costly runs; no input
    raises anything but InvalidEvent.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidEvent(
                source, Problem("(bytes)", f"not valid UTF-8: {exc.reason} at byte {exc.start}")
            ) from exc
    if isinstance(data, str):
        too_deep = bounded_json.depth_problem(data)
        if too_deep:
            raise InvalidEvent(source, too_deep)
        try:
            data = bounded_json.loads(data)
        except json.JSONDecodeError as exc:
            raise InvalidEvent(source, Problem("(json)", f"not valid JSON: {exc.msg} (column {exc.colno})")) from exc
    if not isinstance(data, dict):
        raise InvalidEvent(source, Problem("(event)", f"must be a JSON object, got {type(data).__name__}"))
    event = _screened(data)
    if event is not None:
        return event
    bad = bounded_json.walk_problems(data)
    if bad:
        raise InvalidEvent(source, bad)
    try:
        return InboundEvent.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(source, problems_from(exc)) from exc
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:  # a last line of defence, never expected
        raise InvalidEvent(source, Problem("(event)", f"cannot be validated: {type(exc).__name__}")) from exc


_EVENT_FIELDS = frozenset(InboundEvent.model_fields)
_AUTHOR_FIELDS = frozenset(Author.model_fields)
#: Anything parse_event would refuse or change in a string: controls, surrogates, bidi controls.
_NOT_CANONICAL = re.compile(f"[{_REFUSED_OR_REMOVED}" + r"\ud800-\udfff]")
_BRAND = re.compile(BRAND_PATTERN)
_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
_UNREADABLE = re.compile(r"^[a-z][a-z0-9_:+-]{0,63}$")
#: The canonical form of ``created_at`` (RFC 3339, as pydantic writes it): ``datetime.fromisoformat``
#: alone also takes forms validation refuses ("+05", "20261129T100000Z", week dates, second offsets).
_CREATED = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def _canonical(value: str) -> bool:
    """No character of ``_NOT_CANONICAL`` in ``value``: printable ASCII (the usual case: ``isascii``
    is a flag of the string, ``isprintable`` a C loop) has none, anything else is searched."""
    return (value.isascii() and value.isprintable()) or not _NOT_CANONICAL.search(value)


def _identifier_ok(value: object) -> bool:
    return type(value) is str and 0 < len(value) <= 256 and _canonical(value)


def trusted_event(data: object) -> InboundEvent | None:
    """The event an ingestor validated and serialised (``model_dump(mode="json")``), rebuilt
    without validating it again; None when ``data`` is not exactly such an event (then
    :func:`parse_event` decides, naming every bad field).

    Every check :func:`parse_event` makes is made here too, cheaply, on the canonical form (exact
    field sets, types, lengths, patterns, no character that validation would refuse or remove,
    an aware ``created_at``, a comment's post id, bounded metadata): a job payload that did not
    come from an ingestor, or was damaged on the way, falls back to full validation.
    """
    if type(data) is not dict or data.keys() != _EVENT_FIELDS:
        return None
    author = data["author"]
    if type(author) is not dict or author.keys() != _AUTHOR_FIELDS:
        return None
    text, name, tags, created, metadata = (
        data["text"],
        author["name"],
        author["tags"],
        data["created_at"],
        data["metadata"],
    )
    if not (
        _identifier_ok(data["id"])
        and _identifier_ok(data["conversation_id"])
        and _identifier_ok(author["id"])
        and (data["post_id"] is None or _identifier_ok(data["post_id"]))
        and type(data["brand"]) is str
        and _BRAND.fullmatch(data["brand"])
        and data["platform"] in PLATFORMS
        and data["kind"] in KINDS
        and (data["kind"] != "comment" or data["post_id"])
        and type(text) is str
        and len(text) <= defaults.MAX_TEXT_CHARS
        and _canonical(text)
        and (name is None or (type(name) is str and len(name) <= 256 and _canonical(name)))
        and (author["locale"] is None or (type(author["locale"]) is str and _LOCALE.fullmatch(author["locale"])))
        and type(tags) is list
        and len(tags) <= 50
        and all(_identifier_ok(t) and len(t) <= 64 for t in tags)
        and (
            data["unreadable"] is None
            or (type(data["unreadable"]) is str and _UNREADABLE.fullmatch(data["unreadable"]))
        )
        and type(created) is str
        and _CREATED.fullmatch(created)
        and type(metadata) is dict
    ):
        return None
    if metadata and (
        bounded_json.walk_problems(metadata, max_depth=defaults.MAX_JSON_DEPTH - 1)
        or len(json.dumps(metadata, ensure_ascii=False).encode("utf-8")) > defaults.MAX_METADATA_BYTES
    ):
        return None
    try:
        at = datetime.fromisoformat(created)
    except ValueError:
        return None
    if at.tzinfo is None or at.utcoffset() is None:
        return None
    # what model_construct makes (every field given, so every field set), without its per-field loop;
    # every field given in declaration order: ``given`` (no defaults to fill, ~4k instructions fewer an
    # instance than ``built``)
    return given(
        InboundEvent,
        {
            "id": data["id"],
            "brand": data["brand"],
            "platform": data["platform"],
            "kind": data["kind"],
            "conversation_id": data["conversation_id"],
            "post_id": data["post_id"],
            "author": given(Author, {"id": author["id"], "name": name, "locale": author["locale"], "tags": list(tags)}),
            "text": text,
            "created_at": at,
            "metadata": metadata,
            "unreadable": data["unreadable"],
        },
    )


_EVENT_SERIALIZER = InboundEvent.__pydantic_serializer__


def canonical_json(event: InboundEvent) -> bytes:
    """The event's canonical form (``model_dump(mode="json")``, which :func:`trusted_event` takes
    back) as compact JSON text in ASCII (non-ASCII characters escaped, as ``json.dumps`` does):
    pydantic-core's serializer writes it straight from the event, in the same bytes as its
    ``ensure_ascii=True``, which costs ~9k instructions an event more even with nothing to escape (most
    events). Its UTF-8 text is taken as it is when ASCII; else the text's and the author name's JSON
    strings in it, where non-ASCII characters usually are, are replaced by ``json``'s ASCII escaping of
    them (:func:`_ascii_strings`); anything else not ASCII is written by ``ensure_ascii=True``."""
    raw: bytes = _EVENT_SERIALIZER.to_json(event)
    if raw.isascii():
        return raw
    fields = event.__dict__
    raw = _ascii_strings(raw, (fields["text"], fields["author"].__dict__["name"]))
    return raw if raw.isascii() else _EVENT_SERIALIZER.to_json(event, ensure_ascii=True)


def _ascii_strings(raw: bytes, values: tuple[str | None, ...]) -> bytes:
    """``raw`` (pydantic-core's JSON text) with each non-ASCII value's JSON string replaced by the same
    string escaped to ASCII as ``ensure_ascii`` escapes it. The two differ only in the non-ASCII
    characters, each written by pydantic-core in UTF-8 or as ``json``'s ``\\uXXXX`` (lower-case hex, a
    surrogate pair above U+FFFF: pydantic-core's own escapes): both write every ASCII character alike
    but DEL (raw in one, escaped in the other), so a value holding DEL is left to ``ensure_ascii``.
    Non-ASCII characters are only ever inside strings, so wherever a replacement falls, it escapes
    whole characters there and nothing else."""
    for value in values:
        if value is not None and not value.isascii() and "\x7f" not in value:
            raw = raw.replace(to_json(value), encode_basestring_ascii(value).encode("ascii"))
    return raw


def event_json_schema() -> dict[str, Any]:
    """The published JSON Schema of an inbound event."""
    schema = InboundEvent.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/replyguard/replyguard/worker/schema/inbound-event.schema.json"
    return schema


# --- decisions -------------------------------------------------------------------


class Action(StrEnum):
    AUTO_REPLY = "auto_reply"
    HIDE = "hide"
    ESCALATE = "escalate"
    TAG = "tag"
    IGNORE = "ignore"


Priority = Literal["urgent", "high", "normal", "low"]


class RuleHit(BaseModel):
    """A rule that fired while deciding, with the score it compared and its threshold."""

    model_config = ConfigDict(extra="forbid")

    name: str
    score: float | None = None
    threshold: float | None = None
    detail: str | None = None


#: Which part of a reply a template filled.
TemplatePart = Literal["greeting", "reply", "away", "confirm"]


class TemplateRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    version: int
    part: TemplatePart = "reply"
    fallback: bool = False


class Escalation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str
    priority: Priority
    reason: str


class IntentResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    score: float
    threshold: float | None = None


class DecisionContext(BaseModel):
    """What was known about the conversation when deciding (so the decision can be replayed)."""

    model_config = ConfigDict(extra="forbid")

    opted_out: bool = False
    first_contact: bool = True
    away_sent_at: datetime | None = None


class LLMRecord(BaseModel):
    """What the LLM was asked for this message, and what became of it.

    While ``status`` is ``pending`` the decision's side effects (reply, review queue) wait
    for the LLM job, bounded by ``deadline``; the decision as stored is what goes out if
    the LLM fails or is late (``outcome: fallback`` with the ``reason``).
    """

    model_config = ConfigDict(extra="forbid")

    task: Literal["personalise", "cascade", "moderation"]
    status: Literal["pending", "done"] = "pending"
    outcome: Literal["used", "fallback", "escalated", "unchanged"] | None = None
    reason: str | None = Field(default=None, description="Why the LLM result was not used (stable code).")
    detail: str | None = None
    deadline: datetime
    provider: str | None = None
    host: str | None = None
    model: str | None = None
    prompt: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    attempts: int = 0
    guardrails: list[dict[str, Any]] = Field(default_factory=list)
    draft: str | None = Field(default=None, description="The LLM's text, kept for audit even when refused.")
    plain_reply: str | None = None
    before: dict[str, Any] | None = Field(default=None, description="The decision's outcome before the LLM task.")
    choice: dict[str, Any] | None = None
    classifier: dict[str, Any] | None = None
    moderation: dict[str, Any] | None = None
    finished_at: datetime | None = None


class DeliveryRecord(BaseModel):
    """What became of one outbound action of a decision (a reply, a hide, a webhook …)."""

    model_config = ConfigDict(extra="forbid")

    action: str = Field(
        description="reply, template, private_reply, hide, webhook:<name>, chatwoot_note, chatwoot_open"
    )
    target: str = Field(description="platform or connector that carried it out")
    status: Literal["sent", "failed", "skipped", "dry_run", "unknown"]
    platform_message_id: str | None = None
    attempts: int = 0
    error: str | None = Field(default=None, description="Stable code and the platform's message (never the text sent).")
    at: datetime


def llm_pending(llm: LLMRecord | None) -> bool:
    """:attr:`Decision.pending` of a decision's ``llm`` field (hot paths read a decision's fields from its
    ``__dict__`` in one go)."""
    return llm is not None and llm.__dict__["status"] == "pending"


class Decision(BaseModel):
    """What replyguard decided for one message, and why. Stored in Redis as JSON."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    message_id: str
    brand: str
    platform: str
    kind: str
    conversation_id: str
    author_id: str
    language: str
    actions: list[Action]
    rule: str = Field(description="The rule that determined the outcome.")
    threshold: float | None = Field(default=None, description="Threshold compared by that rule, if any.")
    score: float | None = Field(default=None, description="Score compared by that rule, if any.")
    rules: list[RuleHit] = Field(description="Every rule that fired, in order.")
    scores: dict[str, dict[str, float]] = Field(description="task -> label -> calibrated probability.")
    intent: IntentResult | None = None
    template: TemplateRef | None = Field(default=None, description="Main template used for the reply.")
    templates: list[TemplateRef] = Field(default_factory=list, description="Every template in the reply, in order.")
    reply: str | None = None
    escalation: Escalation | None = None
    tags: list[str] = Field(default_factory=list, description="Tags added to the author (e.g. opted_out).")
    untags: list[str] = Field(default_factory=list, description="Tags removed from the author.")
    entities: dict[str, list[str]] = Field(default_factory=dict)
    truncated: bool = False
    context: DecisionContext = Field(default_factory=DecisionContext)
    llm: LLMRecord | None = None
    policy_version: str
    template_versions: dict[str, int] = Field(default_factory=dict)
    model_versions: dict[str, str]
    timings: dict[str, float] = Field(default_factory=dict, description="Milliseconds per stage.")
    decided_at: datetime
    job_id: str | None = None
    deliveries: list[DeliveryRecord] = Field(
        default_factory=list, description="Outbound actions carried out, in order."
    )
    event: dict[str, Any] = Field(description="The inbound event as received.")

    @property
    def pending(self) -> bool:
        """Waiting for an LLM job: side effects are deferred until it (or its deadline) finalises."""
        return llm_pending(self.llm)

    def to_json(self) -> str:
        return self.model_dump_json()

    def json_bytes(self) -> bytes:
        """``to_json()`` as UTF-8 bytes, from the serializer itself (what ``model_dump_json`` calls
        with these same defaults, without its keyword handling and the decode that redis-py would
        undo): the persist stage stores one per decision."""
        return type(self).__pydantic_serializer__.to_json(self)

    @classmethod
    def from_json(cls, raw: str | bytes) -> "Decision":
        return cls.model_validate_json(raw)


class Correction(BaseModel):
    """A person's verdict on a decided message (from the review queue): the right labels."""

    model_config = ConfigDict(extra="forbid")

    brand: str
    message_id: str
    intent: str | None = Field(default=None, description="The intent the message really has.")
    spam: bool | None = None
    abuse: Literal["hate", "offensive", "neither"] | None = None
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None
    by: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    at: datetime
