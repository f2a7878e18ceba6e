"""Evaluation: metrics, calibration (temperature scaling, ECE) and reports with figures.

    >>> from emolens.evaluation import evaluate
    >>> report = evaluate("runs/exp/best.safetensors", "archive.zip", split="test", tta="flip")  # doctest: +SKIP
    >>> print(report); report.save("runs/eval")                                                  # doctest: +SKIP
"""

from emolens.evaluation.calibration import (
    expected_calibration_error,
    fit_class_bias,
    fit_temperature,
    plot_reliability_diagram,
    reliability_bins,
    temperature_nll,
)
from emolens.evaluation.evaluator import CalibrationResult, calibrate_model, evaluate, report_from_logits, split_labels_and_logits
from emolens.evaluation.metrics import classification_metrics, macro_f1_score
from emolens.evaluation.report import EvaluationReport

__all__ = [
    "CalibrationResult", "EvaluationReport", "calibrate_model", "classification_metrics", "evaluate",
    "expected_calibration_error", "fit_class_bias", "fit_temperature", "macro_f1_score", "plot_reliability_diagram", "reliability_bins",
    "report_from_logits", "split_labels_and_logits", "temperature_nll",
]
