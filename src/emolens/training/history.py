"""Per-epoch history: `history.csv`, `history.json` and `curves.png`, rewritten every epoch."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from emolens.training.checkpoint import atomic_write_bytes

COLUMNS = (
    "epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "seconds", "images_per_s",
)


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_bytes(run_dir / "history.csv", buf.getvalue().encode())
    atomic_write_bytes(run_dir / "history.json", (json.dumps(history, indent=1) + "\n").encode())


def plot_curves(run_dir: Path, history: list[dict[str, Any]]) -> Path:
    """Loss and accuracy, train vs val, per epoch -> curves.png (matplotlib Agg, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], "o-", label="train")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], "o-", label="val")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_acc.plot(epochs, [h["val_f1"] for h in history], "--", label="val macro-F1")
    ax_acc.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    path = run_dir / "curves.png"
    atomic_write_bytes(path, buf.getvalue())
    return path
