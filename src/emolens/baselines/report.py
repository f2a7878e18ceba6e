"""The evaluation report of `emolens evaluate`, built from labels and logits.

`emolens.evaluation.evaluate` runs a network; models that are not networks (the classic
baselines, an Ultralytics classifier) produce logits their own way and come here, so every
approach is measured by the same metrics code and written as the same `EvaluationReport`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from emolens.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from emolens.data import FaceDataset
    from emolens.evaluation import EvaluationReport


def report_from_logits(
    dataset: FaceDataset,
    split: str,
    logits: np.ndarray,
    *,
    temperature: float,
    classes: tuple[str, ...],
    model_name: str,
    arch: str,
    model_path: str | None,
    seconds: float,
    device: str = "cpu",
    batch_size: int = 0,
    n_bins: int = 15,
) -> EvaluationReport:
    """An `EvaluationReport` for logits (N, C) over `classes`, one row per face of `split`.

    Computes what `emolens.evaluation.evaluate` computes: headline and per-class metrics of
    softmax(logits / temperature), calibration at that temperature and at 1, and, when the
    dataset has a train split, the figures on the faces whose pixels are not in train.
    """
    from emolens import __version__
    from emolens.data import SPLITS
    from emolens.evaluation.calibration import ece_from_bins, reliability_bins, temperature_nll
    from emolens.evaluation.metrics import accuracy_and_macro_f1, classification_metrics
    from emolens.evaluation.report import EvaluationReport
    from emolens.inference import softmax_with_temperature

    rows = np.flatnonzero(dataset.split == SPLITS.index(split))
    logits = np.asarray(logits, np.float64)
    if logits.shape != (len(rows), len(classes)):
        raise DataError(f"logits must be ({len(rows)}, {len(classes)}) for the {split} split, got {logits.shape}")
    missing = [c for c in dataset.classes if c not in classes]
    if missing:
        raise DataError(f"{dataset.source or 'dataset'}: classes {missing} are not among the model's labels {list(classes)}")
    remap = np.array([classes.index(c) for c in dataset.classes], np.int64)
    y_true = remap[dataset.labels[rows]]
    probs = softmax_with_temperature(logits, temperature)
    metrics = classification_metrics(y_true, probs, classes)
    bins = reliability_bins(probs, y_true, n_bins)
    dedup: dict[str, Any] | None = None
    if split != "train" and dataset.has_split("train"):
        from emolens.data.stats import duplicate_mask

        dup = duplicate_mask(dataset, split=split, against="train")
        acc, f1 = accuracy_and_macro_f1(y_true[~dup], probs[~dup].argmax(axis=1))
        dedup = {"n_images": int((~dup).sum()), "n_duplicates": int(dup.sum()), "accuracy": acc, "macro_f1": f1}
    return EvaluationReport(
        model_name=model_name, model_path=model_path, arch=arch, dataset=dataset.source, dataset_sha256=dataset.source_sha256,
        split=split, tta="none", classes=tuple(classes), n_images=len(rows),
        accuracy=metrics["accuracy"], balanced_accuracy=metrics["balanced_accuracy"], macro_f1=metrics["macro_f1"],
        nll=metrics["nll"], ece=ece_from_bins(bins), temperature=float(temperature),
        nll_uncalibrated=temperature_nll(logits, y_true, 1.0),
        ece_uncalibrated=ece_from_bins(reliability_bins(softmax_with_temperature(logits, 1.0), y_true, n_bins)),
        per_class=metrics["per_class"], confusion=metrics["confusion"], reliability=bins, dedup=dedup,
        timing={"seconds": seconds, "images_per_s": len(rows) / seconds if seconds > 0 else None, "batch_size": batch_size, "device": device},
        emolens_version=__version__, created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def class_recall(report: EvaluationReport, name: str) -> float | None:
    """Recall of one class in a report (None when the class has no test face)."""
    for row in report.per_class:
        if row["class"] == name:
            return float(row["recall"]) if row["support"] else None
    return None
