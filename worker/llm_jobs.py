"""RQ jobs of the LLM queue (``<queue>-llm``) and the deadline that bounds them.

``run_llm_task(brand, message_id)`` carries out a pending decision's LLM task and
finalises it; ``finish_at_deadline(brand, message_id)`` (scheduled on the main
queue for the task's deadline) finalises it with the plain outcome if it is still
pending. Both take plain JSON arguments and are safe to run twice.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from rq import get_current_job

from worker import drafting
from worker.jobs import current, finish_overdue, sla_tracker
from worker.store import Store


def _store() -> tuple[Store, Any]:
    pipeline, settings = current()
    job = get_current_job()
    if job is None:
        raise RuntimeError("LLM jobs run inside an RQ job")
    store = Store(job.connection, settings.key_prefix)
    store.use_retention({name: brand.policy.retention for name, brand in pipeline.brands.items()})
    return store, (pipeline, settings, job.connection)


def run_llm_task(brand: str, message_id: str) -> dict[str, Any]:
    store, (pipeline, settings, connection) = _store()
    decision = store.decision(brand, message_id)
    if decision is None or not decision.pending:
        return {"finalised": False, "why": "not pending"}
    brand_obj = pipeline.brands.get(brand)
    if brand_obj is None:
        final = store.finalize(brand, message_id, lambda d: drafting.plain(d, "brand_unloaded"))
        return {"finalised": final is not None, "outcome": "fallback", "reason": "brand_unloaded"}
    history = store.history(brand, decision.conversation_id)
    improved = drafting.run(decision, brand_obj, connection, settings.key_prefix, history)
    final = store.finalize(brand, message_id, lambda d: improved, brand_obj.policy)
    if final is not None:
        sla_tracker(connection, pipeline, settings).start(final, datetime.now(timezone.utc))
    if final is None:
        return {
            "finalised": False,
            "why": "the deadline finalised it first",
            "outcome": improved.llm.outcome if improved.llm else None,
        }
    return {
        "finalised": True,
        "outcome": final.llm.outcome if final.llm else None,
        "reason": final.llm.reason if final.llm else None,
    }


def finish_at_deadline(brand: str, message_id: str) -> dict[str, Any]:
    store, (pipeline, settings, connection) = _store()
    sla = sla_tracker(connection, pipeline, settings)
    loaded = pipeline.brands.get(brand)
    final = store.finalize(brand, message_id, drafting.at_deadline, loaded.policy if loaded else None)
    if final is not None:
        sla.start(final, datetime.now(timezone.utc))
    return {"finalised": final is not None, "swept": finish_overdue(store, sla)}
