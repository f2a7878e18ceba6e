"""`emolens train`: train a model; under `torchrun` it trains data-parallel."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from emolens.cli.app import app


class TrainBackend(StrEnum):
    """Who trains: the emolens trainer, or Ultralytics (a YOLOv8-cls model from its yaml)."""

    emolens = "emolens"
    ultralytics = "ultralytics"


@app.command("train")
def train_command(
    config: Annotated[Path | None, typer.Argument(help="YAML or TOML config (see configs/); defaults apply to what it leaves out.")] = None,
    data: Annotated[str | None, typer.Option(help="Dataset: the FER-2013 zip, its folder, fer2013.csv, any folder-per-class set, or 'synthetic'.")] = None,
    model: Annotated[str | None, typer.Option(help="Architecture name (see `emolens.models.list_models()`), e.g. resnet_fer_small.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Number of epochs; with --resume, raise it to train an existing run longer.")] = None,
    name: Annotated[str | None, typer.Option(help="Run folder name under runs/; an existing one is never overwritten.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this folder exactly where its last checkpoint left it.")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override any config key, e.g. --set optim.lr=3e-4 (repeatable).")] = None,
    show_config: Annotated[bool, typer.Option("--show-config", help="Print the resolved config as YAML and exit without training.")] = False,
    backend: Annotated[
        TrainBackend,
        typer.Option(help="Who trains: emolens, or ultralytics (a YOLOv8-cls model from its yaml, e.g. --model yolov8s-cls.yaml; needs the ultralytics extra)."),
    ] = TrainBackend.emolens,
) -> None:
    """Train an emotion model; writes runs/<name>/ with checkpoints, history, curves and best.safetensors."""
    import json

    from emolens.training.config import resolve_config

    ultralytics = TrainBackend(backend) is TrainBackend.ultralytics
    if ultralytics and resume is not None:
        from emolens.errors import ConfigError

        raise ConfigError("--backend ultralytics cannot --resume an emolens run; start a new run")
    cfg = resolve_config(config, data=data, model=model, epochs=epochs, name=name, overrides=overrides, resume=resume)
    if show_config:
        typer.echo(cfg.to_yaml(), nl=False)
        return
    if ultralytics:
        from emolens.training.ultralytics_backend import train_ultralytics

        typer.echo(json.dumps(train_ultralytics(cfg).summary(), indent=1, default=str))
        return
    from emolens.training import train

    result = train(cfg, resume=resume)
    if result.metrics:  # rank 0 only
        typer.echo(json.dumps(result.summary(), indent=1))
