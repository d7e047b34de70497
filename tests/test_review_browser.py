"""The review app in a real headless Chromium (Debian's ``chromium``, driven by Playwright for Python)
against ``replyguard serve`` as a real process: sign in, filter, claim with the keyboard, reply with a
template, hide a comment, read the audit trail, see a new escalation arrive without reloading.

Set REPLYGUARD_SCREENSHOTS=DIR to save screenshots of the queue and an item there (docs/review-queue.png
in the README is made this way).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.review_env import PASSWORD, ReviewEnv, review, review_env  # noqa: F401  (fixtures)
from worker.settings import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium; CI installs it)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 800}, locale="en-GB")
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def sign_in(page, review: ReviewEnv, name: str) -> None:
    page.goto(review.base + "/review")
    assert "/login" in page.url  # signed out: the queue sends you to the form
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/review$"))


def rows(page) -> list[str]:
    return page.eval_on_selector_all("#rows tr[data-key]", "els => els.map(e => e.dataset.key)")


def shoot(page, name: str) -> None:
    target = os.environ.get("REPLYGUARD_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / name))


def test_moderator_filters_claims_with_the_keyboard_hides_and_reads_the_audit_trail(page, review: ReviewEnv) -> None:
    page.goto(review.base + "/login")
    page.fill("input[name=username]", "nina")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert "Wrong user name or password" in page.inner_text(".error")

    # a moderator made with the command line (password on stdin) signs in
    made = subprocess.run(
        [sys.executable, "-m", "worker.cli", "users", "add", "nina", "--brand", "demo-shop", "--role", "moderator"],
        input=PASSWORD + "\n",
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "REDIS_URL": review.url, **review.env},
    )
    assert made.returncode == 0, made.stderr
    sign_in(page, review, "nina")
    text = page.inner_text("#rows")
    assert "subhuman" in text and "KM-555123" in text  # the demo's hate comment and VIP message
    assert page.inner_text("#role-counts").count("moderator") == 1
    shoot(page, "queue.png")

    # filter: the label menu reloads the page with ?label=hate
    page.select_option("select[name=label]", "hate")
    page.wait_for_url(re.compile(r"label=hate"))
    assert rows(page) == ["demo-shop/m29"]
    page.click("a.clear")
    page.wait_for_url(re.compile(r"/review$"))

    # keyboard: j moves down, k up, c claims the current row, Enter opens it
    rows_before = rows(page)
    first, second = rows_before[:2]
    assert page.get_attribute("tr.current", "data-key") == first
    page.keyboard.press("j")
    assert page.get_attribute("tr.current", "data-key") == second
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert page.get_attribute("tr.current", "data-key") == second
    page.keyboard.press("c")
    page.wait_for_selector(f'tr[data-key="{second}"] .claim-badge')
    assert page.inner_text(f'tr[data-key="{second}"] .claim-badge') == "nina"
    brand, mid = second.split("/")
    assert review.client.get(review.store.keys.claim(brand, mid)) == b"nina"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/review/items/{brand}/{mid}$"))
    assert "claimed by nina" in page.inner_text("#claim-state")
    # j / k on an item walk the queue it was opened from
    third = rows_before[2]
    page.keyboard.press("j")
    page.wait_for_url(re.compile(rf"/review/items/{third}$"))
    page.keyboard.press("k")
    page.wait_for_url(re.compile(rf"/review/items/{brand}/{mid}$"))

    # ? shows the shortcuts; Escape closes them
    page.keyboard.press("?")
    assert page.is_visible("#help")
    page.keyboard.press("Escape")
    assert page.is_hidden("#help")

    # hide the offensive comment with h on its page; the audit trail shows it
    page.goto(review.base + "/review/items/demo-shop/m30")
    assert page.is_hidden("#hidden-badge") if page.query_selector("#hidden-badge") else True
    page.keyboard.press("h")
    page.wait_for_selector("#hidden-badge")
    hides = [p for p in review.outbox() if p["message_id"] == "m30" and p.get("by") == "nina"]
    assert [p["type"] for p in hides] == ["hide"]
    trail = page.inner_text("#audit")
    assert "hide by nina" in trail and '"hidden": true' in trail and "outbox: hide" in trail


def test_agent_replies_with_a_template_after_a_preview(page, review: ReviewEnv) -> None:
    from playwright.sync_api import expect

    sign_in(page, review, "tom")
    page.click('tr[data-key="demo-shop/m24"] a.open')
    page.wait_for_url(re.compile(r"/review/items/demo-shop/m24$"))
    assert "vip" in page.inner_text(".side-col") and "Scores vs thresholds" in page.inner_text(".side-col")
    page.keyboard.press("c")
    page.wait_for_selector("text=claimed by tom")
    page.keyboard.press("r")
    assert page.evaluate("document.activeElement.id") == "template"
    page.select_option("#template", "order_status.en")
    page.wait_for_selector("#preview:not([hidden])")
    preview = page.inner_text("#preview")
    assert "KM-555123" in preview and "Charlotte" in preview
    order = page.locator("#variables input[name=order_id]")
    order.fill("KM-777777")
    expect(page.locator("#preview")).to_contain_text("KM-777777")  # (CSP forbids wait_for_function's eval)
    shoot(page, "item.png")
    page.click("#send-template")
    page.wait_for_selector("#status.status-resolved")
    sent = [p for p in review.outbox() if p["message_id"] == "m24" and p.get("by") == "tom"]
    assert len(sent) == 1 and "KM-777777" in sent[0]["text"] and sent[0]["templates"] == ["order_status.en@3"]
    assert "reply_template by tom" in page.inner_text("#audit")


def test_a_new_escalation_appears_in_the_open_queue_without_reloading(page, review: ReviewEnv) -> None:
    sign_in(page, review, "mia")
    page.evaluate("window.__marker = 'same page'")
    review.decide(
        [
            {
                "id": "live-1",
                "brand": "demo-shop",
                "platform": "instagram",
                "kind": "dm",
                "conversation_id": "c-live",
                "author": {"id": "u-live", "name": "Rin", "tags": ["vip"]},
                "text": "live update check: my parcel is late",
                "created_at": "2026-11-27T10:00:00+09:00",
            }
        ]
    )
    page.wait_for_selector('tr[data-key="demo-shop/live-1"]', timeout=20_000)
    assert page.evaluate("window.__marker") == "same page"  # no reload happened
    assert "live update check" in page.inner_text('tr[data-key="demo-shop/live-1"]')
