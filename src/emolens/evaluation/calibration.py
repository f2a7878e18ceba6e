"""Probability calibration: temperature scaling, expected calibration error, reliability diagrams.

A network trained with cross-entropy is usually over-confident. Temperature scaling (Guo et
al., 2017) divides the logits by one scalar T > 0 fitted to minimise the negative
log-likelihood on held-out data; it never changes the predicted class, only how sure the
model says it is. The fitted T travels in `ModelConfig.temperature` and
`emolens.inference.predict_proba` applies it.

This module is the one copy of these functions: training imports them from here.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import ConfigError, DataError, ModelError
from emolens.evaluation.metrics import macro_f1_score

# T is searched on a log scale in [1/100, 100]: wider than any network needs, narrow enough
# that a perfectly separable set (NLL keeps falling as T -> 0) still returns a finite value.
_LOG_T_BOUNDS = (float(np.log(1e-2)), float(np.log(1e2)))


def _check_logits_labels(scores: Any, labels: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate (N, C) finite scores and (N,) integer labels in [0, C)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise DataError(f"{what} must be shaped (N, C) with C >= 2 classes, got {scores.shape}")
    if len(scores) == 0:
        raise DataError(f"{what} is empty: need at least one sample")
    if labels.shape != (len(scores),):
        raise DataError(f"labels must be shaped ({len(scores)},) to match {what}, got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise DataError(f"labels must lie in [0, {scores.shape[1] - 1}], found values in [{labels.min()}, {labels.max()}]")
    if not np.isfinite(scores).all():
        raise DataError(f"{what} holds {int((~np.isfinite(scores)).sum())} non-finite values (NaN or inf)")
    return scores, labels.astype(np.int64)


def softmax_with_temperature(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / T) over classes, (B, C) -> (B, C) float32 rows summing to 1.

    Never NaN: a zero or non-finite temperature, or non-finite logits (damaged weights), raise
    ModelError, because every caller hands these scores on as JSON, which cannot carry NaN.
    """
    t = float(temperature)
    if not math.isfinite(t) or t <= 0:
        raise ModelError(f"softmax temperature must be a finite positive number, got {temperature}; recalibrate the model (emolens evaluate --calibrate)")
    if not np.isfinite(logits).all():
        raise ModelError("the model produced NaN or infinite logits; its weights are damaged or training diverged")
    z = logits / t
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    probs = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    if not np.isfinite(probs).all():  # logits / t overflowed float32
        raise ModelError(f"softmax of these logits at temperature {t:g} overflows; the temperature is too small for this model")
    return probs


def temperature_nll(logits: Any, labels: Any, temperature: float) -> float:
    """Mean negative log-likelihood of softmax(logits / T) at the true labels."""
    from scipy.special import logsumexp

    logits, labels = _check_logits_labels(logits, labels, "logits")
    z = logits / float(temperature)
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(z)), labels]))


