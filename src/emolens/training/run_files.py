"""What a training run writes beside its checkpoints, re-derives after a kill, and finishes with.

`checkpoints/last` is a run's single commit point (see `emolens.training.trainer`): the best
model file, the history and every JSON twin are written after it, so `repair_run` can rebuild
each of them from it on resume; `finalize` fits the temperature to the best checkpoint's own
weights and writes the final model file, recording their sha256.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from emolens.data.dataset import FaceDataset
from emolens.errors import ModelError
from emolens.models.io import ModelConfig, build_model, save_model
from emolens.training import distributed as dist_
from emolens.training.checkpoint import read_checkpoint, read_checkpoint_meta, repair_best_checkpoint, sync_twin, weights_sha256
from emolens.training.history import plot_curves, write_history
from emolens.training.schedule import EarlyStopping


@dataclass
class ModelRecord:
    """What every saved model file of this run records, beside the weights."""

    base: ModelConfig  # arch, kwargs, labels, preprocess
    static: dict[str, Any]  # resolved config, data source and hash, device, versions

    def config(
        self, history: list[dict[str, Any]], stopper: EarlyStopping, seconds: float, metrics: dict[str, Any], weights_sha: str,
        temperature: float = 1.0,
    ) -> ModelConfig:
        # weights_sha256 lets anyone check that the metrics and temperature belong to these weights.
        training = {
            **self.static, "epochs": len(history), "best_epoch": stopper.best_epoch, "seconds": round(seconds, 1), "weights_sha256": weights_sha,
        }
        return dataclasses.replace(self.base, training=training, metrics=metrics, temperature=temperature)


def _best_row(history: list[dict[str, Any]], stopper: EarlyStopping) -> dict[str, Any]:
    return next(h for h in history if h["epoch"] == stopper.best_epoch)


def save_best_model(
    model: nn.Module, record: ModelRecord, path: Path, history: list[dict[str, Any]], stopper: EarlyStopping, seconds: float, sha: str,
) -> None:
    row = _best_row(history, stopper)
    metrics = {k: row[k] for k in ("val_acc", "val_f1", "val_loss")} | {"best_epoch": stopper.best_epoch}
    save_model(model, path, record.config(history, stopper, seconds, metrics, sha))


def _model_file_holds(path: Path, sha: str | None) -> bool:
    """Whether the model file at `path` and its JSON twin both describe the weights `sha`."""
    from emolens.models.io import read_model_config

    try:
        config = read_model_config(path).to_dict()
        twin = json.loads(path.with_suffix(".json").read_text())
    except (ModelError, OSError, ValueError):  # missing or torn: rewrite
        return False
    # Without a sha (a checkpoint from before they were recorded) only the twin can be checked.
    return twin == config and (sha is None or config["training"].get("weights_sha256") == sha)


def _best_model_from(ckpt: Path, record: ModelRecord, best_epoch: int) -> tuple[nn.Module, str]:
    """The model in checkpoint `ckpt`, checked to be epoch `best_epoch`, and its weights' sha256."""
    if not ckpt.is_file():
        raise ModelError(f"{ckpt}: the best model was never written; did any epoch finish?")
    state, _, meta = read_checkpoint(ckpt)
    sha = weights_sha256(state)
    if meta["epoch"] != best_epoch or meta.get("weights_sha256", sha) != sha:
        raise ModelError(f"{ckpt}: holds epoch {meta['epoch']} (weights sha256 {sha[:12]}), not the best epoch {best_epoch}; resume the run to repair it")
    model = build_model(record.base)
    model.load_state_dict(state)
    return model.eval(), sha


def repair_run(
    run_dir: Path, last_meta: dict[str, Any], record: ModelRecord, history: list[dict[str, Any]], stopper: EarlyStopping,
    plots: bool, info: dist_.DistInfo,
) -> None:
    """On resume, re-derive from `checkpoints/last` whatever a kill left out of date.

    `last` is the run's single commit point: `best`, the model file, the history and every JSON
    twin are written after it, so each either agrees with it or is rebuilt here from it (and
    from `best`, once repaired), before training goes on. Rank 0 only.
    """
    ckpt_dir = run_dir / "checkpoints"
    for tmp in [*run_dir.glob("*.tmp"), *ckpt_dir.glob("*.tmp")]:  # a killed write's leftovers
        tmp.unlink(missing_ok=True)
    if repair_best_checkpoint(ckpt_dir, last_meta):
        dist_.log_main(info, f"emolens: {ckpt_dir / 'best.safetensors'} was left behind by a kill; restored from epoch {last_meta['epoch']}")
    sync_twin(ckpt_dir / "last.safetensors", last_meta)
    best_meta = read_checkpoint_meta(ckpt_dir / "best.safetensors")
    if best_meta is not None:
        sync_twin(ckpt_dir / "best.safetensors", best_meta)
        if not _model_file_holds(run_dir / "best.safetensors", best_meta.get("weights_sha256")):
            model, sha = _best_model_from(ckpt_dir / "best.safetensors", record, stopper.best_epoch)
            save_best_model(model, record, run_dir / "best.safetensors", history, stopper, float(last_meta["seconds"]), sha)
    write_history(run_dir, history)
    if plots:
        plot_curves(run_dir, history)


def finalize(
    record: ModelRecord, path: Path, history: list[dict[str, Any]], stopper: EarlyStopping, seconds: float,
    val_ds: FaceDataset, device: torch.device, batch_size: int, info: dist_.DistInfo,
) -> tuple[nn.Module, dict[str, Any]]:
    """Fit a temperature on validation to the best checkpoint's weights, write the final model file.

    The weights come from `checkpoints/best`, never from the model file written during training:
    that one is derived, and a kill may have left it an epoch behind.
    """
    from emolens.evaluation.calibration import expected_calibration_error, fit_temperature
    from emolens.evaluation.calibration import temperature_nll as nll
    from emolens.inference import predict_logits, softmax_with_temperature
    from emolens.models.io import load_model

    best, sha = _best_model_from(path.parent / "checkpoints" / "best.safetensors", record, stopper.best_epoch)
    best = best.to(device)
    logits = predict_logits(best, val_ds.images, batch_size=batch_size)  # the shared inference path
    labels = val_ds.labels
    T = fit_temperature(logits, labels)
    row = _best_row(history, stopper)
    metrics = {
        "val_acc": row["val_acc"], "val_f1": row["val_f1"], "val_loss": row["val_loss"], "best_epoch": stopper.best_epoch,
        "temperature": T,
        "val_nll_before": nll(logits, labels, 1.0), "val_nll_after": nll(logits, labels, T),
        "val_ece_before": expected_calibration_error(softmax_with_temperature(logits, 1.0), labels),
        "val_ece_after": expected_calibration_error(softmax_with_temperature(logits, T), labels),
    }
    final = record.config(history, stopper, seconds, metrics, sha, temperature=T)
    save_model(best, path, final)
    best = load_model(path, device=device)  # what users will load, checked to be what was fitted
    if weights_sha256(best.state_dict()) != sha:
        raise ModelError(f"{path}: read back other weights than were written (sha256 {sha[:12]}); is the disk failing?")
    dist_.log_main(info, f"emolens: best epoch {stopper.best_epoch}: val acc {metrics['val_acc']:.4f}, macro-F1 {metrics['val_f1']:.4f}; "
         f"temperature {T:.3f} (val ECE {metrics['val_ece_before']:.4f} -> {metrics['val_ece_after']:.4f}); model {path}")
    return best, metrics
