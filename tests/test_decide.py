"""The policy rules, applied by the pure decide() to hand-made scores (no models, no Redis)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.conftest import make_event
from worker.brands import Brand
from worker.decide import decide
from worker.models import DecisionContext, parse_event

TUESDAY = "2026-11-24T10:00:00+09:00"
SATURDAY = "2026-11-28T23:00:00+09:00"
KNOWN = DecisionContext(first_contact=False)


def scores(
    brand: Brand,
    *,
    spam: float = 0.01,
    hate: float = 0.01,
    offensive: float = 0.01,
    intent: str = "order_status",
    p: float = 0.95,
) -> dict[str, dict[str, float]]:
    labels = brand.intent.labels
    rest = (1 - p) / (len(labels) - 1)
    return {
        "spam": {"ham": 1 - spam, "spam": spam},
        "abuse": {"hate": hate, "offensive": offensive, "neither": max(0.0, 1 - hate - offensive)},
        "intent": {label: (p if label == intent else rest) for label in labels},
    }


@pytest.fixture()
def shop(brands: dict[str, Brand]) -> Brand:
    return brands["demo-shop"]


def run(shop: Brand, context: DecisionContext = KNOWN, **kwargs):
    score_args = {k: kwargs.pop(k) for k in ("spam", "hate", "offensive", "intent", "p") if k in kwargs}
    event = parse_event(make_event(**kwargs))
    return decide(event, scores(shop, **score_args), context, shop)


def actions(outcome) -> list[str]:
    return sorted(a.value for a in outcome.decision.actions)


def test_confident_faq_is_answered_from_the_approved_template(shop: Brand) -> None:
    d = run(shop).decision
    assert actions(run(shop)) == ["auto_reply"]
    assert d.rule == "intent.auto_reply" and d.intent.label == "order_status"
    assert d.template.id == "order_status.en" and d.template.version == 3
    assert "KM-204815" in d.reply and "Aiko" in d.reply and "{" not in d.reply
    assert d.threshold == 0.7 and d.score == pytest.approx(0.95)
    assert d.policy_version == shop.policy_version and set(d.model_versions) == {"spam", "abuse", "intent"}


def test_japanese_gets_the_japanese_template(shop: Brand) -> None:
    d = run(
        shop, text="注文番号ＫＭ－２０４８１５の荷物はどこですか", author={"name": "田中 花子", "locale": "ja-JP"}
    ).decision
    assert d.language == "ja" and d.template.id == "order_status.ja"
    assert "KM-204815" in d.reply and "田中 花子様" in d.reply


def test_missing_variable_uses_the_fallback_body(shop: Brand) -> None:
    d = run(shop, text="where is my order?", author={"name": "http://spam.example"}).decision
    assert d.templates[0].fallback is True
    assert "https://komorebi.example/orders" in d.reply and "{" not in d.reply and "spam.example" not in d.reply


def test_below_threshold_escalates_with_the_threshold(shop: Brand) -> None:
    d = run(shop, p=0.69).decision
    assert d.rule == "intent.low_confidence" and d.threshold == 0.7 and d.score == pytest.approx(0.69)
    assert d.escalation.role == "tier1" and d.reply is None


def test_out_of_scope_dm_escalates_but_comment_is_ignored(shop: Brand) -> None:
    assert actions(run(shop, intent="out_of_scope")) == ["escalate"]
    comment = run(shop, intent="out_of_scope", kind="comment", text="so pretty!!")
    assert actions(comment) == ["ignore"] and comment.decision.rule == "intent.out_of_scope"


def test_human_agent_escalates_with_its_route(shop: Brand) -> None:
    d = run(shop, intent="human_agent", p=0.55).decision
    assert d.rule == "intent.escalate" and d.threshold == 0.5
    assert (d.escalation.role, d.escalation.priority) == ("tier1", "high")


def test_spam_hidden_with_per_kind_threshold(shop: Brand) -> None:
    dm = run(shop, spam=0.75).decision
    assert "hide" not in actions(run(shop, spam=0.75))  # DM threshold 0.85
    comment = run(shop, spam=0.75, kind="comment").decision
    assert [a.value for a in comment.actions] == ["hide"]
    assert comment.rule == "moderation.spam" and comment.threshold == 0.7 and comment.reply is None
    assert dm.rule == "intent.auto_reply"


def test_hate_is_hidden_and_escalated_to_moderators(shop: Brand) -> None:
    d = run(shop, hate=0.9, kind="comment").decision
    assert actions(run(shop, hate=0.9, kind="comment")) == ["escalate", "hide"]
    assert d.rule == "moderation.hate" and d.escalation.role == "moderator" and d.escalation.priority == "high"
    assert d.reply is None


def test_offensive_escalates_and_still_answers_the_question(shop: Brand) -> None:
    d = run(shop, offensive=0.9).decision
    assert actions(run(shop, offensive=0.9)) == ["auto_reply", "escalate"]
    assert d.rule == "moderation.offensive" and d.escalation.role == "moderator"
    assert [r.name for r in d.rules] == ["moderation.offensive", "intent.auto_reply"]


def test_vip_always_goes_to_a_person(shop: Brand) -> None:
    d = run(shop, author={"tags": ["vip"]}, spam=0.99).decision
    assert [a.value for a in d.actions] == ["escalate"] and d.rule == "vip" and d.escalation.role == "vip_care"
    assert d.reply is None


def test_opt_out_keyword_tags_the_author(shop: Brand) -> None:
    for text in ("STOP", "stop.", "ＳＴＯＰ", "配信停止"):
        outcome = run(shop, text=text, intent="out_of_scope")
        assert outcome.optout_op == "add"
        assert actions(outcome) == ["ignore", "tag"] and outcome.decision.tags == ["opted_out"]
        assert outcome.decision.reply is None


def test_opted_out_author_is_never_auto_messaged(shop: Brand) -> None:
    outcome = run(shop, DecisionContext(opted_out=True, first_contact=True), created_at=SATURDAY)
    d = outcome.decision
    assert d.reply is None and "auto_reply" not in actions(outcome)
    assert d.rule == "opt_out.suppressed" and d.escalation.priority == "low"
    assert not outcome.away_sent


def test_opt_in_keyword_removes_the_tag(shop: Brand) -> None:
    outcome = run(shop, DecisionContext(opted_out=True), text="START")
    assert outcome.optout_op == "remove" and outcome.decision.untags == ["opted_out"]


def test_keywords_quick_reply_and_escalate(shop: Brand) -> None:
    track = run(shop, text="track", intent="out_of_scope").decision
    assert track.rule == "keyword.track" and track.template.id == "order_status.en" and track.templates[0].fallback
    agent = run(shop, text="担当者", intent="out_of_scope").decision
    assert agent.rule == "keyword.agent" and agent.escalation.priority == "high"


def test_private_matter_in_public_comment(shop: Brand) -> None:
    by_intent = run(shop, kind="comment", text="when will my order arrive?").decision
    assert by_intent.rule == "private_matter.intent" and by_intent.template.id == "please_dm.en"
    with_email = run(shop, kind="comment", text="refund me, mail a.b@example.com", intent="returns").decision
    assert with_email.rule == "private_matter.entities"
    assert sorted(a.value for a in with_email.actions) == ["auto_reply", "hide"]
    public_faq = run(shop, kind="comment", text="do you ship to Canada?", intent="shipping_time").decision
    assert public_faq.rule == "intent.auto_reply" and public_faq.template.id == "shipping_time.en"


def test_greeting_only_on_first_contact_in_dms(shop: Brand) -> None:
    first = run(shop, DecisionContext(first_contact=True)).decision
    assert [t.part for t in first.templates] == ["greeting", "reply"]
    assert first.reply.startswith("Hi Aiko, thanks for getting in touch")
    assert [t.part for t in run(shop).decision.templates] == ["reply"]
    hello = run(shop, DecisionContext(first_contact=True), text="hi!", intent="greeting").decision
    assert [t.id for t in hello.templates] == ["greeting.en"]  # no double greeting


def test_away_message_outside_hours_once_per_interval(shop: Brand) -> None:
    closed = run(shop, intent="human_agent", created_at=SATURDAY)
    assert closed.away_sent and [t.part for t in closed.decision.templates] == ["away"]
    assert "escalate" in actions(closed)
    recent = DecisionContext(first_contact=False, away_sent_at=datetime.fromisoformat(SATURDAY) - timedelta(hours=2))
    again = run(shop, recent, intent="human_agent", created_at=SATURDAY)
    assert not again.away_sent and again.decision.reply is None
    open_hours = run(shop, intent="human_agent", created_at=TUESDAY)
    assert not open_hours.away_sent
    faq_at_night = run(shop, created_at=SATURDAY)  # FAQs are answered around the clock, no away note
    assert [t.part for t in faq_at_night.decision.templates] == ["reply"]


def test_unsupported_language_escalates_instead_of_answering_in_english(shop: Brand) -> None:
    d = run(shop, text="Wo ist meine Bestellung KM-204815?", author={"locale": "de-DE"}).decision
    assert d.language == "de" and d.rule == "template.missing" and d.reply is None
    assert d.escalation is not None


def test_empty_and_too_long_texts(shop: Brand) -> None:
    empty = run(shop, text="").decision
    assert empty.rule == "text.empty" and empty.escalation is not None
    event = parse_event(make_event(text="where is my order? " * 300))
    long = decide(event, scores(shop), KNOWN, shop, truncated=True).decision
    assert long.rule == "text.too_long" and long.truncated and long.reply is None


def test_unreadable_message_escalates_by_its_own_rule_even_as_a_comment(shop: Brand) -> None:
    sticker = run(shop, text="", unreadable="sticker", platform="whatsapp").decision
    assert sticker.rule == "content.unreadable" and sticker.rules[0].detail == "sticker"
    assert sticker.escalation is not None and "sticker" in sticker.escalation.reason
    # public comments ignore unclear text (fallback), but the policy's `unreadable` escalates
    photo = run(shop, text="", unreadable="photo", kind="comment", platform="facebook").decision
    assert photo.rule == "content.unreadable" and photo.escalation is not None


def test_whatsapp_override_raises_the_bar(shop: Brand) -> None:
    assert run(shop, platform="whatsapp", p=0.75).decision.rule == "intent.low_confidence"
    assert run(shop, platform="instagram", p=0.75).decision.rule == "intent.auto_reply"


def test_the_eval_proposal_counts_exactly_the_escalations_decide_makes(shop: Brand) -> None:
    """eval's "escalations per 1,000 messages" (eval.proposal.escalations) comes from worker.decide's public
    functions: for every intent label, below and above its threshold, a row counts as an escalation exactly
    when decide() escalates the message (routed escalations, the fallback, out of scope and unrouted alike)."""
    import numpy as np

    from eval.proposal import escalations
    from eval.thresholds import Scored

    policy = shop.policy
    labels = list(shop.intent.labels)
    table = {k: v for k, v in policy.thresholds.intent.items() if k != "default"}
    rows, decided = [], []
    for label in labels:
        for p in (0.4, 0.55, 0.65, 0.75, 0.95):
            d = run(shop, intent=label, p=p).decision  # an instagram DM: no override applies
            assert not d.rule.startswith("template."), d.rule  # the intent's own outcome, nothing else in the way
            rows.append((label, p))
            decided.append("escalate" in [a.value for a in d.actions])
    scored = Scored(
        labels=labels,
        y_true=np.array([r[0] for r in rows], dtype=object),
        pred=np.array([r[0] for r in rows], dtype=object),
        conf=np.array([r[1] for r in rows]),
        proba=np.zeros((len(rows), len(labels))),
    )
    counted = escalations(
        "intent", policy, scored, np.zeros(len(rows), dtype=bool), table, policy.thresholds.intent["default"]
    )
    assert counted.tolist() == decided
    assert any(decided) and not all(decided)
    # a confident intent routed to a person is an escalation (not "answered automatically")
    assert ("human_agent", 0.95) in [r for r, esc in zip(rows, decided, strict=True) if esc]


def test_the_top_intent_is_the_first_of_equal_scores() -> None:
    from worker.decide import _scores_top

    assert _scores_top({"a": 0.1, "b": 0.45, "c": 0.45}) == ("b", 0.45)
    assert _scores_top({"x": 0.2}) == ("x", 0.2)
