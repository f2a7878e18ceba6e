"""`emolens predict PATH...`: label the faces in images, folders and globs.

Writes an annotated copy of each image and one table (JSON or CSV) with a row per face.
An image without a face is reported, not an error; an unreadable one is reported and
skipped; only when no input at all could be read is the whole call an error.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emolens.errors import ConfigError, DataError
from emolens.pipeline.outputs import free_stem
from emolens.pipeline.recognizer import EmotionRecognizer
from emolens.preprocessing import printable_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm", ".ppm")
FORMATS = ("json", "csv")


@dataclass
class PredictReport:
    images: int = 0  # images read and searched
    faces: int = 0
    no_face: list[str] = field(default_factory=list)  # images read, but with no face found
    errors: list[str] = field(default_factory=list)  # one message per input that could not be read
    rows: list[dict[str, Any]] = field(default_factory=list)  # one summary dict per face
    annotated: list[Path] = field(default_factory=list)
    table: Path | None = None

    def to_df(self):
        import pandas as pd

        return pd.DataFrame(self.rows)


def _not_regular(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        return "dangling symbolic link"
    return "not a regular file (a pipe, socket or device)"


def expand_inputs(paths: list[str | Path], recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Files named by paths, folders (their images) and glob patterns; plus one error message
    per argument that names nothing."""
    files: list[Path] = []
    errors: list[str] = []
    for arg in paths:
        text = str(arg)
        if any(c in text for c in "*?[") and not Path(text).exists():
            found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not found:
                errors.append(f"{text}: the pattern matches no file")
            files += found
            continue
        path = Path(text)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            named = sorted(p for p in path.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
            found = [p for p in named if p.is_file()]
            # A dangling link, a pipe or a device named like an image: reported, never opened.
            errors += [f"{printable_path(p)}: {_not_regular(p)}; skipped" for p in named if not p.is_file()]
            if not found:
                errors.append(f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES[:4])}, ...)" + ("" if recursive else "; use --recursive for subfolders"))
            files += found
        elif path.is_file():
            files.append(path)
        elif path.exists() or path.is_symlink():
            errors.append(f"{printable_path(path)}: {_not_regular(path)}; skipped")
        else:
            errors.append(f"{printable_path(path)}: no such file or folder")
    errors = list(dict.fromkeys(errors))  # a pipe in a folder and named again: one message
    seen: set[Path] = set()
    unique = []
    for f in files:  # the same file named twice (a folder and a glob) is read once
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    return unique, errors


def predict_images(
    paths: list[str | Path], model: Any = None, *, detector: str = "haar", backend: str = "torch", output: str | Path = "runs/predict",
    format: str = "json", save: bool = True, min_face_size: int | None = None, tta: str = "none", recursive: bool = False,
    overwrite: bool = False, detector_threshold: float | None = None, recognizer: EmotionRecognizer | None = None,
    on_image: Any = None,
) -> PredictReport:
    """Find and label the faces in every image; write annotated copies and a table into `output`.

    format: "json" (a list of face dicts) or "csv" (a flat row per face), written to
    output/predictions.json|csv. save=False writes the table only. detector_threshold drops
    faces the detector is less sure of (its confidence, in [0, 1]). Existing files are never
    replaced unless overwrite=True: new names get -2, -3, ... on_image(path, result or None,
    error or None) is called after each input, for progress messages.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    files, errors = expand_inputs(paths, recursive)
    report = PredictReport(errors=list(errors))
    for message in errors:  # each one named, as the images that fail to decode are
        if on_image:
            on_image(None, None, message)
    if not files:
        raise DataError("nothing to do: " + "; ".join(errors) if errors else "nothing to do: no input paths given")
    rec = recognizer or EmotionRecognizer(
        model, detector=detector, backend=backend, tta=tta, min_face_size=min_face_size,
        detector_options={"threshold": detector_threshold} if detector_threshold is not None else None,
    )
    out_dir = Path(output)
    taken: set[Path] = set()
    for path in files:
        try:
            result = rec.predict(path, name=printable_path(path.name))
        except DataError as exc:
            report.errors.append(str(exc))
            if on_image:
                on_image(path, None, str(exc))
            continue
        report.images += 1
        report.faces += len(result)
        shown = printable_path(path)  # a name that is not UTF-8 would break the JSON/CSV table
        if not result.faces:
            report.no_face.append(shown)
        report.rows += [{"path": shown, **row} for row in result.summary()]
        if save:
            out_dir.mkdir(parents=True, exist_ok=True)
            suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png") else ".jpg"
            stem = free_stem(out_dir, printable_path(path.stem), [suffix], overwrite=overwrite, taken=taken)
            report.annotated.append(result.save(out_dir / f"{stem}{suffix}", overwrite=True))
        if on_image:
            on_image(path, result, None)
    if report.images == 0:
        raise DataError(f"no image could be read ({len(report.errors)} failed): " + "; ".join(report.errors[:5]))
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / f"{free_stem(out_dir, 'predictions', ['.' + format], overwrite=overwrite, taken=taken)}.{format}"
    if format == "json":
        table.write_text(json.dumps(report.rows, indent=2) + "\n")
    else:
        import pandas as pd

        flat = []
        for r in report.rows:
            flat.append({k: v for k, v in r.items() if k not in ("box", "scores")} | r["box"] | r["scores"])
        columns = ["path", "image", "face", "face_id", "x", "y", "w", "h", "label", "score", "detection_confidence", *rec.labels]
        pd.DataFrame(flat, columns=columns).to_csv(table, index=False)
    report.table = table
    return report
