"""The ``sla:`` section of a brand policy, validated like the rest of it.

::

    sla:
      policies:                      # the first whose ``match`` fits an escalation applies
        - name: vip
          match: {tags: [vip]}       # platforms, kinds, priorities, tags (author), roles (escalation)
          clock: always              # or business_hours (the default when the brand sets them)
          first_response: 15m
          next_response: 30m
          resolution: 8h
          warn_before: 5m
          automated_reply_counts: false
          on_breach: {raise_priority: urgent, reroute_to: manager, notify: true}

Durations are ``1d2h30m15s``-style strings (any of the parts, in that order).
Cross-field rules are small named validators; ``Policy`` checks the ones that need
the rest of the policy (a ``business_hours`` clock needs the brand's business hours).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, WithJsonSchema, model_validator

from worker.models import Kind, Platform, Priority

Target = Literal["first_response", "next_response", "resolution"]
TARGETS: tuple[Target, ...] = ("first_response", "next_response", "resolution")

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: object) -> timedelta:
    """``"1h30m"`` -> timedelta(hours=1, minutes=30). Raises ValueError naming the expected form."""
    if isinstance(value, timedelta):
        return value
    text = str(value).strip()
    match = _DURATION.match(text)
    if not text or not match or not any(match.groups()):
        raise ValueError(f"{value!r} is not a duration like 15m, 1h30m, 2d or 45s")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    out = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if out <= timedelta(0):
        raise ValueError(f"{value!r} must be longer than zero")
    return out


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    WithJsonSchema({"type": "string", "pattern": _DURATION.pattern, "examples": ["15m", "1h30m"]}),
]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Role = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlaMatch(_Model):
    """Which escalations a policy applies to; every listed field must match, an empty match takes all."""

    platforms: list[Platform] | None = None
    kinds: list[Kind] | None = None
    priorities: list[Priority] | None = Field(default=None, description="The escalation's priority when it started.")
    tags: list[Tag] | None = Field(default=None, description="Any of these author tags.")
    roles: list[Role] | None = Field(default=None, description="The role the escalation was routed to.")

    def fits(self, *, platform: str, kind: str, priority: str, tags: list[str], role: str) -> bool:
        m = self.__dict__  # one read: a model's attribute reads go through pydantic's __getattr__ hook
        return (
            (m["platforms"] is None or platform in m["platforms"])
            and (m["kinds"] is None or kind in m["kinds"])
            and (m["priorities"] is None or priority in m["priorities"])
            and (m["tags"] is None or bool(set(m["tags"]) & set(tags)))
            and (m["roles"] is None or role in m["roles"])
        )

    @property
    def catch_all(self) -> bool:
        return all(getattr(self, f) is None for f in ("platforms", "kinds", "priorities", "tags", "roles"))


class BreachActions(_Model):
    """What happens, once, when a target is missed."""

    raise_priority: Priority | None = Field(default=None, description="At least this priority (never lowered).")
    reroute_to: Role | None = Field(default=None, description="Move the escalation to this role's queue.")
    notify: bool = Field(default=False, description="Emit an sla.breached event for the outbound webhook.")

    @model_validator(mode="after")
    def _does_something(self) -> "BreachActions":
        if self.raise_priority is None and self.reroute_to is None and not self.notify:
            raise ValueError("on_breach must raise_priority, reroute_to and/or notify")
        return self


class SlaPolicy(_Model):
    name: Name
    match: SlaMatch = Field(default_factory=SlaMatch)
    clock: Literal["business_hours", "always"] | None = Field(
        default=None, description="business_hours: count only opening hours (default when the brand sets them)."
    )
    first_response: Duration | None = None
    next_response: Duration | None = None
    resolution: Duration | None = None
    warn_before: Duration | None = None
    automated_reply_counts: bool = Field(
        default=False, description="An automated reply (greeting, away message) satisfies the first response."
    )
    pause_while_waiting: bool = Field(
        default=True, description="The resolution clock stops while the brand waits for the customer."
    )
    on_breach: BreachActions | None = None

    @model_validator(mode="after")
    def _has_a_target(self) -> "SlaPolicy":
        if not any(self.target(t) for t in TARGETS):
            raise ValueError(f"SLA policy {self.name!r} sets none of {', '.join(TARGETS)}")
        return self

    @model_validator(mode="after")
    def _warning_before_every_target(self) -> "SlaPolicy":
        if self.warn_before is not None:
            short = [t for t in TARGETS if (d := self.target(t)) is not None and d <= self.warn_before]
            if short:
                raise ValueError(
                    f"warn_before ({format_duration(self.warn_before)}) must be shorter than "
                    f"the {', '.join(short)} target"
                )
        return self

    @model_validator(mode="after")
    def _first_response_within_resolution(self) -> "SlaPolicy":
        if self.first_response and self.resolution and self.first_response > self.resolution:
            raise ValueError("first_response is longer than resolution (it could never be met before it)")
        return self

    def target(self, name: str) -> timedelta | None:
        return getattr(self, name)


class Sla(_Model):
    policies: list[SlaPolicy] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> "Sla":
        names = [p.name for p in self.policies]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"SLA policy names must be unique: {dupes}")
        return self

    @model_validator(mode="after")
    def _nothing_after_catch_all(self) -> "Sla":
        for i, p in enumerate(self.policies[:-1]):
            if p.match.catch_all:
                raise ValueError(
                    f"SLA policy {p.name!r} matches everything, so "
                    f"{[q.name for q in self.policies[i + 1 :]]} after it can never apply"
                )
        return self

    def select(self, *, platform: str, kind: str, priority: str, tags: list[str], role: str) -> SlaPolicy | None:
        """The first policy that fits an escalation, or None."""
        for p in self.policies:
            if p.match.fits(platform=platform, kind=kind, priority=priority, tags=tags, role=role):
                return p
        return None
