"""Writing an evaluation to a report directory.

``DIR/report.json``  machine-readable figures (see eval/evaluate.py for the keys)
``DIR/report.html``  one self-contained page for choosing thresholds (eval/report_html.py)
``DIR/policy.proposed.yaml``  the brand policy with thresholds that meet the target (eval/proposal.py)
``DIR/policy.diff.txt``  what the proposal changes, in plain language
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from eval.evaluate import Evaluation
from classifiers.datasets import relabelling_text
from classifiers.persistence import LoadedModel
from eval.proposal import compare, propose, write_proposal
from worker.policy import load_policy


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(
    evaluation: Evaluation, out_dir: Path, *, policy_path: Path | None = None, policy_model: LoadedModel | None = None
) -> dict[str, Path]:
    """Write the report files; returns {kind: path}. Never touches ``policy_path`` itself.

    ``policy_model`` is the model the policy names for this task: intent thresholds are only
    proposed for its labels, and the proposal says so loudly when the evaluated model is another one.
    """
    from eval.report_html import write_html

    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = evaluation.report
    written: dict[str, Path] = {}
    if policy_path is not None:
        task = report["task"]
        policy = load_policy(policy_path, name_must_match=False).policy
        proposal = propose(
            task,
            report,
            policy,
            evaluation.val,
            allowed=set(policy_model.labels) if policy_model is not None else None,
            policy_model=policy_model.ref if policy_model is not None else None,
        )
        proposed = proposal.thresholds
        comparison = compare(task, policy, evaluation.test, proposed, set(report["action_labels"]))
        report["policy_comparison"] = {
            "policy": str(policy_path),
            **comparison,
            "reasons": proposal.reasons,
            "unmapped": proposal.unmapped,
            "policy_model": proposal.policy_model,
            "model_mismatch": proposal.model_mismatch,
        }
        written["policy"] = write_proposal(
            policy_path,
            task,
            proposal,
            out_dir / "policy.proposed.yaml",
            source=Path(report["data"]["path"]).name,
            target=report["target_precision"],
        )
        lines = [f"Proposed thresholds.{task} for {policy_path} (target precision {report['target_precision']}):", ""]
        relabelled = report["data"].get("relabelled") or {}
        if relabelled:  # the data said 1 / 0; the thresholds below are for the labels it was read as
            lines += [f"The data's labels {relabelling_text(relabelled)}.", ""]
        if proposal.model_mismatch:
            lines += [
                f"WARNING: the thresholds were chosen for {proposal.for_model or 'a model this eval trained (not saved)'}, "
                f"but the policy uses {proposal.policy_model}.",
                "They only hold once such a model is trained, promoted and named in the policy; the before/after",
                "figures below apply both sets of thresholds to the evaluated model's test scores.",
                "",
            ]
        shown = set(comparison["current"]) - ({"default"} if task != "intent" else set())
        for label in sorted(shown | set(proposed) | set(proposal.reasons)):
            before = comparison["current"].get(label, "-")
            why = proposal.reasons.get(label, "")
            lines.append(f"  {label:28} {before!s:>8} -> {proposed.get(label, '-')!s:>8}   {why}".rstrip())
        if proposal.unmapped:
            lines += ["", "Not proposed (cannot be mapped onto this policy):", *[f"  {u}" for u in proposal.unmapped]]
        for note in proposal.notes:
            lines += ["", f"Note: {note}"]
        lines += ["", *comparison["text"], ""]
        for row in comparison["rows"]:
            unit = "%" if row["unit"] == "percent" else ""
            scale = 100 if unit else 1
            lines.append(f"  {row['name']:34} {row['before'] * scale:8.1f}{unit} -> {row['after'] * scale:8.1f}{unit}")
        written["diff"] = out_dir / "policy.diff.txt"
        _write_text(written["diff"], "\n".join(lines) + "\n")
    written["json"] = out_dir / "report.json"
    _write_text(written["json"], json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
    written["html"] = out_dir / "report.html"
    write_html(report, written["html"])
    return written
