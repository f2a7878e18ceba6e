"""`emolens predict`, `video` and `webcam`: faces in photos, videos and cameras (`export` is in cli/export.py)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from emolens.cli.app import app
from emolens.pipeline.defaults import PIPELINE
from emolens.runtime.backends import BackendName as Backend  # the one list of backends, shared with create_backend

ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="Model file (.safetensors, .onnx or .tflite), run folder, or a shipped model: default (FER+ labels) or fer2013 (FER-2013 labels).", show_default=False)
]
DetectorOpt = Annotated[
    str, typer.Option("--detector", help="Face detector: auto (the best one installed), haar, haar-multiview, centerface, mtcnn, dlib, dlib-cnn, mediapipe, yunet:MODEL.onnx; options may follow, e.g. centerface,work_px=16. `emolens detectors` lists them: installed, found, install.")
]
MinFaceOpt = Annotated[int | None, typer.Option(min=8, help="Smallest face side to look for, in pixels. Smaller finds more faces, slower.", show_default=False)]


class TableFormat(StrEnum):
    json = "json"
    csv = "csv"


ThresholdOpt = Annotated[
    float | None,
    typer.Option(min=0.0, max=1.0, help="Drop faces the detector is less sure of (confidence 0-1; Haar: 0.5 is a bare pass).", show_default=False),
]
AlignOpt = Annotated[
    bool, typer.Option("--align/--no-align", help="Turn each face upright by its eyes and mouth before reading it (detectors that find landmarks: centerface, mtcnn, yunet, mediapipe).")
]
BackendOpt = Annotated[
    Backend, typer.Option(help="Where the classifier runs: torch, onnx (onnxruntime; an .onnx model always does), or auto (onnx when installed).")
]


@app.command("predict")
def predict_cmd(
    paths: Annotated[list[str], typer.Argument(help="Images, folders of images, or glob patterns ('photos/*.jpg').", show_default=False)],
    model: ModelOpt = None,
    detector: DetectorOpt = PIPELINE.detector,
    backend: BackendOpt = Backend(PIPELINE.backend),
    output: Annotated[Path, typer.Option("--output", "--out", "-o", help="Folder for annotated images and the table. Existing files are kept.")] = Path("runs/predict"),
    format: Annotated[TableFormat, typer.Option("--format", help="Table of faces: json (nested) or csv (a flat row per face).")] = TableFormat.json,
    save: Annotated[bool, typer.Option("--save/--no-save", help="Write annotated images (--no-save: the table only).")] = True,
    min_face_size: MinFaceOpt = None,
    detector_threshold: ThresholdOpt = None,
    tta: Annotated[str, typer.Option(help="Test-time augmentation: none, flip (2x cost) or tencrop (10x).")] = "none",
    align: AlignOpt = PIPELINE.align,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Also search subfolders of folder arguments.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace files of the same name in --output instead of adding -2, -3, ...")] = False,
    crops: Annotated[bool, typer.Option("--crops", help="Each image is one face, already cropped (a dataset's faces, another tool's crops): every image gets a label.")] = False,
    close_up: Annotated[bool, typer.Option("--close-up/--no-close-up", help="Where no face is found, search the image once more for one face filling it.")] = PIPELINE.close_up,
    turned: Annotated[
        bool, typer.Option("--turned/--no-turned", help="Search a photo again turned a quarter or half turn where its faces lie that way or none is found (photos whose EXIF rotation was lost).")
    ] = PIPELINE.turned_photos,
) -> None:
    """Find every face in images and label its emotion: annotated images plus one JSON/CSV row per face."""
    from emolens.errors import Interrupted
    from emolens.pipeline import EmotionRecognizer, predict_images
    from emolens.preprocessing import printable_path

    def on_image(path, result, error) -> None:
        if error:
            typer.echo(f"skipped  {error}", err=True)
            return
        path = printable_path(path)  # a file name that is not UTF-8 cannot be printed as is
        if not result.faces:
            typer.echo(f"no face  {path}")
        else:
            typer.echo(f"{len(result)} face{'s' if len(result) > 1 else ''}  {path}: " + ", ".join(f"{f.label} {f.score:.0%}" for f in result))

    recognizer = EmotionRecognizer(
        model, detector=detector, backend=Backend(backend).value, tta=tta, min_face_size=min_face_size,
        detector_threshold=detector_threshold, align=align, close_up=close_up, turned_photos=turned,
    )
    try:
        report = predict_images(
            paths, recognizer, output=output, format=TableFormat(format).value, save=save, recursive=recursive,
            overwrite=overwrite, on_image=on_image, crops=crops,
        )
    except Interrupted as stop:
        typer.echo(str(stop), err=True)  # what was done and where its table is; main() then says "interrupted"
        raise typer.Exit(130) from None
    typer.echo(
        f"\n{report.images} image{'s' if report.images != 1 else ''} read, {report.faces} face{'s' if report.faces != 1 else ''} found"
        + (f", {len(report.no_face)} without a face" if report.no_face else "")
        + (f", {len(report.errors)} could not be read" if report.errors else "")
    )
    if report.no_face and not crops:
        typer.echo("(images that are faces cropped already: --crops reads each one as a face)")
    if report.annotated:
        typer.echo(f"annotated images in {report.annotated[0].parent}/")
    typer.echo(f"table of faces: {report.table}")


class Bars(StrEnum):
    none = "none"
    largest = "largest"
    all = "all"


SmoothOpt = Annotated[
    float, typer.Option(min=0.0, max=0.99, help="Temporal smoothing of each tracked face's scores (weight of the past): 0 off; higher is steadier but slower to follow a change.")
]
LabelMarginOpt = Annotated[
    float, typer.Option(min=0.0, max=0.99, help="A tracked face keeps its label until another emotion's score leads it by this much: 0 shows the top score's label every frame.")
]
DetectEveryOpt = Annotated[int, typer.Option(min=1, help="Search the whole frame for new faces every N processed frames; in between, known faces are followed.")]
BarsOpt = Annotated[Bars, typer.Option(help="Score bars: for the largest face, all faces, or none. They never cover another face.")]
RotateOpt = Annotated[
    int, typer.Option(help="Turn every frame clockwise by 90, 180 or 270 degrees first: a video filmed sideways whose file lost its rotation, a camera on its side.")
]


def _stream_recognizer(model, detector: str, backend: Backend, min_face_size: int | None, detector_threshold: float | None, align: bool):
    """The recognizer of `video` and `webcam`: the PIPELINE defaults, one classifier thread per stream."""
    from emolens.pipeline import EmotionRecognizer

    return EmotionRecognizer(
        model, detector=detector, backend=Backend(backend).value, min_face_size=min_face_size,
        detector_threshold=detector_threshold, threads=PIPELINE.stream_threads, align=align,
    )


def _stream_options(detect_every: int, smooth: float, bars: Bars, rotate: int = 0, label_margin: float = PIPELINE.label_margin):
    from emolens.pipeline import StreamOptions

    return StreamOptions(detect_every=detect_every, smooth=smooth, bars=Bars(bars).value, rotate=rotate, label_margin=label_margin)


@app.command("video")
def video_cmd(
    source: Annotated[str, typer.Argument(help="Video file (mp4, avi, mov, mkv...) or stream URL.", show_default=False)],
    model: ModelOpt = None,
    detector: DetectorOpt = PIPELINE.detector,
    backend: BackendOpt = Backend(PIPELINE.backend),
    output: Annotated[Path, typer.Option("--output", "--out", "-o", help="Folder for STEM.csv, STEM.annotated.mp4 (H.264, with the source's sound) and STEM.emotions.png.")] = Path("runs/video"),
    every: Annotated[int, typer.Option(min=1, help="Process every N-th frame only (the CSV and output video hold those frames).")] = 1,
    smooth: SmoothOpt = PIPELINE.smooth,
    label_margin: LabelMarginOpt = PIPELINE.label_margin,
    detect_every: DetectEveryOpt = PIPELINE.detect_every,
    bars: BarsOpt = Bars(PIPELINE.bars),
    rotate: RotateOpt = 0,
    min_face_size: MinFaceOpt = None,
    detector_threshold: ThresholdOpt = None,
    align: AlignOpt = PIPELINE.align,
    save_video: Annotated[bool, typer.Option("--video/--no-video", help="Write the annotated video.")] = True,
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Write the emotion-over-time plot.")] = True,
    max_frames: Annotated[int | None, typer.Option(min=1, help="Stop after this many processed frames.", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace earlier outputs of the same name instead of adding -2, -3, ...")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar with frames/s.")] = True,
) -> None:
    """Label the faces of a video: a per-frame CSV, an annotated H.264 video and an emotion-over-time plot, faces tracked with stable ids."""
    from emolens.errors import Interrupted
    from emolens.pipeline import process_video

    try:
        result = process_video(
            source, _stream_recognizer(model, detector, backend, min_face_size, detector_threshold, align),
            stream=_stream_options(detect_every, smooth, bars, rotate, label_margin), output=output, every=every, save_video=save_video, plot=plot,
            max_frames=max_frames, overwrite=overwrite, progress=progress,
        )
    except Interrupted as stop:
        typer.echo(str(stop), err=True)  # the frames done and where their outputs are; main() then says "interrupted"
        raise typer.Exit(130) from None
    typer.echo(
        f"{result.frames} frames processed at {result.processing_fps:.1f} frames/s; faces in {result.frames_with_faces} frames, "
        f"{result.tracks} distinct face{'s' if result.tracks != 1 else ''}"
    )
    for kind, path in result.outputs.items():
        typer.echo(f"{kind:>5}: {path}" + (" (with the source's sound)" if kind == "video" and result.audio else ""))


@app.command("webcam")
def webcam_cmd(
    source: Annotated[str | None, typer.Argument(help="Stream URL or video file instead of a camera.", show_default=False)] = None,
    camera: Annotated[int, typer.Option(min=0, help="Camera number (0 is the first camera).")] = 0,
    model: ModelOpt = None,
    detector: DetectorOpt = PIPELINE.detector,
    backend: BackendOpt = Backend(PIPELINE.backend),
    smooth: SmoothOpt = PIPELINE.smooth,
    label_margin: LabelMarginOpt = PIPELINE.label_margin,
    detect_every: DetectEveryOpt = PIPELINE.detect_every,
    bars: BarsOpt = Bars(PIPELINE.bars),
    rotate: RotateOpt = 0,
    min_face_size: MinFaceOpt = None,
    detector_threshold: ThresholdOpt = None,
    align: AlignOpt = PIPELINE.align,
    snapshot_dir: Annotated[Path, typer.Option(help="Where the s key saves snapshots.")] = Path("."),
    window: Annotated[bool, typer.Option("--window/--no-window", help="Show the live window (--no-window: process only, e.g. with --record).")] = True,
    record: Annotated[Path | None, typer.Option(help="Also write what the window shows to this .mp4 file (H.264).", show_default=False)] = None,
    max_frames: Annotated[int | None, typer.Option(min=1, help="Stop after this many frames.", show_default=False)] = None,
) -> None:
    """Live view: every face labelled, a bar graph of its emotions, the frame rate. Keys: s snapshot, q quit; click a face to keep the bars on it."""
    from emolens.pipeline import run_webcam

    report = run_webcam(
        source, _stream_recognizer(model, detector, backend, min_face_size, detector_threshold, align), camera=camera,
        stream=_stream_options(detect_every, smooth, bars, rotate, label_margin), snapshot_dir=snapshot_dir, window=window, record=record,
        max_frames=max_frames,
    )
    typer.echo(f"{report.frames} frames at {report.fps:.1f} frames/s" + (f"; recorded to {report.recording}" if report.recording else ""))
    for path in report.snapshots:
        typer.echo(f"snapshot: {path}")


@app.command("detectors")
def detectors_cmd() -> None:
    """List the face detectors: which are installed, which one auto picks, what each finds and what installs it."""
    from emolens.faces.registry import DETECTORS, auto_fallback_note, resolve_auto

    auto = resolve_auto()
    typer.echo(f"{'detector':<15} {'here':<13} {'found >=40 px':>13} {'>=20 px':>8}  install / about")
    for info in DETECTORS.values():
        here = "auto picks" if info.name == auto else "installed" if info.installed() else "-"
        found = ("", "") if info.recall is None else (f"{info.recall[0]:.1%}", f"{info.recall[1]:.1%}")
        typer.echo(f"{info.name:<15} {here:<13} {found[0]:>13} {found[1]:>8}  {info.install or 'core'}: {info.summary}")
    typer.echo("found: recall on 394 WIDER FACE photos, `python benchmarks/detection.py` (README, Face detectors)")
    note = auto_fallback_note(auto)
    if note:
        typer.echo(f"note: {note}")