def fit_temperature(logits: Any, labels: Any) -> float:
    """The temperature T minimising the NLL of softmax(logits / T) on (logits, labels).

    logits: (N, C) raw network outputs on held-out data (never the test split).
    labels: (N,) int class indices.

    NLL is convex in 1/T, so it has a single minimum along log T and a bounded Brent search
    finds it to 1e-6 without tuning a learning rate.

    >>> T = fit_temperature(val_logits, val_labels)  # doctest: +SKIP
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    logits, labels = _check_logits_labels(logits, labels, "logits")
    true = logits[np.arange(len(logits)), labels]

    def nll(log_t: float) -> float:
        inv_t = np.exp(-log_t)
        return float(np.mean(logsumexp(logits * inv_t, axis=1) - true * inv_t))

    res = minimize_scalar(nll, bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6})
    t = float(np.exp(res.x))
    if min(abs(res.x - b) for b in _LOG_T_BOUNDS) < 1e-3:
        lo, hi = np.exp(_LOG_T_BOUNDS)
        hint = "its logits carry no usable confidence (is it trained?)" if res.x > 0 else "it separates these samples perfectly"
        warnings.warn(f"fitted temperature {t:.3g} sits at the edge of the search range [{lo:g}, {hi:g}]: {hint}", RuntimeWarning, stacklevel=2)
    return t


def fit_class_bias(
    logits: Any, labels: Any, *, min_recall: float = 0.0, max_shift: float = 1.5, step: float = 0.05, rounds: int = 6
) -> np.ndarray:
    """Per-class offsets b (C,) for argmax(logits + b) that maximise macro-F1 on held-out data.

    Post-hoc logit adjustment (cf. Menon et al., 2021): a network trained on skewed classes
    under-predicts the rare and confusable ones (FER-2013's disgust and fear); shifting their
    logits trades a little accuracy on the common classes for recall on those. `min_recall`
    asks every class to reach that recall: each point of shortfall costs twice a point of
    macro-F1, which in practice makes it a constraint whenever it can be met.

    Coordinate ascent over a grid in [-max_shift, max_shift], a few rounds; ties keep the
    smaller shift, so a class whose offset does not help stays at 0. Returns offsets with
    mean 0. Fit on validation, never on test.
    """
    logits, labels = _check_logits_labels(logits, labels, "logits")
    _range_check("min_recall", min_recall, 0.0, 1.0)
    n_classes = logits.shape[1]
    counts = np.bincount(labels, minlength=n_classes)
    present = counts > 0
    grid = np.arange(-max_shift, max_shift + step / 2, step)
    grid = grid[np.argsort(np.abs(grid), kind="stable")]  # try small shifts first: ties keep them
    bias = np.zeros(n_classes)

    def score(b: np.ndarray) -> float:
        pred = (logits + b).argmax(1)
        hits = np.bincount(labels, weights=(pred == labels).astype(np.float64), minlength=n_classes)
        recall = hits[present] / counts[present]
        return macro_f1_score(labels, pred, n_classes) - 2.0 * float(np.clip(min_recall - recall, 0.0, None).sum())

    best = score(bias)
    for _ in range(rounds):
        improved = False
        for c in range(n_classes):
            trial = bias.copy()
            for v in grid:
                trial[c] = v
                s = score(trial)
                if s > best + 1e-9:
                    best, bias, improved = s, trial.copy(), True
        if not improved:
            break
    return bias - bias.mean()


def _range_check(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ConfigError(f"{name} = {value} is out of range; expected a value in [{lo}, {hi}]")


def reliability_bins(probs: Any, labels: Any, n_bins: int = 15) -> dict[str, list]:
    """Top-label confidence histogram: per equal-width bin, its count, mean confidence and accuracy.

    Bins are (lo, hi] except the first, which also holds confidence 0. Empty bins report
    None for confidence and accuracy. Returns plain lists so the result is JSON-ready.
    """
    if not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ConfigError(f"n_bins must be a positive integer, got {n_bins!r}")
    probs, labels = _check_logits_labels(probs, labels, "probs")
    if probs.min() < 0 or probs.max() > 1 + 1e-6:
        raise DataError(f"probs must lie in [0, 1], found values in [{probs.min():.3g}, {probs.max():.3g}]; pass softmax outputs, not logits")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    nonzero = counts > 0
    return {
        "edges": edges.tolist(),
        "count": counts.astype(int).tolist(),
        "confidence": [float(c / n) if ok else None for c, n, ok in zip(conf_sum, counts, nonzero, strict=True)],
        "accuracy": [float(a / n) if ok else None for a, n, ok in zip(acc_sum, counts, nonzero, strict=True)],
    }


def ece_from_bins(bins: dict[str, list]) -> float:
    """ECE = sum over bins of (bin size / N) * |accuracy - mean confidence|."""
    total = sum(bins["count"])
    if total == 0:
        return 0.0
    gaps = (n * abs(a - c) for n, a, c in zip(bins["count"], bins["accuracy"], bins["confidence"], strict=True) if n)
    return float(sum(gaps) / total)


def expected_calibration_error(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """Expected calibration error of the top-label confidence, in [0, 1], with equal-width bins.

    probs: (N, C) class probabilities (rows sum to 1); labels: (N,) int class indices.
    0 means that among the faces predicted with confidence p, a fraction p is right.
    """
    return ece_from_bins(reliability_bins(probs, labels, n_bins))


def plot_reliability_diagram(bins: dict[str, list], path: str | Path, *, title: str = "") -> Path:
    """Write a reliability diagram (accuracy against confidence per bin, plus bin sizes) as PNG.

    `bins` is what `reliability_bins` returns. A calibrated model's bars follow the diagonal.
    """
    from matplotlib.figure import Figure

    edges = np.asarray(bins["edges"])
    width = np.diff(edges)
    lefts = edges[:-1]
    counts = np.asarray(bins["count"])
    acc = np.array([np.nan if a is None else a for a in bins["accuracy"]])
    conf = np.array([np.nan if c is None else c for c in bins["confidence"]])
    has = counts > 0

    # Figure without pyplot: no global backend state, safe in servers and threads.
    fig = Figure(figsize=(6.0, 6.4), dpi=150, layout="constrained")
    ax, ax_n = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ax.bar(lefts[has], acc[has], width=width[has], align="edge", color="#4c72b0", edgecolor="white", label="accuracy")
    # The gap between what the model claims and what it gets, drawn from accuracy up/down to confidence.
    ax.bar(lefts[has], conf[has] - acc[has], bottom=acc[has], width=width[has], align="edge",
           color="#dd8452", alpha=0.45, edgecolor="#dd8452", hatch="//", label="gap to confidence")
    ax.plot([0, 1], [0, 1], color="0.3", linestyle="--", linewidth=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    ax.set_title(title or f"Reliability diagram (ECE {ece_from_bins(bins):.3f})")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    ax_n.bar(lefts, counts, width=width, align="edge", color="0.55", edgecolor="white")
    ax_n.set(xlabel="confidence (top-class probability)", ylabel="faces")
    ax_n.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
