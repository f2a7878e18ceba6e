"""`finetune`: transfer learning for a "timm:NAME" model, frozen first, then unfrozen.

`freeze_epochs` epochs of the new classifier alone on the pretrained features, then every
layer at `unfrozen_lr_scale` times the learning rate. Each phase is an ordinary `train` run
(run folders NAME-frozen and NAME), so checkpoints, history, calibration and the model file
work as for any emolens model, and the final `best.safetensors` loads with
`emolens.models.load_model` wherever timm is installed. The weights and the freezing reach the
model that `train` builds through `emolens.models.timm_adapter.build_plan`.

Example::

    result = finetune(load_config(overrides=["model.arch=timm:resnet18"]), pretrained="resnet18.safetensors")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emolens.errors import ConfigError, ModelError
from emolens.models import timm_adapter
from emolens.training.config import TrainConfig, load_config
from emolens.training.trainer import TrainResult, load_training_data, train

if TYPE_CHECKING:  # pragma: no cover
    from emolens.data import FaceDataset


def finetune(
    config: TrainConfig,
    *,
    pretrained: str | Path | None = None,
    freeze_epochs: int = 1,
    unfrozen_lr_scale: float = 0.1,
    dataset: FaceDataset | None = None,
) -> TrainResult:
    """Fine-tune a "timm:NAME" model: `freeze_epochs` epochs of the classifier, then all layers.

    config.schedule.epochs is the total; the second phase trains epochs - freeze_epochs with
    optim.lr * unfrozen_lr_scale. pretrained: a local .safetensors file, "hub" to let timm
    download its weights (the only online path), or None for random initialisation.
    Returns the second phase's TrainResult; its model file is the one to use.
    """
    arch = config.model.arch
    if not arch.startswith(f"{timm_adapter.PREFIX}:"):
        raise ConfigError(f"finetune trains timm models named '{timm_adapter.PREFIX}:NAME', got model.arch = {arch!r}")
    epochs = config.schedule.epochs
    if not 0 <= freeze_epochs < epochs:
        raise ConfigError(f"freeze_epochs must be in [0, {epochs}) so that some epochs train every layer, got {freeze_epochs}")
    if not 0 < unfrozen_lr_scale <= 1:
        raise ConfigError(f"unfrozen_lr_scale must be in (0, 1], got {unfrozen_lr_scale}")
    hub = str(pretrained) == timm_adapter.HUB
    weights = None if pretrained is None or hub else Path(pretrained).expanduser()
    if weights is not None and (weights.suffix != ".safetensors" or not weights.is_file()):
        raise ConfigError(f"--pretrained {weights}: expected an existing .safetensors file, or 'hub' to download timm's weights")
    timm_adapter.import_timm()  # fail before minutes of data loading
    ds = dataset if dataset is not None else load_training_data(config, progress=config.run.progress)
    name = config.run.name or arch.replace(":", "-")
    src: str | None = str(weights) if weights else None
    frozen_report: dict[str, Any] | None = None  # how the user's weights were loaded: gray folding, trainable count
    if freeze_epochs:
        cfg1 = load_config(overrides=[f"schedule.epochs={freeze_epochs}", "run.name=" + json.dumps(f"{name}-frozen")], base=config)
        with timm_adapter.build_plan(timm_adapter.BuildPlan(weights=src, hub=hub, freeze=True)) as plan:
            first = train(cfg1, dataset=ds)
        _check_used(plan)
        frozen_report = plan.report
        src, hub = str(first.model_path), False
    lr = config.optim.lr * (unfrozen_lr_scale if freeze_epochs else 1.0)
    cfg2 = load_config(overrides=[f"schedule.epochs={epochs - freeze_epochs}", "run.name=" + json.dumps(name), f"optim.lr={lr}"], base=config)
    with timm_adapter.build_plan(timm_adapter.BuildPlan(weights=src, hub=hub, freeze=False)) as plan:
        result = train(cfg2, dataset=ds)
    _check_used(plan)
    result.metrics = {**result.metrics, "finetune": {"pretrained": str(pretrained) if pretrained else None, "freeze_epochs": freeze_epochs,
                                                    "unfrozen_lr": lr, **(plan.report or {}), "frozen_phase": frozen_report}}
    return result


def _check_used(plan: timm_adapter.BuildPlan) -> None:
    if plan.report is None:
        raise ModelError("the trainer built no timm model, so the pretrained weights and freezing were not applied")


__all__ = ["finetune"]
