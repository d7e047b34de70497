"""One module makes every outcome (worker/decide.py); one script writes a decision's effects.

Structural checks over the source (no other module edits a decision's outcome; no Python
code writes a decision-effect key), and behaviour: a finalisation writes the effects once,
re-reads when the stored decision changed, and every key in Redis is in store.py's table.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from tests.conftest import make_event
from tests.source_trees import parsed
from tests.test_llm import KEY_ENV, ORDER, SECRET, Scripted, llm_env, server, work  # noqa: F401 - fixtures
from worker import drafting, store as store_module
from worker.ingest import ingest_events
from worker.models import Correction
from worker.pipeline import Pipeline
from worker.store import Store

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("worker", "eval", "classifiers")
#: a decision's outcome: only worker/decide.py may set these
OUTCOME_FIELDS = {"actions", "rule", "rules", "escalation", "reply", "template", "templates"}
#: Keys methods naming a key whose writes are a decision's effects (only lua/apply_decision.lua writes them)
EFFECT_KEYS = {
    "decision",
    "decisions",
    "message",
    "review",
    "outbox",
    "optout",
    "history",
    "conversation",
    "stats",
    "llm_pending",
}
WRITES = {
    "set",
    "xadd",
    "zadd",
    "sadd",
    "srem",
    "rpush",
    "lpush",
    "ltrim",
    "hset",
    "hsetnx",
    "hincrby",
    "hincrbyfloat",
    "expire",
    "delete",
}


def _sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), parsed(path)


def outcome_edits(relative: str, tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = [
                t for target in node.targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])
            ]
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for t in targets:
            if isinstance(t, ast.Attribute) and t.attr in OUTCOME_FIELDS:
                found.append(f"{relative}:{node.lineno}: sets .{t.attr}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if (
                node.func.attr in ("append", "extend", "insert", "remove")
                and isinstance(owner, ast.Attribute)
                and owner.attr in OUTCOME_FIELDS
            ):
                found.append(f"{relative}:{node.lineno}: {owner.attr}.{node.func.attr}()")
            if node.func.attr == "model_copy":
                for kw in node.keywords:
                    if kw.arg == "update" and isinstance(kw.value, ast.Dict):
                        keys = {k.value for k in kw.value.keys if isinstance(k, ast.Constant)}
                        if keys & (OUTCOME_FIELDS - {"reply"}):  # LLMRecord has no outcome fields
                            found.append(f"{relative}:{node.lineno}: model_copy(update={sorted(keys)})")
    return found


def test_only_decide_edits_a_decisions_outcome():
    edits = [
        e for relative, tree in _sources() if relative != "worker/decide.py" for e in outcome_edits(relative, tree)
    ]
    assert edits == []


def test_the_outcome_check_sees_an_edit(tmp_path):
    tree = ast.parse("def f(d):\n    d.actions = []\n    d.rules.append(1)\n    d.reply, d.x = None, 1\n")
    assert outcome_edits("x.py", tree) == ["x.py:2: sets .actions", "x.py:4: sets .reply", "x.py:3: rules.append()"]


def _key_named(node: ast.expr, names: dict[str, str]) -> str | None:
    """The Keys method a key argument comes from: ``self.keys.review``, ``k.outbox(b)``, or a local name
    assigned one of those earlier in the same function (``key = self.keys.decision(b, m)``)."""
    named = node.func if isinstance(node, ast.Call) else node
    if isinstance(named, ast.Attribute) and isinstance(named.value, (ast.Attribute, ast.Name)):
        owner = named.value.attr if isinstance(named.value, ast.Attribute) else named.value.id
        if owner in ("keys", "k"):
            return named.attr
    if isinstance(node, ast.Name):
        return names.get(node.id)
    return None


def _effect_writes(relative: str, tree: ast.AST) -> list[str]:
    found = []
    scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for scope in scopes:
        names: dict[str, str] = {}
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                pairs = []
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        pairs.append((target, node.value))
                    elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                        pairs += list(zip(target.elts, node.value.elts, strict=False))
                for target, value in pairs:
                    attr = _key_named(value, {})
                    if isinstance(target, ast.Name) and attr:
                        names[target.id] = attr
        for node in ast.walk(scope):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in WRITES
                and node.args
            ):
                continue
            attr = _key_named(node.args[0], names)
            if attr in EFFECT_KEYS:
                found.append(f"{relative}:{node.lineno}: {node.func.attr}({attr})")
    return sorted(set(found))


def test_the_write_check_sees_writes_through_a_local_name():
    tree = ast.parse(
        "def f(self, pipe, b, m):\n    key, other = self.keys.decision(b, m), 1\n    pipe.set(key, 1)\n"
        "    k = self.keys\n    pipe.zadd(k.review, {})\n    pipe.hset(self.keys.item(b, m), 'x', 1)\n"
    )
    assert _effect_writes("x.py", tree) == ["x.py:3: set(decision)", "x.py:5: zadd(review)"]


#: Writes to those keys allowed outside the script, because they are not a decision's effects (the store.py
#: docstring says why for each). An SLA breach's or a delivery's change to a decision is written by the
#: script (``Store.queue_amendment``), so no Python code sets a decision key or counts a rule or an action.
NOT_DECISION_EFFECTS = {
    "worker/sla/tracker.py: hincrby(stats)",  # the SLA timer's counters of its own events: sla:warning:*, sla:breached:*
    "worker/delivery/youtube.py: hincrby(stats)",  # YouTube API quota spent: youtube:quota_units, youtube:calls:*
    # a person's actions in the review app: their outbox entries (reply, hide, block) and their reply in the
    # conversation history, and putting an item back on (or moving it in) the review queue
    "worker/store.py: xadd(outbox)",
    "worker/store.py: rpush(history)",
    "worker/store.py: ltrim(history)",
    "worker/store.py: expire(history)",
    "worker/review_actions.py: zadd(review)",
    # forgetting a person and the retention sweep delete a decision's effects (they never write one)
    "worker/privacy/archive.py: srem(message)",
    "worker/privacy/forget.py: delete(conversation)",
    "worker/privacy/forget.py: delete(decision)",
    "worker/privacy/forget.py: delete(message)",
    "worker/privacy/forget.py: srem(message)",
    "worker/privacy/forget.py: srem(optout)",
}


def test_no_python_code_writes_a_decisions_effects():
    """The Python MULTI copy is gone: decision, outbox, review, history, counters ... are written by the script only."""
    writes = [w for relative, tree in _sources() for w in _effect_writes(relative, tree)]
    assert {re.sub(r":\d+:", ":", w) for w in writes} <= NOT_DECISION_EFFECTS, writes
    lua = sorted(p.name for p in (ROOT / "worker" / "lua").glob("*.lua"))
    # delivery_begin.lua writes only an outbound action's idempotency record ({p}:delivery:…), no decision effect;
    # order.lua only a conversation's order hash and the parked index (and queues a parked job);
    # sla_start.lua only SLA timers, their indexes and events
    # context.lua and after_batch.lua only read
    assert lua == [
        "after_batch.lua",
        "apply_decision.lua",
        "context.lua",
        "delivery_begin.lua",
        "order.lua",
        "sla_start.lua",
    ]
    context_lua = (ROOT / "worker" / "lua" / "context.lua").read_text()
    assert set(re.findall(r"redis\.call\('(\w+)'", context_lua)) == {"EXISTS", "SMISMEMBER", "HMGET", "HGET"}
    after_batch_lua = (ROOT / "worker" / "lua" / "after_batch.lua").read_text()
    assert set(re.findall(r"redis\.call\('(\w+)'", after_batch_lua)) == {"ZRANGEBYSCORE", "ZRANGE", "EXISTS", "ZSCORE"}
    order_lua = (ROOT / "worker" / "lua" / "order.lua").read_text()
    assert "KEYS[4]" not in order_lua and not re.search(r"'(SET|SADD|XADD|RPUSH|HINCRBYFLOAT)'", order_lua)
    sla_lua = (ROOT / "worker" / "lua" / "sla_start.lua").read_text()
    assert not re.search(r"'(RPUSH|HSET|HINCRBY|HINCRBYFLOAT|LPUSH)'", sla_lua)


def _pending_order(client, settings, brands) -> Store:
    store = Store(client, settings.key_prefix)
    Pipeline(brands).process([ORDER], store, schedule_llm=lambda pending: None)
    assert store.decision("demo-shop", "o1").pending
    return store


def test_finalising_twice_applies_the_effects_once(client, llm_env):  # noqa: F811
    settings, brands = llm_env()
    store = _pending_order(client, settings, brands)
    assert client.xlen(store.keys.outbox("demo-shop")) == 0  # the reply waits for the LLM task
    first = store.finalize("demo-shop", "o1", drafting.at_deadline)
    second = store.finalize("demo-shop", "o1", drafting.at_deadline)
    assert first is not None and first.llm.reason == "deadline" and second is None
    assert client.xlen(store.keys.outbox("demo-shop")) == 2  # the reply, and the decision for connectors
    stats = store.stats("demo-shop")
    assert stats["decisions"] == 1 and stats["rule:intent.auto_reply"] == 1 and stats["llm:personalise:fallback"] == 1
    assert client.zcard(store.keys.llm_pending) == 0
    history = store.history("demo-shop", ORDER["conversation_id"])
    assert [h["role"] for h in history] == ["customer", "brand"]


def test_finalising_reads_again_when_the_decision_changed_meanwhile(client, llm_env):  # noqa: F811
    settings, brands = llm_env()
    store = _pending_order(client, settings, brands)
    key = store.keys.decision("demo-shop", "o1")
    calls = []

    def final(pending):
        calls.append(pending.llm.detail)
        if len(calls) == 1:  # someone else rewrites the (still pending) decision before we write
            changed = pending.model_copy(deep=True)
            changed.llm.detail = "touched"
            client.set(key, changed.to_json())
        return drafting.at_deadline(pending)

    done = store.finalize("demo-shop", "o1", final)
    assert calls == [None, "touched"] and done is not None
    assert client.xlen(store.keys.outbox("demo-shop")) == 2  # the reply, and the decision for connectors


def _key_patterns(prefix: str) -> list[re.Pattern[str]]:
    rows = re.findall(r"^``(\{p\}:[^`]+)``", store_module.__doc__ or "", flags=re.M)
    assert len(rows) >= 15, rows
    patterns = []
    for row in rows:
        parts = re.split(r"(\{[^}]+\})", row)
        regex = "".join(
            re.escape(prefix) if part == "{p}" else ".+" if part.startswith("{") else re.escape(part) for part in parts
        )
        patterns.append(re.compile(regex + r"\Z"))
    return patterns


def test_every_key_replyguard_writes_is_in_the_key_table(client, llm_env, server):  # noqa: F811
    settings, brands = llm_env(provider={"max_retries": 0, "circuit_failures": 1})
    server.script.append(Scripted(reply=lambda d: "Sorry for the wait! " + d["approved_reply"]))
    events = [
        ORDER,
        make_event(id="s1", conversation_id="c-s", text="WIN A FREE iPhone!!! click http://spam.example now"),
        make_event(id="v1", conversation_id="c-v", author={"id": "vip", "tags": ["vip"]}, text="hello"),
        make_event(id="x1", conversation_id="c-x", author={"id": "quitter"}, text="STOP"),
        {"id": "bad"},
    ]
    report = ingest_events(events, client, settings, batch_wait=0.01)
    assert len(report.invalid) == 1
    work(client, settings)
    store = Store(client, settings.key_prefix)
    store.resolve(
        Correction(
            brand="demo-shop", message_id="s1", spam=True, by="t", at=store.decision("demo-shop", "s1").decided_at
        )
    )
    server.up = False  # a failing call opens the circuit (circuit keys)
    ingest_events(
        [make_event(id="o2", conversation_id="c-o2", text="where is my order KM-204816?")],
        client,
        settings,
        batch_wait=0.01,
    )
    work(client, settings)
    store.reject({"x": 1}, "test", "here")
    ours = sorted(k.decode() for k in client.scan_iter() if not k.startswith(b"rq:"))
    patterns = _key_patterns(settings.key_prefix)
    assert all(k.startswith(settings.key_prefix + ":") for k in ours), ours
    unlisted = [k for k in ours if not any(p.match(k) for p in patterns)]
    assert unlisted == []
    kinds = {k.split(":")[1] for k in ours}
    assert {"decision", "outbox", "review", "history", "stats", "optout", "llm", "correction", "rejected"} <= kinds
    assert any(":llm:tokens:" in k for k in ours) and any(":llm:circuit:" in k for k in ours)
    assert json.loads(client.lindex(store.keys.rejected, 0))["reason"] == "test"
