"""Confusion-matrix figure (matplotlib, drawn without pyplot so it is safe off the main thread)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import DataError


def _write_cell_values(ax: Any, cm: np.ndarray, shown: np.ndarray, *, normalize: bool, vmax: float) -> None:
    """Each cell's share of its row (or its count) written in it; empty rows (NaN) stay blank."""
    n = len(cm)
    for i in range(n):
        for j in range(n):
            if np.isnan(shown[i, j]):
                continue
            if normalize:  # "<1%" keeps a rare confusion from reading as none at all
                text = "<1%" if 0 < shown[i, j] < 0.005 else f"{100 * shown[i, j]:.0f}%"
            else:
                text = f"{int(cm[i, j])}"
            # White text on dark cells, dark text on light ones: readable at any value.
            color = "white" if shown[i, j] > 0.55 * vmax else "#1a1a1a"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=9 if n <= 10 else 7)


def plot_confusion_matrix(
    confusion: Any, classes: tuple[str, ...] | list[str], path: str | Path, *, normalize: bool = True, title: str = ""
) -> Path:
    """Write a (C, C) confusion matrix (rows true, columns predicted) as a PNG with numbers in cells.

    normalize=True shows each row as percentages of that true class (the diagonal is recall);
    normalize=False shows counts. Rows with no images stay blank rather than dividing by zero.
    """
    from matplotlib.figure import Figure

    cm = np.asarray(confusion, dtype=np.float64)
    n = len(classes)
    if cm.shape != (n, n):
        raise DataError(f"confusion matrix must be ({n}, {n}) for {n} classes, got {cm.shape}")
    support = cm.sum(axis=1, keepdims=True)
    if normalize:
        with np.errstate(invalid="ignore", divide="ignore"):
            shown = np.where(support > 0, cm / support, np.nan)
        vmax = 1.0
    else:
        shown = cm
        vmax = max(cm.max(), 1.0)

    side = max(5.5, 0.85 * n + 2.0)  # cells stay big enough for 3-4 digit counts
    fig = Figure(figsize=(side + 1.2, side), dpi=150, layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(np.nan_to_num(shown, nan=0.0), cmap="Blues", vmin=0.0, vmax=vmax)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if normalize:
        from matplotlib.ticker import PercentFormatter

        cbar.ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    cbar.set_label("share of the true class" if normalize else "images")

    _write_cell_values(ax, cm, shown, normalize=normalize, vmax=vmax)
    row_labels = [f"{c} ({int(s)})" for c, s in zip(classes, support[:, 0], strict=True)]
    ax.set_xticks(range(n), labels=list(classes), rotation=35, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels=row_labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (images)")
    # Thin white grid between cells so neighbouring values do not blur together.
    ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.set_title(title or ("Confusion matrix (row-normalised)" if normalize else "Confusion matrix (counts)"), fontsize=10, wrap=True)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", pad_inches=0.15)  # long class names must never be clipped
    return path
