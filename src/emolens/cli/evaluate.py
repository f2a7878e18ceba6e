"""`emolens evaluate`: measure a model on a dataset split and write a report folder."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from emolens.cli.app import app

if TYPE_CHECKING:  # pragma: no cover
    from emolens.data import FaceDataset

CALIBRATED_NAME = "model-calibrated.safetensors"


# Enums rather than Literal: typer lists their values in --help and rejects others on every supported version.
class Split(StrEnum):
    test = "test"
    val = "val"


class TTA(StrEnum):
    none = "none"
    flip = "flip"
    tencrop = "tencrop"


@app.command("evaluate")
def evaluate_cmd(
    model: Annotated[
        str | None, typer.Argument(help="Model file (.safetensors), training run folder, or a shipped model (default, fer2013). Default: the shipped default.", show_default=False)
    ] = None,
    data: Annotated[
        Path,
        typer.Option(
            "--data", "-d", show_default=False,
            help="Dataset: the Kaggle FER-2013 zip, its extracted folder, fer2013.csv, the FER+ image folders (or their zip), or a folder of class folders.",
        ),
    ] = ...,  # type: ignore[assignment]
    ferplus: Annotated[
        Path | None,
        typer.Option("--ferplus", help="FER+ fer2013new.csv: score against FER+ majority labels (with the Kaggle zip, its folders or fer2013.csv).", show_default=False),
    ] = None,
    split: Annotated[Split, typer.Option(help="Split to measure: test for final figures, val while developing.")] = Split.test,
    tta: Annotated[TTA, typer.Option(help="Test-time augmentation: flip doubles the cost, tencrop is 10x.")] = TTA.none,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder. One holding a report already is kept; a suffixed folder (-2, -3...) is used.")] = Path(
        "runs/evaluate"
    ),
    batch_size: Annotated[int, typer.Option(min=1, help="Faces per forward pass.")] = 256,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="First fit the softmax temperature on the val split, write a new model file with it, and evaluate that model.",
        ),
    ] = False,
    class_bias: Annotated[
        bool,
        typer.Option(
            "--class-bias",
            help="With --calibrate: also fit per-class logit offsets on val that maximise macro-F1 (lifts recall of rare classes).",
        ),
    ] = False,
    min_recall: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="With --class-bias: ask the offsets to lift every class to this val recall (e.g. 0.47).")
    ] = 0.0,
    calibrated_out: Annotated[
        Path | None, typer.Option(help=f"Where --calibrate writes the new model (default: OUT/{CALIBRATED_NAME}). Never overwritten.", show_default=False)
    ] = None,
    device: Annotated[str | None, typer.Option(help="Torch device, e.g. cpu or cuda. Default: cpu.", show_default=False)] = None,
) -> None:
    """Evaluate a model: accuracy, balanced accuracy, macro-F1, per-class figures, confusion matrix, calibration."""
    from emolens.data import load_dataset
    from emolens.data.loading import detect_reader
    from emolens.evaluation import evaluate
    from emolens.evaluation.report import REPORT_FILES
    from emolens.models import read_model_config, resolve_model_path
    from emolens.paths import free_dir

    if class_bias and not calibrate:
        raise typer.BadParameter("--class-bias needs --calibrate (it writes a new model file)", param_hint="--class-bias")
    split, tta = Split(split).value, TTA(tta).value  # plain strings for the Python API
    model_path = resolve_model_path(model)  # a missing model fails before minutes of data loading
    cfg = read_model_config(model_path)
    dataset = load_dataset(data, image_size=cfg.preprocess.image_size, ferplus=ferplus)
    out_dir = free_dir(out, (*REPORT_FILES, CALIBRATED_NAME))
    if out_dir != out:
        typer.echo(f"{out} already holds a report; writing to {out_dir} instead", err=True)

    if calibrate:
        model_path = _calibrate(
            model_path, dataset, calibrated_out or out_dir / CALIBRATED_NAME, tta=tta, batch_size=batch_size, device=device,
            class_bias=class_bias, min_recall=min_recall, labels=cfg.labels,
        )
    report = evaluate(model_path, dataset, split=split, tta=tta, batch_size=batch_size, device=device, progress=True)
    saved = report.save(out_dir)
    typer.echo(f"\n{report.model_name} on {split} of {dataset.source} ({report.n_images} images, TTA {tta})")
    typer.echo(str(report))
    typer.echo(f"\nreport written to {saved}/: {', '.join(REPORT_FILES)}")
    note = _which_labels_note(cfg.metrics, detect_reader(data).format, ferplus)
    if note:
        typer.echo(note)


# Layouts that may carry FER-2013's own labels (the Kaggle zip, its folders, fer2013.csv); the FER+
# image folders carry FER+'s.
_FER2013_LAYOUTS = ("zip", "folder", "fer2013-csv")


def _which_labels_note(metrics: dict, data_format: str, ferplus: Path | None) -> str | None:
    """Where a model that learned FER+'s labels (its recorded FER+ test accuracy well above its
    FER-2013 one: the shipped default) is scored on data that may carry FER-2013's own labels,
    say so and what to run instead: users benchmark on FER-2013 first, and 63.67% would
    otherwise read as a weak model rather than another set of labels."""
    fer2013, ferplus_test = (_accuracy(metrics.get(key)) for key in ("test", "test_ferplus"))  # recorded by tools/ship_model.py
    if ferplus is not None or data_format not in _FER2013_LAYOUTS or fer2013 is None or ferplus_test is None:
        return None
    if ferplus_test < fer2013 + 0.05:
        return None
    return (
        f"note: this model learned FER+'s labels, ten annotators a face ({ferplus_test:.2%} on FER+ test, {fer2013:.2%} on "
        "FER-2013's PrivateTest labels, which disagree with FER+ on 34% of the faces). If these are FER-2013's labels: "
        "--ferplus fer2013new.csv scores against FER+'s majority, and the shipped model fer2013 (emolens evaluate fer2013 --data ...) "
        "learned FER-2013's own labels "
        "(README, \"Which labels\")."
    )


def _accuracy(figures: object) -> float | None:
    value = figures.get("accuracy") if isinstance(figures, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _calibrate(
    model_path: Path, dataset: FaceDataset, out: Path, *, tta: str, batch_size: int, device: str | None, class_bias: bool, min_recall: float,
    labels: tuple[str, ...],
) -> Path:
    """`calibrate_model` on val, its figures echoed; returns the new model file."""
    from emolens.evaluation import calibrate_model

    cal = calibrate_model(
        model_path, dataset, out, tta=tta, batch_size=batch_size, device=device, progress=True, class_bias=class_bias, min_recall=min_recall,
    )
    if cal.class_bias is not None:
        typer.echo(
            f"class offsets fitted on val: {', '.join(f'{n} {b:+.2f}' for n, b in zip(labels, cal.class_bias, strict=True))}; "
            f"val accuracy {cal.val_acc_before:.4f} -> {cal.val_acc_after:.4f}, macro-F1 {cal.val_f1_before:.4f} -> {cal.val_f1_after:.4f}"
        )
    typer.echo(
        f"calibrated on val ({cal.n_images} images): temperature {cal.temperature_before:.3f} -> {cal.temperature:.3f}, "
        f"ECE {cal.ece_before:.4f} -> {cal.ece_after:.4f}, NLL {cal.nll_before:.4f} -> {cal.nll_after:.4f}"
    )
    typer.echo(f"calibrated model written to {cal.path}")
    return cal.path
