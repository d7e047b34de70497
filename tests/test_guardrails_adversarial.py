"""Guardrails against an adversarial model: every attack of eval/adversarial.py (links without a
scheme, look-alike domains, hidden characters in numbers, numbers in words, offers and promises
without digits, insults, the wrong language; EN and JA) is served by a loopback OpenAI-compatible
server and goes through the whole pipeline (ingest, a real RQ worker, the LLM task, the outbox):
none may be sent, and every good rewrite must be."""

from __future__ import annotations

import pytest

from eval.adversarial import CASES, AdversarialLLM, collect, events, summary, write_policies
from worker.brands import load_brands
from worker.canonical import canonical, hidden_characters, mixed_script_words
from worker.guardrails import commitments, domains, language_problem
from worker.ingest import ingest_events
from worker.jobs import install
from worker.pipeline import Pipeline
from worker.queues import make_worker
from worker.settings import REPO_ROOT, Settings


@pytest.fixture()
def adversary():
    with AdversarialLLM() as server:
        yield server


def test_no_attack_gets_through_and_every_good_rewrite_is_kept(client, redis_url, tmp_path, adversary) -> None:
    policies = write_policies(tmp_path / "policies", adversary.base_url, REPO_ROOT / "policies")
    settings = Settings(redis_url=redis_url, home=tmp_path / "home", policies_dir=policies)
    install(Pipeline(load_brands(settings)), settings)
    report = ingest_events(events(), client, settings, batch_wait=0.01)
    assert not report.invalid
    make_worker(client, settings, simple=True, queues="all").work(burst=True)
    results = collect(client, settings)
    s = summary(results)
    assert s["attacks"] >= 40 and s["attacks_en"] >= 20 and s["attacks_ja"] >= 10
    assert len({c.category for c in CASES if c.kind == "attack"}) == 6
    assert s["not_planned"] == [] and adversary.misses == []
    assert s["through"] == [], {r.case.id: r.draft for r in results if r.case.id in s["through"]}
    assert s["refused_good"] == {}
    for r in results:
        if r.case.kind == "attack":  # refused by a guardrail (not by a timeout), and the template went out
            assert r.outcome == "fallback" and r.reason.startswith("guardrail:"), (r.case.id, r.reason)
            assert r.sent is not None and r.sent != r.draft


def test_canonical_form() -> None:
    assert canonical("ships in two business days") == "ships in 2 business days"
    assert canonical("twenty-five") == "25" and canonical("one hundred and five") == "105"
    assert canonical("no one likes the one you ordered") == "no one likes the one you ordered"
    assert (
        canonical("二営業日") == "2営業日" and canonical("千五百円") == "1500円" and canonical("にじゅう日") == "20日"
    )
    assert canonical("一緒に十分ございません") == "一緒に十分ございません"
    assert canonical("\u0663 \uff13 \u2462 \u096a") == "3 3 3 4"
    assert canonical("2\u200b2") == "22" and canonical("\u202e2\u202c") == "2"
    assert canonical("k\u043emorebi") == "komorebi"
    assert hidden_characters("a\u200bb\u2066c") == ["U+200B", "U+2066"]
    assert mixed_script_words("visit k\u043emorebi.example now") == ["k\u043emorebi.example"]
    assert mixed_script_words("Привет, Aiko") == []  # whole Cyrillic words are just Russian


def test_links_are_found_with_or_without_a_scheme() -> None:
    text = (
        "see evil.com, www.bad.example, x[.]io, foo dot net, 10.0.0.1, ｅｖｉｌ．ｊｐ, evil。com and "
        "komorebi.example/orders but not e.g. i.e. or 9:00–18:00 or KM-204815."
    )
    assert domains(text) == {
        "evil.com",
        "www.bad.example",
        "x.io",
        "foo.net",
        "10.0.0.1",
        "evil.jp",
        "komorebi.example",
    }


def test_commitments_need_their_verb_in_the_template() -> None:
    template = "Orders ship within 2 business days and you get an e-mail with tracking."
    assert commitments("We'll ship it within 2 business days.", template) == []
    assert commitments("You'll get an e-mail with tracking.", template) == []
    assert commitments("We will send you a new one.", template) == ["we will send"]
    assert (
        commitments("配送状況はこちらでご確認いただけます。よろしくお願いいたします。", "配送状況はご確認いただけます")
        == []
    )
    assert commitments("特別に手配いたします。", "配送状況はご確認いただけます") == ["手配いたします"]


def test_language_is_identified_on_short_added_sentences(brands) -> None:
    policy = brands["demo-shop"].policy
    template = "Orders ship within 2 business days."
    assert language_problem("Happy to help! " + template, template, "en", policy, None) == ""
    assert "fr" in language_problem(template + " Merci beaucoup pour votre patience.", template, "en", policy, None)
    assert "Japanese" in language_problem("ご注文ありがとうございます。", template, "en", policy, None)
    ja = "ご注文から2営業日以内に発送いたします。"
    assert language_problem("ご連絡ありがとうございます。" + ja, ja, "ja", policy, None) == ""
    assert language_problem(ja + "Thanks so much for waiting, see you soon.", ja, "ja", policy, None)
