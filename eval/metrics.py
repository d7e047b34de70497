"""Classification metrics (re-exported from :mod:`classifiers.metrics`, where training uses them)."""

from classifiers.metrics import (
    accuracy,
    confusion,
    expected_calibration_error,
    macro_f1,
    per_label,
    reliability_bins,
    summary,
)

__all__ = [
    "accuracy",
    "confusion",
    "expected_calibration_error",
    "macro_f1",
    "per_label",
    "reliability_bins",
    "summary",
]
