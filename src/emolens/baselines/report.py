"""Figures read off an `EvaluationReport` for the comparison tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from emolens.evaluation import EvaluationReport


def class_recall(report: EvaluationReport, name: str) -> float | None:
    """Recall of one class in a report (None when the class has no test face)."""
    for row in report.per_class:
        if row["class"] == name:
            return float(row["recall"]) if row["support"] else None
    return None
