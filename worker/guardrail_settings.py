"""What a brand's policy says about LLM drafts: allowed link domains and term lists.

The ``guardrails`` section of a policy (all optional)::

    guardrails:
      allowed_domains: [komorebi.example]     # links to these (and their subdomains) may appear
      default_terms: true                      # also use worker/guardrails_data/default-terms.yaml
      term_lists:                              # presidio-style deny lists, one per kind and language
        - name: offers_extra_en
          kind: offer                          # offer | promise | insult
          language: en
          terms: [loyalty voucher, free mug]

A draft that uses a term of an ``offer`` or ``promise`` list that the approved template does
not use, or any ``insult`` term, is refused (see :mod:`worker.guardrails`). English terms match
whole words on the canonical form (:mod:`worker.canonical`), case-insensitively, a trailing
``*`` matching any ending; Japanese (and other languages written without spaces) match anywhere.
"""

from __future__ import annotations

import re
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from worker.canonical import canonical

DEFAULT_TERMS = Path(__file__).parent / "guardrails_data" / "default-terms.yaml"
TermKind = Literal["offer", "promise", "insult"]
#: Languages written without spaces between words: their terms match anywhere.
UNSPACED = frozenset({"ja", "zh", "th", "lo", "km", "my"})
Domain = Annotated[str, StringConstraints(pattern=r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}$")]


def term_key(term: str) -> str:
    """How terms are compared with each other and with text: canonical and case-folded."""
    return " ".join(canonical(term).casefold().split())


class TermList(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    kind: TermKind
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]
    terms: list[Annotated[str, StringConstraints(min_length=1, max_length=80)]] = Field(min_length=1, max_length=2000)

    @field_validator("terms")
    @classmethod
    def _distinct(cls, terms: list[str]) -> list[str]:
        keys = [term_key(t) for t in terms]
        empty = [t for t, k in zip(terms, keys, strict=True) if not k.strip("*")]
        if empty:
            raise ValueError(f"terms {empty[:3]} are empty after normalisation")
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"terms listed twice: {dupes[:5]}")
        return terms

    @cached_property
    def patterns(self) -> dict[str, re.Pattern[str]]:
        """term -> compiled pattern over case-folded canonical text."""
        out = {}
        for term in self.terms:
            key = term_key(term)
            prefix = key.endswith("*")
            body = r"[\s\-]+".join(re.escape(word) for word in key.rstrip("*").split())
            if self.language in UNSPACED:
                out[term] = re.compile(body)
            else:
                tail = r"[^\W_]*" if prefix else r"(?![^\W_])"
                out[term] = re.compile(r"(?<![^\W_])" + body + tail)
        return out

    def found(self, folded_canonical_text: str) -> set[str]:
        """Terms of this list that occur in the (already canonical, case-folded) text."""
        return {term for term, pattern in self.patterns.items() if pattern.search(folded_canonical_text)}


class TermFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    term_lists: list[TermList]


@lru_cache(maxsize=1)
def default_term_lists() -> tuple[TermList, ...]:
    """The shipped lists (a broken file stops start-up with the file and field named)."""
    from worker.exceptions import PolicyError
    from worker.yaml_source import load_validated

    parsed, _ = load_validated(DEFAULT_TERMS, TermFile, PolicyError)
    return tuple(parsed.term_lists)


class GuardrailSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed_domains: list[Domain] = Field(
        default_factory=list,
        description="Link domains a draft may use besides those in its template (subdomains included).",
    )
    default_terms: bool = Field(default=True, description="Also use the shipped term lists.")
    term_lists: list[TermList] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> "GuardrailSettings":
        names = [t.name for t in self.term_lists]
        if self.default_terms:
            names += [t.name for t in default_term_lists()]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"term list names must be unique (the shipped lists count too): {dupes}")
        return self

    def lists(self) -> list[TermList]:
        return [*(default_term_lists() if self.default_terms else ()), *self.term_lists]

    def missing_kinds(self, languages: list[str]) -> list[str]:
        """'offer/fr'-style pairs of a policy language without a list of that kind."""
        have = {(t.kind, t.language) for t in self.lists()}
        return [
            f"{kind}/{lang}"
            for lang in languages
            for kind in ("offer", "promise", "insult")
            if (kind, lang) not in have
        ]
