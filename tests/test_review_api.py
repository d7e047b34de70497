"""The review app's JSON API and sign-in, against ``replyguard serve`` as a real process.

Every action and every permission: no session, no CSRF token, another brand's item, a disabled
user, a role that may not moderate, two people claiming at once.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading

import httpx

from tests.review_env import PASSWORD, ReviewEnv, review, review_env  # noqa: F401  (fixtures)
from worker.audit import AuditLog
from worker.settings import REPO_ROOT

HATE = "demo-shop/m29"  # x comment, hidden + escalated to moderator
OFFENSIVE = "demo-shop/m30"  # facebook comment, escalated (not hidden)
VIP = "demo-shop/m24"  # instagram DM, VIP → vip_care
AGENT = "demo-shop/m21"  # instagram DM asking for a person → tier1
SPAM = "demo-shop/m25"  # youtube comment hidden as spam (auto-actioned)


def queue_keys(session, **filters) -> list[str]:
    answer = session.get("/api/review/queue", params=filters)
    assert answer.status_code == 200, answer.text
    return [f"{i['brand']}/{i['message_id']}" for i in answer.json()["items"]]


# -- access -------------------------------------------------------------------------------


def test_signed_out_requests_are_redirected_or_refused(review: ReviewEnv) -> None:
    http = httpx.Client(base_url=review.base)
    page = http.get("/review/items/demo-shop/m29")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Freview%2Fitems%2Fdemo-shop%2Fm29"
    assert http.get("/review").status_code == 303
    assert http.get("/api/review/queue").status_code == 401
    assert http.get(f"/api/review/items/{HATE}").status_code == 401
    assert http.post(f"/api/review/items/{HATE}/claim").status_code == 401
    forged = httpx.get(review.base + "/api/review/queue", headers={"Cookie": "rg_session=made-up.0123"})
    assert forged.status_code == 401
    assert review.client.get(review.store.keys.claim("demo-shop", "m29")) is None


def test_login_sets_a_signed_httponly_samesite_cookie_and_logout_ends_the_session(review: ReviewEnv) -> None:
    http = httpx.Client(base_url=review.base)
    form = http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    answer = http.post(
        "/login", data={"username": "mia", "password": PASSWORD, "csrf_token": token, "next": "https://evil.example/"}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/review"  # never off-site
    cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith("rg_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert re.fullmatch(r"[\w-]+\.[0-9a-f]{64}", value)
    assert value.split(".")[0].encode() not in b"".join(review.client.keys("rg:session:*"))  # only its hash is stored
    page = http.get("/review")
    assert page.status_code == 200 and "mia" in page.text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
    tampered = value[:-1] + ("0" if value[-1] != "0" else "1")
    assert httpx.get(review.base + "/api/review/queue", headers={"Cookie": f"rg_session={tampered}"}).status_code == 401
    assert http.post("/logout", data={}).status_code == 403  # logout is a state change too
    assert http.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert httpx.get(review.base + "/api/review/queue", headers={"Cookie": f"rg_session={value}"}).status_code == 401


def test_login_needs_its_csrf_token_and_the_right_password(review: ReviewEnv) -> None:
    http = httpx.Client(base_url=review.base)
    assert http.post("/login", data={"username": "mia", "password": PASSWORD}).status_code == 403
    form = http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    wrong = http.post("/login", data={"username": "mia", "password": "nope-nope", "csrf_token": token})
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    assert "rg_session" not in wrong.headers.get("set-cookie", "")


def test_login_attempts_are_rate_limited(review: ReviewEnv) -> None:
    http = httpx.Client(base_url=review.base)

    def attempt(password: str) -> httpx.Response:
        token = re.search(r'name="csrf_token" value="([^"]+)"', http.get("/login").text).group(1)
        return http.post("/login", data={"username": "tom", "password": password, "csrf_token": token})

    assert [attempt("guess-%d" % i).status_code for i in range(5)] == [401] * 5
    blocked = attempt(PASSWORD)  # even the right password, until the window ends
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    review.client.delete(*review.client.keys("rg:login:fail:*"))
    assert attempt(PASSWORD).status_code == 303


def test_state_changes_without_the_csrf_token_are_refused(review: ReviewEnv) -> None:
    mia = review.login("mia")
    for action in ("claim", "hide", "resolve", "send"):
        answer = mia.post(f"/api/review/items/{HATE}/{action}", {"text": "hi"}, csrf=False)
        assert answer.status_code == 403, action
    wrong = mia.http.post(f"/api/review/items/{HATE}/claim", headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    assert mia.post("/api/review/bulk", {"action": "resolve", "items": [HATE]}, csrf=False).status_code == 403
    assert HATE in queue_keys(mia) and review.client.get(review.store.keys.claim("demo-shop", "m29")) is None


def test_a_user_never_sees_another_brands_messages(review: ReviewEnv) -> None:
    ola = review.login("ola")  # other-shop only
    keys = queue_keys(ola)
    assert keys and all(k.startswith("other-shop/") for k in keys)
    assert queue_keys(ola, brand="demo-shop") == []
    assert ola.get(f"/api/review/items/{HATE}").status_code == 404
    assert ola.get("/review/items/demo-shop/m29").status_code == 404
    assert ola.get("/api/review/templates/demo-shop").status_code == 404
    for action in ("claim", "hide", "resolve", "labels", "route", "reply"):
        assert ola.act(HATE, action, {"intent": "returns", "role": "tier2"}).status_code == 404, action
    bulk = ola.post("/api/review/bulk", {"action": "resolve", "items": [HATE, "other-shop/m29"]}).json()
    assert [r["ok"] for r in bulk["results"]] == [False, True] and bulk["results"][0]["status"] == 404
    assert HATE in queue_keys(review.login("mia"))  # untouched
    assert "demo-shop" not in ola.get("/review/auto").text.replace("other-shop", "")
    max_ = review.login("max")  # brand '*'
    assert {k.split("/")[0] for k in queue_keys(max_)} == {"demo-shop", "other-shop"}


def test_a_disabled_user_is_signed_out_at_once_and_cannot_sign_in(review: ReviewEnv) -> None:
    tom = review.login("tom")
    assert tom.get("/api/review/queue").status_code == 200
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "users", "disable", "tom"],
        cwd=REPO_ROOT,
        env={**_env(review)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert tom.get("/api/review/queue").status_code == 401
    assert tom.act(AGENT, "claim").status_code == 401
    http = httpx.Client(base_url=review.base)
    token = re.search(r'name="csrf_token" value="([^"]+)"', http.get("/login").text).group(1)
    assert http.post("/login", data={"username": "tom", "password": PASSWORD, "csrf_token": token}).status_code == 401


# -- claiming -----------------------------------------------------------------------------------


def test_two_people_claiming_at_once_one_wins_and_the_other_is_locked_out(review: ReviewEnv) -> None:
    for attempt in range(3):
        review.client.delete(review.store.keys.claim("demo-shop", "m24"))
        mia, max_ = review.login("mia"), review.login("max")
        barrier = threading.Barrier(2)
        results: dict[str, httpx.Response] = {}

        def claim(name: str, session) -> None:
            barrier.wait()
            results[name] = session.act(VIP, "claim")

        threads = [threading.Thread(target=claim, args=(n, s)) for n, s in (("mia", mia), ("max", max_))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results.values())
        assert codes == [200, 409], {n: r.text for n, r in results.items()}
        winner = next(n for n, r in results.items() if r.status_code == 200)
        loser = next(n for n, r in results.items() if r.status_code == 409)
        assert results[loser].json()["claimed_by"] == winner
        sessions = {"mia": mia, "max": max_}
        item = sessions[loser].get(f"/api/review/items/{VIP}").json()
        assert item["claimed_by"] == winner
        # the loser cannot act on it while it is held
        refused = sessions[loser].act(VIP, "send", {"text": "Hello from the other person"})
        assert refused.status_code == 409 and refused.json()["claimed_by"] == winner
        assert not [p for p in review.outbox() if p.get("by") == loser]
        if winner == "mia":
            break
    # a non-holder (not a manager) cannot release it; the holder can, then others may claim
    tom = review.login("tom")
    review.client.delete(review.store.keys.claim("demo-shop", "m24"))
    assert mia.act(VIP, "claim").status_code == 200
    assert tom.act(VIP, "release").status_code == 409
    assert tom.act(VIP, "claim").status_code == 409
    assert mia.act(VIP, "release").json() == {"ok": True, "claimed_by": None}
    assert tom.act(VIP, "claim").json()["claimed_by"] == "tom"
    assert max_.act(VIP, "release").status_code == 200  # a manager can take a claim away


# -- replying ---------------------------------------------------------------------------------


def test_reply_with_an_approved_template_previews_then_goes_through_the_outbox(review: ReviewEnv) -> None:
    tom = review.login("tom")
    templates = tom.get("/api/review/templates/demo-shop").json()["templates"]
    assert {t["id"] for t in templates} >= {"order_status.en", "returns.en"}
    assert all("draft" not in t["id"] for t in templates)  # only approved ones
    preview = tom.act(VIP, "preview", {"template": "order_status.en"}).json()
    assert preview["missing"] == [] and "KM-555123" in preview["text"] and "Charlotte" in preview["text"]
    assert tom.act(VIP, "preview", {"template": "order_status.en.v4-draft"}).status_code == 422
    assert tom.act(VIP, "preview", {"template": "order_status.en", "variables": {"evil": "x"}}).status_code == 422
    changed = tom.act(VIP, "preview", {"template": "order_status.en", "variables": {"order_id": "KM-999999"}}).json()
    assert "KM-999999" in changed["text"]

    sent = tom.act(VIP, "reply", {"template": "order_status.en"})
    assert sent.status_code == 200 and sent.json()["resolved"] is True
    reply = [p for p in review.outbox() if p["message_id"] == "m24"]
    assert len(reply) == 1 and reply[0]["type"] == "reply" and reply[0]["text"] == preview["text"]
    assert reply[0]["templates"] == ["order_status.en@3"] and reply[0]["human_written"] is False
    assert reply[0]["by"] == "tom" and reply[0]["visibility"] == "private" and reply[0]["platform"] == "instagram"
    assert VIP not in queue_keys(tom)
    history = review.store.history("demo-shop", "c-vip")
    assert history[-1]["role"] == "brand" and history[-1]["text"] == preview["text"]


def test_a_template_with_an_unfilled_variable_cannot_be_sent(review: ReviewEnv) -> None:
    tom = review.login("tom")
    # m21 names no order number: order_status.en needs {order_id}
    preview = tom.act(AGENT, "preview", {"template": "order_status.en"}).json()
    assert preview["text"] is None and preview["missing"] == ["order_id"]
    refused = tom.act(AGENT, "reply", {"template": "order_status.en"})
    assert refused.status_code == 422 and refused.json()["missing"] == ["order_id"]
    assert not [p for p in review.outbox() if p["message_id"] == "m21" and p.get("by")]
    ok = tom.act(AGENT, "reply", {"template": "order_status.en", "variables": {"order_id": "KM-123456"}})
    assert ok.status_code == 200 and "KM-123456" in ok.json()["text"]


def test_edit_and_send_is_recorded_as_human_written_and_refuses_placeholders(review: ReviewEnv) -> None:
    tom = review.login("tom")
    refused = tom.act(AGENT, "send", {"text": "Hi {first_name}, a person will call you"})
    assert refused.status_code == 422 and refused.json()["placeholders"] == ["{first_name}"]
    assert tom.act(AGENT, "send", {"text": "   "}).status_code == 422
    assert tom.act(AGENT, "send", {"text": "bad \u0000 byte"}).status_code == 422
    text = "Hi Lucas, I'm Tom from Komorebi Store. How can I help? 担当のトムです。"
    sent = tom.act(AGENT, "send", {"text": text, "resolve": False})
    assert sent.status_code == 200 and sent.json()["resolved"] is False
    out = [p for p in review.outbox() if p["message_id"] == "m21" and p.get("by") == "tom"]
    assert len(out) == 1 and out[0]["text"] == text and out[0]["human_written"] is True and out[0]["templates"] == []
    assert AGENT in queue_keys(tom)  # resolve: false keeps it open
    bad = tom.http.post(
        f"/api/review/items/{AGENT}/send",
        content=b"{not json",
        headers={"X-CSRF-Token": tom.csrf, "Content-Type": "application/json"},
    )
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]


# -- moderation ---------------------------------------------------------------------------------


def test_hide_and_unhide_a_comment_go_through_the_outbox(review: ReviewEnv) -> None:
    mia = review.login("mia")
    assert mia.get(f"/api/review/items/{OFFENSIVE}").json()["hidden"] is False
    assert mia.act(OFFENSIVE, "hide").json() == {"ok": True, "hidden": True, "changed": True}
    assert mia.get(f"/api/review/items/{OFFENSIVE}").json()["hidden"] is True
    assert mia.act(OFFENSIVE, "hide").json()["changed"] is False  # no second outbox entry
    assert mia.act(OFFENSIVE, "unhide").json()["hidden"] is False
    mine = [(p["type"], p["by"]) for p in review.outbox() if p["message_id"] == "m30"]
    assert mine == [("hide", "mia"), ("unhide", "mia")]
    assert mia.act(VIP, "hide").status_code == 422  # a DM cannot be hidden
    tom = review.login("tom")
    refused = tom.act(OFFENSIVE, "hide")
    assert refused.status_code == 403 and "moderator" in refused.json()["error"]
    assert tom.act(HATE, "block").status_code == 403


def test_not_spam_and_not_abusive_record_corrections_unhide_and_resolve(review: ReviewEnv) -> None:
    mia = review.login("mia")
    answer = mia.act(SPAM, "not-spam").json()
    assert answer["unhidden"] is True and answer["resolved"] is False  # auto-actioned, was not in the queue
    assert [p["type"] for p in review.outbox() if p["message_id"] == "m25" and p.get("by")] == ["unhide"]
    abuse = mia.act(HATE, "not-abusive").json()
    assert abuse["unhidden"] is True and abuse["resolved"] is True
    corrections = review.store.corrections("demo-shop")  # what eval --replay reads
    assert corrections["m25"].spam is False and corrections["m25"].by == "mia"
    assert corrections["m29"].abuse == "neither"
    assert HATE not in queue_keys(mia)


def test_label_corrections_are_stored_for_replay_and_validated(review: ReviewEnv) -> None:
    tom = review.login("tom")
    assert tom.act(AGENT, "labels", {"intent": "returns", "note": "asks about a return"}).status_code == 200
    assert tom.act(AGENT, "labels", {"spam": False}).status_code == 200  # merged with the earlier one
    correction = review.store.corrections("demo-shop")["m21"]
    assert (correction.intent, correction.spam, correction.note) == ("returns", False, "asks about a return")
    assert tom.act(AGENT, "labels", {"intent": "not_a_label"}).status_code == 422
    assert tom.act(AGENT, "labels", {"abuse": "very"}).status_code == 422
    assert tom.act(AGENT, "labels", {}).status_code == 422
    assert AGENT in queue_keys(tom)  # labelling does not close the item


def test_reroute_changes_role_and_priority_in_the_queue(review: ReviewEnv) -> None:
    tom = review.login("tom")
    assert tom.act(AGENT, "route", {"role": "tier2", "priority": "urgent"}).json() == {
        "ok": True,
        "role": "tier2",
        "priority": "urgent",
    }
    items = tom.get("/api/review/queue").json()["items"]
    row = next(i for i in items if f"{i['brand']}/{i['message_id']}" == AGENT)
    assert (row["role"], row["priority"]) == ("tier2", "urgent")
    assert all(i["priority"] == "urgent" for i in items[: items.index(row) + 1])
    assert queue_keys(tom, role="tier2") == [AGENT]
    escalation = review.store.decision("demo-shop", "m21").escalation  # through the store's one path
    assert (escalation.role, escalation.priority) == ("tier2", "urgent") and "re-routed by tom" in escalation.reason
    assert tom.act(AGENT, "route", {"priority": "soon"}).status_code == 422
    assert tom.act(AGENT, "route", {"role": "Bad Role!"}).status_code == 422


def test_a_persons_reply_and_resolution_stop_the_sla_clocks(review: ReviewEnv) -> None:
    tom = review.login("tom")
    item = "demo-shop/m22"  # a recent escalation (review_env.recent_traffic): its clocks are still running
    before = {c["target"]: c["state"] for c in tom.get(f"/api/review/items/{item}").json()["sla"]["clocks"]}
    assert before["first_response"] in ("active", "warning")
    assert (
        tom.act(item, "send", {"text": "担当のトムです。ご用件をお聞かせください。", "resolve": False}).status_code
        == 200
    )
    after = {c["target"]: c["state"] for c in tom.get(f"/api/review/items/{item}").json()["sla"]["clocks"]}
    assert after["first_response"] == "met"
    assert tom.act(item, "resolve").status_code == 200
    closed = {c["target"]: c["state"] for c in tom.get(f"/api/review/items/{item}").json()["sla"]["clocks"]}
    assert closed["resolution"] == "met"


def test_resolve_without_reply_and_reopen_an_auto_actioned_message(review: ReviewEnv) -> None:
    tom = review.login("tom")
    assert tom.act(AGENT, "resolve", {"note": "called them"}).json() == {"ok": True, "resolved": True}
    assert AGENT not in queue_keys(tom)
    assert tom.act(AGENT, "resolve").status_code == 409
    assert tom.get(f"/api/review/items/{AGENT}").json()["resolved_by"] == "tom"
    auto = "demo-shop/m01"  # auto-replied order status
    assert tom.act(auto, "reopen", {"note": "reply looked wrong"}).json()["open"] is True
    reopened = next(i for i in tom.get("/api/review/queue").json()["items"] if i["message_id"] == "m01")
    assert reopened["reason"].startswith("reopened by tom") and reopened["role"] == "tier1"
    assert tom.act(auto, "reopen").status_code == 409


def test_tag_and_block_the_author(review: ReviewEnv) -> None:
    mia = review.login("mia")
    assert mia.act(HATE, "tag", {"tag": "repeat offender"}).json()["tags"] == ["repeat offender"]
    assert mia.act(HATE, "tag", {"tag": "<script>"}).status_code == 422
    assert mia.act(HATE, "block").json() == {"ok": True, "blocked": True, "changed": True}
    author = mia.get(f"/api/review/items/{HATE}").json()["author"]
    assert author["blocked"] is True and author["added_tags"] == ["blocked", "repeat offender"]
    assert [p["type"] for p in review.outbox() if p["message_id"] == "m29" and p.get("by")] == ["block"]
    assert mia.act(HATE, "untag", {"tag": "repeat offender"}).json()["tags"] == ["blocked"]


def test_bulk_actions_report_per_item(review: ReviewEnv) -> None:
    mia, max_ = review.login("mia"), review.login("max")
    assert max_.act("demo-shop/m36", "claim").status_code == 200
    result = mia.post(
        "/api/review/bulk", {"action": "resolve", "items": ["demo-shop/m39", "demo-shop/m36", "demo-shop/nope"]}
    ).json()
    assert [(r["ok"], r.get("status")) for r in result["results"]] == [(True, None), (False, 409), (False, 404)]
    assert "demo-shop/m39" not in queue_keys(mia) and "demo-shop/m36" in queue_keys(mia)
    assert mia.post("/api/review/bulk", {"action": "explode", "items": [HATE]}).status_code == 422
    assert mia.post("/api/review/bulk", {"action": "resolve", "items": []}).status_code == 422


# -- queue, views, audit --------------------------------------------------------------------


def test_queue_filters_and_counts(review: ReviewEnv) -> None:
    mia = review.login("mia")
    everything = mia.get("/api/review/queue").json()
    priorities = [i["priority"] for i in everything["items"]]
    assert priorities == sorted(priorities, key=["urgent", "high", "normal", "low"].index)
    assert everything["counts"]["role"]["moderator"] == 2
    # the VIP message, unanswered past its SLA target, was re-routed to a manager by itself
    assert queue_keys(mia, role="manager") == [VIP] and VIP in queue_keys(mia, sla="breached")
    assert "demo-shop/m22" in queue_keys(mia, sla="active") and "demo-shop/m22" not in queue_keys(mia, sla="breached")
    assert queue_keys(mia, platform="x") == [HATE]
    assert queue_keys(mia, label="hate") == [HATE]
    assert set(queue_keys(mia, role="moderator")) == {HATE, OFFENSIVE}
    assert queue_keys(mia, rule="vip") == [VIP]
    assert set(queue_keys(mia, kind="comment")) == {HATE, OFFENSIVE}
    assert queue_keys(mia, band="ge90", platform="x") == [HATE]  # hate 0.9x
    assert queue_keys(mia, age="24h")  # the demo's messages are days old
    mia.act(HATE, "claim")
    assert queue_keys(mia, claimed="me") == [HATE]
    assert HATE not in queue_keys(mia, claimed="none")
    bad = mia.get("/api/review/queue", params={"priority": "asap"})
    assert bad.status_code == 400 and "priority" in bad.json()["error"]
    page = mia.get("/review", params={"label": "hate"})
    assert page.status_code == 200 and "subhuman" in page.text and "KM-555123" not in page.text


def test_new_escalations_reach_the_rows_endpoint_the_page_polls(review: ReviewEnv) -> None:
    mia = review.login("mia")
    before = mia.get("/review/rows")
    assert before.status_code == 200 and "fresh-vip-msg" not in before.text
    review.decide([{**review_env_event(), "id": "fresh-vip", "text": "fresh-vip-msg my parcel is late"}])
    after = mia.get("/review/rows")
    assert (
        "fresh-vip-msg" in after.text
        and int(after.headers["x-queue-total"]) == int(before.headers["x-queue-total"]) + 1
    )


def review_env_event() -> dict:
    return {
        "id": "x",
        "brand": "demo-shop",
        "platform": "instagram",
        "kind": "dm",
        "conversation_id": "c-fresh",
        "author": {"id": "u-fresh", "name": "Rin", "tags": ["vip"]},
        "text": "hi",
        "created_at": "2026-11-27T10:00:00+09:00",
    }


def test_auto_actioned_and_rejected_views(review: ReviewEnv) -> None:
    review.store.reject(
        {"brand": "demo-shop", "id": "bad-1", "platform": "fax"}, "platform: Input should be …", "webhook meta"
    )
    review.store.reject({"brand": "other-shop", "id": "bad-2"}, "secret other brand reason", "webhook meta")
    mia = review.login("mia")
    auto = mia.get("/review/auto")
    assert auto.status_code == 200 and "check my channel" in auto.text and "Undo hide" in auto.text
    rejected = mia.get("/review/rejected")
    assert "bad-1" in rejected.text and "secret other brand reason" not in rejected.text


def test_every_action_is_in_the_append_only_audit_trail_and_the_export(review: ReviewEnv) -> None:
    mia = review.login("mia")
    mia.act(OFFENSIVE, "claim")
    mia.act(OFFENSIVE, "hide")
    mia.act(OFFENSIVE, "labels", {"abuse": "offensive"})
    mia.act(OFFENSIVE, "resolve")
    trail = mia.get(f"/api/review/items/{OFFENSIVE}").json()["audit"]
    assert [a["action"] for a in trail] == ["claim", "hide", "correct_labels", "resolve"]
    hide = trail[1]
    assert hide["user"] == "mia" and hide["role"] == "moderator" and hide["before"] == {"hidden": False}
    assert hide["after"] == {"hidden": True} and hide["outbox"] == ["hide"] and hide["at"]
    page = mia.get("/review/items/demo-shop/m30").text
    assert "Audit trail" in page and "correct_labels" in page
    # another brand's trail is separate
    review.login("ola").act("other-shop/m30", "claim")
    assert len(list(AuditLog(review.client).export("other-shop"))) == 1

    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "audit", "export", "--brand", "demo-shop"],
        cwd=REPO_ROOT,
        env=_env(review),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["action"] for r in rows] == ["claim", "hide", "correct_labels", "resolve"]
    assert rows[1]["before"] == {"hidden": False} and "platform_answer" in rows[1]
    later = subprocess.run(
        [sys.executable, "-m", "worker.cli", "audit", "export", "--brand", "demo-shop", "--since", "2999-01-01"],
        cwd=REPO_ROOT,
        env=_env(review),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert later.returncode == 0 and later.stdout == ""
    bad = subprocess.run(
        [sys.executable, "-m", "worker.cli", "audit", "export", "--brand", "demo-shop", "--since", "yesterday"],
        cwd=REPO_ROOT,
        env=_env(review),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--since" in bad.stderr


def _env(review: ReviewEnv) -> dict[str, str]:
    import os

    return {**os.environ, "REDIS_URL": review.url, **review.env}


def test_the_item_shows_scores_against_thresholds_rules_versions_author_and_reply_window(review: ReviewEnv) -> None:
    mia = review.login("mia")
    hate = mia.get(f"/api/review/items/{HATE}").json()
    scores = {(s["task"], s["label"]): s for s in hate["scores"]}
    assert scores[("abuse", "hate")]["threshold"] == 0.6 and scores[("abuse", "hate")]["over"] is True
    assert scores[("spam", "spam")]["threshold"] == 0.7  # the policy's public_comments override applies
    assert scores[("intent", "human_agent")]["threshold"] == 0.5
    assert hate["decision"]["rule"] == "moderation.hate"
    assert "moderation.hate" in [r["name"] for r in hate["decision"]["rules"]]
    assert hate["decision"]["policy_version"] and set(hate["decision"]["model_versions"]) == {"spam", "abuse", "intent"}
    assert hate["hidden"] is True and hate["reply_window"] is None  # X comments have no reply window
    opted = mia.get("/api/review/items/demo-shop/m33").json()  # wrote STOP earlier, then asked a question
    assert opted["author"]["opted_out"] is True
    assert "m32" in [e["message_id"] for e in opted["author"]["earlier"]]
    assert opted["reply_window"]["hours"] == 24 and opted["reply_window"]["seconds_left"] < 0  # long closed
    assert opted["thread"] and opted["thread"][0]["role"] == "customer"
    page = mia.get("/review/items/demo-shop/m29").text
    assert "Scores vs thresholds" in page and "moderation.hate" in page and "0.60" in page
    assert "abuse-default@" in page  # model versions


def test_a_message_id_holding_slashes_opens_and_acts(review: ReviewEnv) -> None:
    wamid = "wamid.HBgL/MTY1+MDM=/claim"  # WhatsApp ids are base64: "/" and "+" occur; "/claim" too
    review.decide(
        [
            {
                "id": wamid,
                "brand": "demo-shop",
                "platform": "whatsapp",
                "kind": "dm",
                "conversation_id": "c-slash",
                "author": {"id": "u-slash", "name": "Sol"},
                "text": "agent",
                "created_at": "2026-11-24T14:05:00+09:00",
            }
        ]
    )
    mia = review.login("mia")
    assert f"demo-shop/{wamid}" in queue_keys(mia)
    item = mia.get(f"/api/review/items/demo-shop/{wamid}")
    assert item.status_code == 200 and item.json()["decision"]["message_id"] == wamid
    encoded = wamid.replace("/", "%2F").replace("+", "%2B")
    assert mia.get(f"/api/review/items/demo-shop/{encoded}").json()["decision"]["message_id"] == wamid
    assert mia.act(f"demo-shop/{wamid}", "claim").status_code == 200
    assert review.client.get(review.store.keys.claim("demo-shop", wamid)) is not None
    page = mia.get(f"/review/items/demo-shop/{encoded}")
    assert page.status_code == 200 and "Sol" in page.text


def test_the_seeded_traffic_is_recent_on_its_weekdays_and_hours_and_skips_holidays() -> None:
    from datetime import date, datetime, timedelta, timezone

    from tests.review_env import DEMO, RUNNING, recent_traffic

    tokyo = timezone(timedelta(hours=9))
    holidays = [date(2026, 12, 31), date(2027, 1, 1), date(2027, 1, 2), date(2027, 1, 3)]
    for now, oldest in (
        (datetime(2026, 11, 30, 10, 30, tzinfo=tokyo), 8),  # the week of the demo itself
        (datetime(2026, 12, 16, 3, 0, tzinfo=tokyo), 13),
        (datetime(2027, 1, 6, 12, 0, tzinfo=tokyo), 20),  # the week before holds the new-year holidays
    ):
        events = recent_traffic(DEMO, holidays, now)
        moved = {e["id"]: datetime.fromisoformat(e["created_at"]) for e in events}
        assert moved[RUNNING] == now.replace(microsecond=0)
        for before, after in zip(DEMO, events, strict=True):
            if before["id"] == RUNNING:
                continue
            was = datetime.fromisoformat(before["created_at"])
            gap = moved[before["id"]] - was
            assert gap.days % 7 == 0 and gap.seconds == 0 and {**after, "created_at": 0} == {**before, "created_at": 0}
            assert now - timedelta(days=oldest) <= moved[before["id"]] <= now
            assert moved[before["id"]].astimezone(tokyo).date() not in holidays
