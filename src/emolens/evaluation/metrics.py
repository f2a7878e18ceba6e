"""Classification metrics from labels and probabilities, as plain JSON-ready numbers.

Everything is computed by scikit-learn; this module fixes the conventions once:
- rows of the confusion matrix are true classes, columns predicted classes, in label order;
- per-class precision/recall/F1 use zero_division=0 (a class never predicted has precision 0);
- macro-F1 is the mean of that per-class F1 column over every class of the model, as
  sklearn's `f1_score(labels=range(C), average="macro", zero_division=0)`: the figure a report
  prints is the mean of the table it prints, and it averages over the same C classes on every
  split, so two splits or two models compare on one scale. A class absent from a split scores
  0 there whatever the model does (training, evaluation, calibration and the baselines all
  use `macro_f1_score`, so they agree);
- balanced accuracy is the mean recall over classes present in the truth.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from emolens.errors import DataError
from emolens.labels import EMOTIONS


def classification_metrics(y_true: Any, probs: Any, classes: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Headline and per-class metrics for (N,) int labels and (N, C) probabilities.

    Returns a dict with accuracy, balanced_accuracy, macro_f1, nll, confusion (C x C list of
    ints) and per_class (one dict per class: class, precision, recall, f1, support).
    """
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        log_loss,
        precision_recall_fscore_support,
    )

    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n_cls = len(classes)
    if probs.ndim != 2 or probs.shape != (len(y_true), n_cls):
        raise DataError(f"probs must be shaped ({len(y_true)}, {n_cls}) for {len(y_true)} labels and {n_cls} classes, got {probs.shape}")
    if len(y_true) == 0:
        raise DataError("no samples to evaluate")
    y_pred = probs.argmax(axis=1)
    labels = list(range(n_cls))
    prec, rec, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    with warnings.catch_warnings():
        # sklearn warns when y_pred holds a class absent from y_true; the mean recall over the
        # classes that are present is exactly what we want, so the warning is noise here.
        warnings.simplefilter("ignore", UserWarning)
        balanced = balanced_accuracy_score(y_true, y_pred)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced),
        "macro_f1": macro_f1_score(y_true, y_pred, n_cls),
        "nll": float(log_loss(y_true, _renormalized(probs), labels=labels)),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).astype(int).tolist(),
        "per_class": [
            {"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, prec, rec, f1, support, strict=True)
        ],
    }


def _renormalized(probs: np.ndarray) -> np.ndarray:
    # float32 softmax rows sum to 1 only within ~1e-7, which sklearn's log_loss warns about;
    # the floor keeps log(0) finite for a class the model rules out entirely.
    p = np.clip(probs, 1e-12, None)
    return p / p.sum(axis=1, keepdims=True)


def macro_f1_from_confusion(confusion: Any) -> float:
    """Macro-F1 of a (C, C) confusion matrix (rows true, columns predicted), over all C classes.

    A class with no true and no predicted sample scores 0 (sklearn's zero_division=0).
    """
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1)  # predicted + true counts = 2 tp + fp + fn
    return float(np.divide(2 * tp, denom, out=np.zeros(len(cm)), where=denom > 0).mean())


def macro_f1_score(y_true: Any, y_pred: Any, n_classes: int) -> float:
    """Macro-F1 of integer labels and predictions in [0, n_classes); one bincount, so it is fast
    enough for a search loop (`fit_class_bias`)."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    cm = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    return macro_f1_from_confusion(cm)


def accuracy_and_macro_f1(y_true: Any, y_pred: Any, n_classes: int = len(EMOTIONS)) -> tuple[float | None, float | None]:
    """Accuracy and macro-F1 of a (possibly empty) subset; None for an empty one."""
    if len(y_true) == 0:
        return None, None
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    return float((y_true == y_pred).mean()), macro_f1_score(y_true, y_pred, n_classes)
