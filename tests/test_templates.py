"""Approved templates: strict placeholders, fallbacks, only approved ones used, checked against the policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.exceptions import RenderError, TemplateError
from worker.placeholders import parse_text
from worker.policy import load_policy
from worker.settings import REPO_ROOT
from worker.templates import Template, load_templates, render

DEMO = REPO_ROOT / "prompts" / "templates" / "demo-shop.yaml"


def template(**fields: object) -> Template:
    base = {
        "id": "t.en",
        "intent": "order_status",
        "language": "en",
        "version": 1,
        "status": "approved",
        "approved_by": "qa",
        "body": "Order {order_id} for {first_name}.",
        "fallback_body": "See {track_url}.",
    }
    return Template.model_validate({**base, **fields})


def test_body_then_fallback_then_error() -> None:
    t = template()
    full = render(t, {"order_id": "KM-1", "first_name": "Aiko", "track_url": "https://x"})
    assert (full.text, full.fallback) == ("Order KM-1 for Aiko.", False)
    partial = render(t, {"first_name": "Aiko", "track_url": "https://x"})
    assert (partial.text, partial.fallback) == ("See https://x.", True)
    with pytest.raises(RenderError) as info:
        render(t, {"first_name": "Aiko"})
    assert info.value.template_id == "t.en"
    assert set(info.value.missing) == {"order_id", "track_url"}


def test_no_raw_placeholder_ever_leaks() -> None:
    t = template(fallback_body=None)
    with pytest.raises(RenderError):
        render(t, {"first_name": "Aiko", "order_id": ""})  # empty counts as missing


def test_values_are_not_interpreted() -> None:
    out = render(template(), {"order_id": "{first_name}", "first_name": "{{x}} {__class__}"})
    assert out.text == "Order {first_name} for {{x}} {__class__}."


@pytest.mark.parametrize("body", ["{first_name.__class__}", "{0}", "{name!r}", "{name:>10}", "{", "a } b", "{Name}"])
def test_only_simple_placeholders_are_allowed(body: str) -> None:
    with pytest.raises(ValueError, match="placeholders are"):
        parse_text(body)
    with pytest.raises(ValueError):
        template(body=body)


def test_literal_braces_are_escaped() -> None:
    assert render(template(body="{{ok}} {first_name}"), {"first_name": "A"}).text == "{ok} A"


def test_approved_requires_an_approver() -> None:
    with pytest.raises(ValueError, match="approved_by is required"):
        template(approved_by=None)


def test_only_approved_templates_are_selected() -> None:
    book = load_templates(DEMO)
    assert book.by_id["order_status.en.v4-draft"].status == "draft"
    assert book.approved("order_status", "en").id == "order_status.en"
    assert book.approved("thanks", "en").id == "thanks.en"  # the retired one is never chosen
    with pytest.raises(TemplateError, match="only approved templates are sent"):
        render(book.by_id["order_status.en.v4-draft"], {"first_name": "A", "order_id": "KM-1", "track_url": "u"})


def _write(tmp_path: Path, old: str, new: str) -> Path:
    text = DEMO.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "demo-shop.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_unknown_variable_is_rejected_against_the_policy(tmp_path: Path) -> None:
    path = _write(tmp_path, "You can follow order {order_id}", "You can follow order {ordr_id}")
    book = load_templates(path)
    problems = book.check_policy(load_policy(REPO_ROOT / "policies" / "demo-shop.yaml").policy)
    assert any(p.where == "order_status.en.body" and "ordr_id" in p.reason for p in problems)


def test_fallback_may_only_use_constants(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "Thanks for your message! You can follow your order", "Thanks {first_name}! You can follow your order"
    )
    problems = load_templates(path).check_policy(load_policy(REPO_ROOT / "policies" / "demo-shop.yaml").policy)
    assert any(p.where == "order_status.en.fallback_body" for p in problems)


def test_broken_template_file_names_file_template_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "    version: 3\n    status: approved\n", "    version: 3\n    status: aproved\n")
    with pytest.raises(TemplateError) as info:
        load_templates(path)
    message = str(info.value)
    assert str(path) in message and "template id 'order_status.en'" in message and "line" in message


def test_two_approved_templates_for_one_intent_and_language(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "    version: 4\n    status: draft\n", "    version: 4\n    status: approved\n    approved_by: x\n"
    )
    with pytest.raises(TemplateError, match="second approved template for intent 'order_status' in 'en'"):
        load_templates(path)


def test_policy_needs_a_template_for_every_answerable_intent(tmp_path: Path) -> None:
    text = DEMO.read_text(encoding="utf-8")
    for lang in ("en", "ja"):
        text = text.replace(
            f"  - id: pricing.{lang}\n    intent: pricing\n    language: {lang}\n    version: 1\n    status: approved",
            f"  - id: pricing.{lang}\n    intent: pricing\n    language: {lang}\n    version: 1\n    status: retired",
        )
    path = tmp_path / "demo-shop.yaml"
    path.write_text(text, encoding="utf-8")
    problems = load_templates(path).check_policy(load_policy(REPO_ROOT / "policies" / "demo-shop.yaml").policy)
    assert any(p.where == "intent pricing" for p in problems)
