"""`emolens export`: a model as an ONNX or TFLite file (fp32 or int8) that describes itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emolens.cli.app import app
from emolens.export.formats import ModelFormat


@app.command("export")
def export_cmd(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model file (.safetensors), run folder, or a shipped model: default or fer2013.", show_default=False)
    ] = None,
    format: Annotated[
        ModelFormat, typer.Option("--format", "-f", help="onnx (onnxruntime; the onnx extra) or tflite (LiteRT, for phones; the tflite extra).")
    ] = ModelFormat.onnx,
    int8: Annotated[bool, typer.Option("--int8", help="Quantise to int8, calibrated on --data's training faces: about 4x smaller, faster on CPU.")] = False,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", "--calibration",
            help="For --int8: any dataset emolens reads (e.g. FER-2013's archive.zip); 512 of its training faces calibrate the int8 scales.",
            show_default=False,
        ),
    ] = None,
    dynamic: Annotated[
        bool, typer.Option("--dynamic", help="With --int8 and no --data: int8 weights only. Needs no faces, but as ONNX runs slower than fp32 on CPUs without VNNI.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "--out", "-o", help="The file to write. Default: MODEL.FORMAT or MODEL.int8.FORMAT here.", show_default=False)
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Export a model to ONNX or TFLite: `--model FILE.onnx` / `FILE.tflite` runs it everywhere emolens takes a model."""
    from emolens.export import export_model

    if data is not None and not int8:
        typer.echo("note: --data only matters with --int8; ignored", err=True)
    result = export_model(model, output, format=ModelFormat(format), int8=int8, calibration=data if int8 else None, dynamic=dynamic, overwrite=overwrite)
    typer.echo(result.describe())
