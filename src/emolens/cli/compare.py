"""Commands for comparing approaches: `baseline`, `study imbalance`, `finetune`, `export-dataset`.

Each calls the Python function of the same name with the same argument names.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from emolens.cli.app import app
from emolens.export.formats import DatasetFormat

study_app = typer.Typer(help="Compare training strategies on one budget; writes a table.", no_args_is_help=True)
app.add_typer(study_app, name="study")


def _split_list(items: list[str] | None) -> list[str] | None:
    """Repeatable options also accept comma lists: --features hog,pca."""
    if not items:
        return None
    return [x.strip() for item in items for x in item.split(",") if x.strip()]


class EvalSplit(StrEnum):
    test = "test"
    val = "val"


@app.command("baseline")
def baseline_cmd(
    data: Annotated[str, typer.Option("--data", "-d", help="Dataset: FER-2013 zip or folder, fer2013.csv, a folder of class folders, or 'synthetic'.")],
    features: Annotated[list[str] | None, typer.Option("--features", "-f", help="hog and/or pca (repeatable, or comma-separated). Default: hog.")] = None,
    classifiers: Annotated[
        list[str] | None,
        typer.Option("--classifiers", "-c", help="linear_svm, rbf_svm (Nystroem approximation), random_forest, mlp (repeatable or comma-separated). Default: linear_svm."),
    ] = None,
    params: Annotated[list[str] | None, typer.Option("--param", "-p", help="Component setting, e.g. linear_svm.C=0.1 or pca.n_components=100 (repeatable).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for models, reports and baselines.md/csv/json; a non-empty one is kept and OUT-2 used.")] = Path(
        "runs/baselines"
    ),
    split: Annotated[EvalSplit, typer.Option(help="Split to report: test for final figures, val while choosing settings.")] = EvalSplit.test,
    seed: Annotated[int, typer.Option(help="Seeds PCA, the classifiers and the train_fraction draw.")] = 0,
    train_fraction: Annotated[float, typer.Option(min=1e-6, max=1.0, help="Fit on a stratified share of train, for quick checks.")] = 1.0,
    imbalance: Annotated[
        list[str] | None,
        typer.Option("--imbalance", help="none, smote, smote_enn (repeatable or comma-separated): also fit every classifier on SMOTE-resampled features. Default: none."),
    ] = None,
) -> None:
    """Fit classic baselines (HOG/PCA features + SVM/forest/MLP) and report them like `emolens evaluate`."""
    from emolens.baselines import parse_param_overrides, run_baselines

    cmp = run_baselines(
        data,
        features=_split_list(features) or ["hog"],
        classifiers=_split_list(classifiers) or ["linear_svm"],
        params=parse_param_overrides(params),
        out=out,
        split=EvalSplit(split).value,
        seed=seed,
        train_fraction=train_fraction,
        imbalance=_split_list(imbalance) or ["none"],
        progress=True,
    )
    if cmp.out_dir is not None and cmp.out_dir != out:
        typer.echo(f"{out} is not empty; wrote to {cmp.out_dir} instead", err=True)
    typer.echo(cmp.to_markdown())
    typer.echo(f"models, reports and tables in {cmp.out_dir}")


@study_app.command("imbalance")
def study_imbalance_cmd(
    data: Annotated[str, typer.Option("--data", "-d", help="Dataset: FER-2013 zip or folder, fer2013.csv, a folder of class folders, or 'synthetic'.")],
    model: Annotated[str, typer.Option(help="Architecture trained under every strategy (see emolens.models.list_models()).")] = "simple_cnn",
    budget_epochs: Annotated[int, typer.Option(min=1, help="Epochs per strategy: all of them, or the cap with --patience.")] = 3,
    patience: Annotated[int, typer.Option(min=0, help="Stop a strategy after this many epochs without a better schedule.monitor (its plateau); 0 = train the whole budget.")] = 0,
    strategies: Annotated[
        list[str] | None,
        typer.Option("--strategies", help="Subset to run (repeatable or comma-separated). Default: none, undersample, oversample, class_weights, focal, smote, smote_enn."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Training config (YAML/TOML) shared by every strategy.")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Training setting for every strategy, e.g. --set schedule.max_steps_per_epoch=40.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Study folder (runs, reports, study.md/csv/json); a non-empty one is kept and OUT-2 used.")] = Path(
        "runs/study-imbalance"
    ),
    seed: Annotated[int, typer.Option(help="The one seed every strategy trains with.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the study in --out with the same settings: finished strategies are kept, the running one resumes.")] = False,
) -> None:
    """Train one architecture under each class-imbalance strategy on the same budget; write the comparison table."""
    from emolens.studies import STRATEGIES, run_imbalance_study

    study = run_imbalance_study(
        data, model=model, budget_epochs=budget_epochs, patience=patience, strategies=_split_list(strategies) or list(STRATEGIES),
        config=config, overrides=overrides, out=out, seed=seed, resume=resume,
    )
    typer.echo(study.to_markdown())
    typer.echo(f"table: {study.files.get('md')}")


@app.command("export-dataset")
def export_dataset_cmd(
    path: Annotated[Path, typer.Argument(help="Any dataset emolens reads: FER-2013 zip or folder, fer2013.csv, a folder of class folders.")],
    out: Annotated[Path, typer.Argument(help="New or empty folder to write; existing files are never touched.")],
    format: Annotated[DatasetFormat, typer.Option("--format", help="Layout to write: ultralytics-cls = OUT/{train,val,test}/<class>/*.png.")] = DatasetFormat.ultralytics_cls,
) -> None:
    """Export a dataset for another toolkit, e.g. `yolo classify train data=OUT`."""
    from emolens.export import export_dataset

    counts = export_dataset(path, out, format=DatasetFormat(format))
    for split, per_class in counts.items():
        typer.echo(f"{split:>5}: {sum(per_class.values()):6d} images  " + "  ".join(f"{c} {n}" for c, n in per_class.items()))
    typer.echo(f"written to {out}")


@app.command("finetune")
def finetune_cmd(
    config: Annotated[Path | None, typer.Argument(help="Training config (YAML/TOML); defaults apply to what it leaves out.")] = None,
    data: Annotated[str | None, typer.Option(help="Dataset, as for `emolens train`.")] = None,
    model: Annotated[str | None, typer.Option(help="A timm architecture as timm:NAME, e.g. timm:resnet18 (needs the timm extra).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Total epochs, frozen ones included.")] = None,
    name: Annotated[str | None, typer.Option(help="Run folder name; the frozen phase writes NAME-frozen.")] = None,
    pretrained: Annotated[
        str | None, typer.Option(help="Local .safetensors weights to start from, or 'hub' to let timm download its own (online). Default: random init.")
    ] = None,
    freeze_epochs: Annotated[int, typer.Option(min=0, help="Epochs that train only the new classifier before every layer is unfrozen.")] = 1,
    unfrozen_lr_scale: Annotated[float, typer.Option(help="Learning rate of the unfrozen phase, as a share of optim.lr.")] = 0.1,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override any training key, e.g. --set optim.lr=3e-4 (repeatable).")] = None,
) -> None:
    """Transfer learning: fine-tune a timm model on faces, frozen first, then unfrozen."""
    import json

    from emolens.training.config import resolve_config
    from emolens.training.finetune import finetune

    cfg = resolve_config(config, data=data, model=model, epochs=epochs, name=name, overrides=overrides)
    result = finetune(cfg, pretrained=pretrained, freeze_epochs=freeze_epochs, unfrozen_lr_scale=unfrozen_lr_scale)
    typer.echo(json.dumps(result.summary(), indent=1, default=str))
