"""The KPI dashboard on ``replyguard serve`` (a real process): access per brand, the CSV export, and the page
in a real headless Chromium, with a screenshot (REPLYGUARD_SCREENSHOTS=DIR keeps it; docs/dashboard.png)."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import httpx
import pytest

from tests.review_env import PASSWORD, ReviewEnv, review, review_env  # noqa: F401  (fixtures)
from worker import kpi
from worker.sla.tracker import SlaTracker

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIP, HATE = "demo-shop/m24", "demo-shop/m29"


def worked(review: ReviewEnv) -> None:
    """People work a little of the queue: a template reply to the VIP, the hate comment resolved."""
    tom, mia = review.login("tom"), review.login("mia")
    assert tom.act(VIP, "reply", {"template": "order_status.en"}).status_code == 200
    assert mia.act(HATE, "resolve", {"note": "hidden, fine"}).status_code == 200


def test_dashboard_access_is_per_brand(review: ReviewEnv) -> None:
    anonymous = httpx.Client(base_url=review.base)
    for path in ("/dashboard", "/dashboard/demo-shop", "/dashboard/demo-shop/export.csv"):
        answer = anonymous.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next="), path
    ola = review.login("ola")  # other-shop only
    assert ola.get("/dashboard/demo-shop").status_code == 404
    assert ola.get("/dashboard/demo-shop/export.csv").status_code == 404
    assert ola.get("/dashboard/no-such-brand").status_code == 404
    assert ola.get("/dashboard").headers["location"] == "/dashboard/other-shop"
    mia = review.login("mia")
    assert mia.get("/dashboard/demo-shop?days=5").status_code == 400
    page = mia.get("/dashboard/demo-shop?days=7")
    assert page.status_code == 200 and page.text.count('<svg class="chart"') == 8
    assert "other-shop" not in page.text
    assert "other-shop" in review.login("max").get("/dashboard/demo-shop").text  # all brands: a brand switcher


def test_csv_export_has_the_kpis_computed_from_the_records(review: ReviewEnv) -> None:
    worked(review)
    answer = review.login("mia").get("/dashboard/demo-shop/export.csv?days=30")  # the seeded traffic: ≤ ~3 weeks old
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert 'filename="replyguard-kpis-demo-shop-30d.csv"' in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 30 and tuple(rows[0]) == kpi.COLUMNS
    tracker = SlaTracker(review.store, {b: x.policy for b, x in review.brands.items()})
    expected = kpi.load(review.store, tracker, "demo-shop", review.brands["demo-shop"].policy, days=30)
    by_day = {r["day"]: r for r in rows}
    for want in expected:
        got = by_day[want.day.isoformat()]
        for column in ("messages", "auto_resolved", "escalations", "resolved", "agent_replies", "sla_breaches"):
            assert int(got[column]) == getattr(want, column), (want.day, column)
    assert sum(int(r["messages"]) for r in rows) == len([d for d in review.store.recent("demo-shop", 1000)])
    assert sum(int(r["agent_replies"]) for r in rows) == 1  # tom's reply, from the audit trail
    assert sum(int(r["resolved"]) for r in rows) >= 2


@pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="browser tests need Debian's chromium at /usr/bin/chromium (CI installs it)",
)
def test_dashboard_in_a_real_browser(review: ReviewEnv, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    worked(review)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            context = browser.new_context(
                viewport={"width": 1366, "height": 900}, locale="en-GB", accept_downloads=True
            )
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.goto(review.base + "/dashboard")
            assert "/login" in page.url
            page.fill("input[name=username]", "mia")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"/dashboard/demo-shop$"))
            assert page.locator("figure.chart-card svg").count() == 8
            tiles = dict(
                zip(
                    page.locator(".tile-label").all_text_contents(),
                    page.locator(".tile-value").all_text_contents(),
                    strict=True,
                )
            )
            assert list(tiles) == [
                "Avg first response",
                "Resolution rate",
                "Automation rate",
                "Messages per agent",
                "Backlog now",
                "SLA compliance",
            ]
            assert re.fullmatch(r"\d+%", tiles["Automation rate"]) and tiles["Messages per agent"] == "1"
            assert page.locator("#kpi-table tbody tr").count() == 14
            # a chart has real marks: one bar per day with messages
            assert page.locator("figure.chart-card").nth(6).locator("rect").count() >= 1
            page.click(".dash-periods a:has-text('7d')")
            page.wait_for_url(re.compile(r"days=7$"))
            assert page.locator("#kpi-table tbody tr").count() == 7
            with page.expect_download() as download:
                page.click("#csv-export")
            text = Path(download.value.path()).read_text()
            assert text.splitlines()[0].split(",")[:3] == ["day", "messages", "auto_resolved"]
            shots = Path(os.environ.get("REPLYGUARD_SCREENSHOTS") or tmp_path)
            shots.mkdir(parents=True, exist_ok=True)
            page.goto(review.base + "/dashboard/demo-shop")
            page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
            assert (shots / "dashboard.png").stat().st_size > 10_000
        finally:
            browser.close()


def test_charts_escape_text_and_leave_gaps() -> None:
    from worker.web.charts import chart, percent

    svg = chart(
        "<b>rate</b>", ["11-20", "11-21", "11-22", "11-23", "11-24"], [0.5, 0.75, None, 0.25, 1.0], fmt=percent, top=1.0
    )
    assert "<b>" not in svg and "&lt;b&gt;rate&lt;/b&gt;" in svg
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 4  # the missing day splits the line
    assert "100%" in svg and "style=" not in svg  # CSP: presentation attributes only
    bars = chart("messages", ["a", "b"], [3, 0], kind="bar")
    assert bars.count("<rect") == 2 and "no data yet" not in bars
    assert "no data yet" in chart("empty", ["a"], [None])
