"""A proposed policy from an evaluation: thresholds that meet the target, and what changes.

The proposal is the current policy with ``thresholds.<task>`` replaced, validated
against the policy schema and written to the report directory as
``policy.proposed.yaml``. The eval tool never writes to ``policies/``.
The comparison applies the current and the proposed thresholds to the same test
predictions and reports, in plain language, the auto-resolve rate, the error
rate among auto-resolved messages, and escalations per 1,000 messages.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from eval.thresholds import Scored, auto_mask, outcome
from worker.policy import Policy, load_policy
from worker.yaml_source import read_yaml


def _ceil(value: float, digits: int = 4) -> float:
    """Round a threshold up, so rounding never lowers precision."""
    factor = 10**digits
    return min(1.0, math.ceil(value * factor - 1e-9) / factor)


def proposed_thresholds(task: str, report: dict[str, Any]) -> dict[str, float]:
    threshold = _ceil(report["threshold"])
    per_label = {k: _ceil(v) for k, v in report["per_label_thresholds"].items()}
    if task == "intent":
        return {"default": threshold, **dict(sorted(per_label.items()))}
    return {label: per_label.get(label, threshold) for label in report["action_labels"]}


def _current(policy: Policy, task: str) -> tuple[dict[str, float], float]:
    table = dict(getattr(policy.thresholds, task))
    default = table.pop("default", 1.0) if task == "intent" else 1.0
    return table, default


def _escalations(task: str, policy: Policy, s: Scored, mask: np.ndarray) -> int:
    if task == "intent":
        return int((~mask).sum())  # not answered automatically: a person handles it (DM fallback)
    if task == "abuse":
        hate = mask & (s.pred == "hate")
        offensive = mask & (s.pred == "offensive")
        return int(hate.sum() + (offensive.sum() if "escalate" in policy.moderation.offensive.actions else 0))
    return int(mask.sum()) if "escalate" in policy.moderation.spam.actions else 0


def compare(task: str, policy: Policy, test: Scored, proposed: dict[str, float], positive: set[str]) -> dict[str, Any]:
    current_table, current_default = _current(policy, task)
    new_table = dict(proposed)
    new_default = new_table.pop("default", 1.0) if task == "intent" else 1.0
    before_mask = auto_mask(test, positive, current_table, current_default)
    after_mask = auto_mask(test, positive, new_table, new_default)
    before, after = outcome(test, before_mask), outcome(test, after_mask)
    n = max(1, len(test.conf))
    esc_before = _escalations(task, policy, test, before_mask) * 1000 / n
    esc_after = _escalations(task, policy, test, after_mask) * 1000 / n
    verb = {"intent": "answered automatically", "spam": "hidden as spam", "abuse": "flagged as abuse"}[task]
    rows = [
        {"name": f"messages {verb}", "before": before["coverage"], "after": after["coverage"], "unit": "percent"},
        {"name": "errors among those", "before": 1 - before["precision"], "after": 1 - after["precision"], "unit": "percent"},
        {"name": "errors per 1,000 messages", "before": before["errors"] * 1000 / n, "after": after["errors"] * 1000 / n,
         "unit": "count"},
        {"name": "escalations per 1,000 messages", "before": esc_before, "after": esc_after, "unit": "count"},
    ]

    def pct(x: float) -> str:
        return f"{100 * x:.1f} %"

    text = [
        f"On these {len(test.conf):,} test messages, the current policy would have {verb} {pct(before['coverage'])} "
        f"of them, {pct(1 - before['precision'])} of those wrongly; the proposed thresholds would have {verb} "
        f"{pct(after['coverage'])}, {pct(1 - after['precision'])} wrongly.",
        f"Escalations to people: {esc_before:.0f} → {esc_after:.0f} per 1,000 messages.",
    ]
    unreachable = [label for label, t in proposed.items() if t >= 1.0]
    if unreachable:
        text.append(
            f"No threshold reached the target precision on validation data for {', '.join(unreachable)}: the proposal "
            "sets 1.0 there (never automatic). Lower the target or keep those for people."
        )
    return {"rows": rows, "text": text, "current": {**current_table, "default": current_default}, "proposed": proposed}


def write_proposal(policy_path: Path, task: str, proposed: dict[str, float], out: Path, *, source: str,
                   target: float) -> Path:
    """Write ``out`` (policy.proposed.yaml): the policy at ``policy_path`` with new thresholds. Validated."""
    data = read_yaml(policy_path).data  # strict: duplicate keys are an error, not silently merged
    data["thresholds"][task] = proposed
    Policy.model_validate(data)  # the proposal must be a valid policy
    shadowing = [o.get("name") for o in data.get("overrides") or [] if task in (o.get("thresholds") or {})]
    header = (
        f"# Proposed by `replyguard eval` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from {source},\n"
        f"# target precision {target}. Only thresholds.{task} differs from {policy_path}.\n"
        "# Review it, then copy it over the brand's policy yourself: replyguard never applies it.\n"
    )
    if shadowing:
        header += f"# Note: overrides {shadowing} still set their own {task} thresholds for their platforms/kinds.\n"
    text = header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


def load_current(policy_path: Path) -> Policy:
    return load_policy(policy_path).policy
