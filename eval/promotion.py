"""Learning from moderators, safely: corrections as training data, and the promotion check.

``correction_examples`` turns a brand's reviewed corrections (``replyguard review resolve``) into
labelled rows for one task. A fixed, hashed 20 % of them (by message id, so the same correction
is always on the same side) is held out: it is never trained on and always joins the held-out
data a promotion is judged on.

``check_promotion`` evaluates the current model and a candidate on the *same* held-out data
(thresholds chosen on its val rows, figures on its test rows plus the held-out corrections) and
refuses the candidate when it is worse on the target precision or on coverage at that precision.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from classifiers.datasets import Dataset, Example, with_splits
from classifiers.persistence import LoadedModel
from eval.evaluate import evaluate

#: Share of corrections held out from training (by a hash of the message id).
HELD_OUT_SHARE = 0.2
#: Coverage a candidate may lose against the current model before it is refused (absolute).
COVERAGE_TOLERANCE = 0.005


def held_out(message_id: str) -> bool:
    digest = hashlib.sha256(message_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < HELD_OUT_SHARE


def _label(task: str, correction: Any) -> str | None:
    if task == "spam":
        return None if correction.spam is None else ("spam" if correction.spam else "ham")
    if task == "abuse":
        return correction.abuse
    return correction.intent


def correction_examples(store: Any, brand: str, task: str) -> list[Example]:
    """The brand's corrections that say something about ``task``, as rows (held-out ones in split ``test``)."""
    corrections = store.corrections(brand)
    ids = sorted(corrections)
    decisions = store.decisions([(brand, i) for i in ids])
    rows = []
    for message_id, decision in zip(ids, decisions, strict=True):
        label = _label(task, corrections[message_id])
        text = (decision.event or {}).get("text") if decision is not None else None
        if label and isinstance(text, str) and text.strip():
            rows.append(Example(text=text, label=label, split="test" if held_out(message_id) else "train", weight=2.0))
    return rows


@dataclass
class PromotionCheck:
    current: dict[str, Any]
    candidate: dict[str, Any]
    target_precision: float
    reasons: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.reasons

    def lines(self) -> list[str]:
        # the models on lines of their own (a long name or version would push the figures off the screen),
        # then the figures in columns as wide as their contents
        out = [
            f"{'current':9}  {_cell(self.current.get('model'))}",
            f"{'candidate':9}  {_cell(self.candidate.get('model'))}",
        ]
        rows = [("", "current", "candidate")] + [
            (name, _cell(self.current.get(key)), _cell(self.candidate.get(key))) for key, name in PROMOTION_ROWS
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        out += [f"{a:{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
        out += [f"refused: {r}" for r in self.reasons] or [
            "accepted: the candidate is not worse on precision or coverage"
        ]
        return out


#: (figure, row name) of the promotion table, top to bottom (the models are named above it).
PROMOTION_ROWS = (
    ("achieved_precision", "precision at threshold"),
    ("coverage", "coverage at threshold"),
    ("accuracy", "accuracy"),
    ("n_test", "held-out rows"),
)


def _cell(value: Any) -> str:
    """A figure of the promotion table: 4 decimals for a fraction, '-' for a missing one."""
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    return {
        k: report.get(k)
        for k in ("model", "model_ref", "achieved_precision", "coverage", "accuracy", "threshold", "n_test", "macro_f1")
    }


def check_promotion(
    task: str,
    current: LoadedModel,
    candidate: LoadedModel,
    data: Dataset,
    *,
    target_precision: float,
    corrections: list[Example] | None = None,
    oos_label: str | None = None,
) -> PromotionCheck:
    held = [e for e in corrections or [] if e.split == "test"]
    base = with_splits(data)
    rows = [e for e in base.examples if e.split in ("val", "test")] + held
    dataset = replace(base, examples=rows)
    runs = [
        evaluate(
            task, dataset, model=m, target_precision=target_precision, oos_label=oos_label, measure_speed=False
        ).report
        for m in (current, candidate)
    ]
    check = PromotionCheck(current=_figures(runs[0]), candidate=_figures(runs[1]), target_precision=target_precision)
    a, b = check.current, check.candidate
    if b["achieved_precision"] < min(target_precision, a["achieved_precision"]):
        check.reasons.append(
            f"precision at its threshold is {b['achieved_precision']:.4f}, below the target "
            f"{target_precision} (the current model reaches {a['achieved_precision']:.4f})"
        )
    if b["coverage"] < a["coverage"] - COVERAGE_TOLERANCE:
        check.reasons.append(
            f"it would resolve {100 * b['coverage']:.1f} % automatically at precision {target_precision}, "
            f"the current model {100 * a['coverage']:.1f} %"
        )
    return check
