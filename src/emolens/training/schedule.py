"""Learning-rate schedule (linear warm-up, then cosine / plateau / constant) and early stopping.

Both keep their state as plain numbers, so a checkpoint stores them as JSON and a resumed
run continues exactly. The learning rate is a pure function of the global step plus the
plateau's scale, recomputed every step rather than accumulated.
"""

from __future__ import annotations

import math
from typing import Any

from emolens.training.config import ScheduleConfig

HIGHER_IS_BETTER = {"val_acc": True, "val_f1": True, "val_loss": False}


def improved(value: float, best: float | None, monitor: str, min_delta: float) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    if HIGHER_IS_BETTER[monitor]:
        return value > best + min_delta
    return value < best - min_delta


class LRSchedule:
    """lr(step) = base * warm-up(step) * shape(step); `epoch_end(metric)` drives the plateau cut."""

    def __init__(self, cfg: ScheduleConfig, base_lr: float, steps_per_epoch: int):
        self.cfg = cfg
        self.base_lr = base_lr
        self.warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))
        self.total_steps = max(1, cfg.epochs * steps_per_epoch)
        self.scale = 1.0  # plateau multiplier
        self.best: float | None = None
        self.bad_epochs = 0

    def lr_at(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.cfg.name == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, max(0.0, (step - self.warmup_steps) / span))
            r = self.cfg.min_lr_ratio
            shape = r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * progress))
        elif self.cfg.name == "plateau":
            shape = self.scale
        else:
            shape = 1.0
        return self.base_lr * warm * shape

    def epoch_end(self, value: float) -> bool:
        """Record the epoch's monitored metric; returns True when the plateau cut the lr."""
        if self.cfg.name != "plateau":
            return False
        if improved(value, self.best, self.cfg.monitor, self.cfg.min_delta):
            self.best, self.bad_epochs = value, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs > self.cfg.plateau_patience:
            self.scale = max(self.cfg.min_lr_ratio, self.scale * self.cfg.plateau_factor)
            self.bad_epochs = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.scale, self.best, self.bad_epochs = float(d["scale"]), d["best"], int(d["bad_epochs"])


class EarlyStopping:
    """Tracks the best value of `monitor`; `stop` once `patience` epochs pass without improvement."""

    def __init__(self, monitor: str, patience: int, min_delta: float = 0.0):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.best: float | None = None
        self.best_epoch = -1
        self.bad_epochs = 0
        self.stop = False

    def update(self, value: float, epoch: int) -> bool:
        """Record an epoch's value; returns True when it is the best so far."""
        if improved(value, self.best, self.monitor, self.min_delta):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        if self.patience and self.bad_epochs >= self.patience:
            self.stop = True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs, "stop": self.stop}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.best, self.best_epoch = d["best"], int(d["best_epoch"])
        self.bad_epochs, self.stop = int(d["bad_epochs"]), bool(d["stop"])
