"""System prompts for LLM calls: ``prompts/system/<id>.yaml``, versioned like templates.

Only ``status: approved`` prompts are used; decisions record ``<id>@<version>``.
Placeholders follow :mod:`worker.placeholders` (``{brand_name}`` ...), so prompt
files cannot run code either.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator

from worker.exceptions import Problem, RenderError, TemplateError
from worker.placeholders import fill, parse_text
from worker.yaml_source import load_validated


class SystemPrompt(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    purpose: Literal["personalise", "classify"]
    version: int
    status: Literal["approved", "draft", "retired"]
    approved_by: str | None = None
    approved_at: date | None = None
    body: Annotated[str, StringConstraints(min_length=20, max_length=8000)]

    @field_validator("body")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_text(value)
        return value

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    def render(self, values: dict[str, str]) -> str:
        text, missing = fill(parse_text(self.body), values)
        if text is None:
            raise RenderError(self.ref, missing)
        return text


def load_system_prompt(directory: Path, prompt_id: str, purpose: str) -> SystemPrompt:
    path = directory / f"{prompt_id}.yaml"
    prompt, _ = load_validated(path, SystemPrompt, TemplateError)
    problems = []
    if prompt.id != prompt_id:
        problems.append(Problem("id", f"is {prompt.id!r} but the file is named {path.name}"))
    if prompt.status != "approved":
        problems.append(Problem("status", f"is {prompt.status!r}; only approved system prompts are used"))
    if prompt.purpose != purpose:
        problems.append(Problem("purpose", f"is {prompt.purpose!r} but it is used to {purpose}"))
    if problems:
        raise TemplateError(str(path), problems)
    return prompt
