"""Approved reply templates: ``prompts/templates/<brand>.yaml``.

A template body is plain text with named placeholders ``{first_name}`` (see
:mod:`worker.placeholders`: nothing else is interpreted, so template text
cannot execute code).

Only templates with ``status: approved`` are ever used. A body whose variables
cannot all be filled falls back to ``fallback_body``; if that cannot be filled
either, rendering raises :class:`~worker.exceptions.RenderError` and the
message escalates. Unknown variable names are rejected when templates load.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from worker.exceptions import Problem, RenderError, TemplateError
from worker.placeholders import fill, parse_text, variables_of
from worker.models import BRAND_PATTERN, TemplatePart, TemplateRef
from worker.policy import Policy
from worker.unvalidated import given
from worker.yaml_source import load_validated

MAX_BODY_CHARS = 2_000


class WhatsAppTemplate(BaseModel):
    """The message template registered (and approved) with WhatsApp for this reply: sent instead
    of the free-form text when the 24-hour customer-service window has closed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,512}$")]
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")]


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,127}$")]
    intent: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]
    version: int = Field(ge=1)
    status: Literal["approved", "draft", "retired"]
    approved_by: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    approved_at: date | None = None
    body: Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY_CHARS)]
    fallback_body: Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY_CHARS)] | None = None
    notes: str | None = None
    whatsapp_template: WhatsAppTemplate | None = None

    @field_validator("body", "fallback_body")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_text(value)
        return value

    @model_validator(mode="after")
    def _approval(self) -> "Template":
        if self.status == "approved" and not self.approved_by:
            raise ValueError("approved_by is required when status is 'approved'")
        return self

    @property
    def ref(self) -> TemplateRef:
        return TemplateRef(id=self.id, version=self.version)


class TemplateFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    brand: Annotated[str, StringConstraints(pattern=BRAND_PATTERN)]
    templates: list[Template] = Field(min_length=1)


_PARTS = frozenset(get_args(TemplatePart))


@dataclass(frozen=True)
class Rendered:
    text: str
    template: Template
    fallback: bool

    def ref(self, part: TemplatePart) -> TemplateRef:
        """The reference a decision keeps, built without validation when its values are certain (the
        template's validated id and version, a known part): one a reply part, on the hot path."""
        found = self.template.__dict__
        ref_id, version, fallback = found["id"], found["version"], self.fallback
        if (
            type(ref_id) is str
            and type(version) is int
            and type(part) is str
            and part in _PARTS
            and type(fallback) is bool
        ):
            return given(TemplateRef, {"id": ref_id, "version": version, "part": part, "fallback": fallback})
        return TemplateRef(id=ref_id, version=version, part=part, fallback=fallback)


def render(template: Template, values: dict[str, str]) -> Rendered:
    """Fill ``template``; use its fallback body when a variable is missing. Raises RenderError."""
    if template.status != "approved":
        raise TemplateError(template.id, Problem("status", f"is {template.status!r}; only approved templates are sent"))
    text, missing = fill(parse_text(template.body), values)
    if text is not None:
        return Rendered(text, template, fallback=False)
    if template.fallback_body:
        text, fallback_missing = fill(parse_text(template.fallback_body), values)
        if text is not None:
            return Rendered(text, template, fallback=True)
        missing = sorted(set(missing) | set(fallback_missing))
    raise RenderError(template.id, missing)


class TemplateBook:
    """One brand's templates, with the approved ones indexed by (intent, language)."""

    def __init__(self, brand: str, templates: list[Template], path: Path | None = None):
        self.brand = brand
        self.path = path
        self.by_id = {t.id: t for t in templates}
        self._approved: dict[tuple[str, str], Template] = {
            (t.intent, t.language): t for t in templates if t.status == "approved"
        }

    def approved(self, intent: str, language: str) -> Template | None:
        return self._approved.get((intent, language))

    def approved_languages(self, intent: str) -> list[str]:
        return sorted(lang for (i, lang) in self._approved if i == intent)

    def versions(self) -> dict[str, int]:
        return {t.id: t.version for t in self._approved.values()}

    def check_policy(self, policy: Policy) -> list[Problem]:
        """Problems that make this template set unusable with ``policy``."""
        problems: list[Problem] = []
        known = policy.template_variables()
        constants = set(policy.variables) | {"platform"}
        for t in self.by_id.values():
            unknown = sorted(set(variables_of(t.body)) - known)
            if unknown:
                problems.append(
                    Problem(f"{t.id}.body", f"unknown template variable(s) {unknown}; known: {sorted(known)}")
                )
            if t.fallback_body:
                unknown = sorted(set(variables_of(t.fallback_body)) - constants)
                if unknown:
                    problems.append(
                        Problem(
                            f"{t.id}.fallback_body",
                            f"may only use policy variables {sorted(constants)} (always available), not {unknown}",
                        )
                    )
        for intent in sorted(policy.template_intents()):
            if not self.approved_languages(intent):
                problems.append(
                    Problem(f"intent {intent}", "the policy can answer it but no approved template exists for it")
                )
        return problems


def _template_where(loc: tuple, data: object) -> str | None:
    """'templates.3.status' -> 'templates.3.status (template id 'order_status.en')'."""
    if len(loc) >= 2 and loc[0] == "templates" and isinstance(loc[1], int) and isinstance(data, dict):
        items = data.get("templates")
        if isinstance(items, list) and loc[1] < len(items) and isinstance(items[loc[1]], dict):
            return f"{'.'.join(map(str, loc))} (template id {items[loc[1]].get('id')!r})"
    return None


def load_templates(path: Path) -> TemplateBook:
    """Load one brand's template file. Raises TemplateError naming file, template and reason."""
    parsed, _ = load_validated(path, TemplateFile, TemplateError, describe=_template_where)
    source = str(path)
    problems = []
    if parsed.brand != path.stem:
        problems.append(Problem("brand", f"is {parsed.brand!r} but the file is named {path.name}"))
    ids = [t.id for t in parsed.templates]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(Problem(f"template id {dup!r}", "defined more than once"))
    approved: dict[tuple[str, str], str] = {}
    for t in parsed.templates:
        if t.status != "approved":
            continue
        key = (t.intent, t.language)
        if key in approved:
            problems.append(
                Problem(
                    f"template id {t.id!r}",
                    f"a second approved template for intent {t.intent!r} in {t.language!r} (also {approved[key]!r}); "
                    "retire one",
                )
            )
        approved.setdefault(key, t.id)
    if problems:
        raise TemplateError(source, problems)
    return TemplateBook(parsed.brand, list(parsed.templates), path)
