"""`emolens predict PATH...`: label the faces in images, folders and globs.

Writes an annotated copy of each image and one table (JSON or CSV) with a row per face.
An image without a face is reported, not an error; an unreadable one is reported and
skipped; only when no input at all could be read is the whole call an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emolens.errors import ConfigError, DataError
from emolens.labels import EMOTIONS
from emolens.paths import free_stem
from emolens.pipeline.inputs import IMAGE_SUFFIXES, expand_inputs
from emolens.pipeline.recognizer import EmotionRecognizer
from emolens.pipeline.results import ImageResult, flat_row, table_columns
from emolens.preprocessing import printable_path

__all__ = ["FORMATS", "IMAGE_SUFFIXES", "PredictReport", "expand_inputs", "predict_images"]

FORMATS = ("json", "csv")


@dataclass
class PredictReport:
    images: int = 0  # images read and searched
    faces: int = 0
    no_face: list[str] = field(default_factory=list)  # images read, but with no face found
    errors: list[str] = field(default_factory=list)  # one message per input that could not be read
    rows: list[dict[str, Any]] = field(default_factory=list)  # one summary dict per face, with its path first
    annotated: list[Path] = field(default_factory=list)
    table: Path | None = None
    labels: tuple[str, ...] = EMOTIONS

    def table_rows(self) -> list[dict[str, Any]]:
        """The CSV's rows: `ImageResult.rows()` of every image, with path as the leading column."""
        return [flat_row(r) for r in self.rows]

    def to_df(self):
        import pandas as pd

        return pd.DataFrame(self.table_rows(), columns=table_columns(self.labels, ["path"]))


def predict_images(
    paths: list[str | Path], recognizer: EmotionRecognizer | Any = None, *, output: str | Path = "runs/predict",
    format: str = "json", save: bool = True, recursive: bool = False, overwrite: bool = False, on_image: Any = None,
    crops: bool = False,
) -> PredictReport:
    """Find and label the faces in every image; write annotated copies and a table into `output`.

    recognizer: an EmotionRecognizer (its model, detector and options), or a model for one
    built with the PIPELINE defaults (a path; None: the shipped model). format: "json" (a
    list of face dicts) or "csv" (`ImageResult.rows()` with a leading path column), written to
    output/predictions.json|csv. save=False writes the table only. Existing files are never
    replaced unless overwrite=True: new names get -2, -3, ... on_image(path, result or None,
    error or None) is called after each input, for progress messages. crops=True: each image
    is one face, already cropped (`EmotionRecognizer.predict(crops=True)`): one row per image.
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
    rec = EmotionRecognizer.of(recognizer)
    report.labels = rec.labels
    out_dir = Path(output)
    taken: set[Path] = set()
    for path in files:
        try:
            result = rec.predict(path, name=printable_path(path.name), crops=crops)
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
            report.annotated.append(_save_annotated(result, path, out_dir, overwrite=overwrite, taken=taken))
        if on_image:
            on_image(path, result, None)
    if report.images == 0:
        raise DataError(f"no image could be read ({len(report.errors)} failed): " + "; ".join(report.errors[:5]))
    report.table = _write_table(report, out_dir, format, overwrite=overwrite, taken=taken)
    return report


def _save_annotated(result: ImageResult, path: Path, out_dir: Path, *, overwrite: bool, taken: set[Path]) -> Path:
    """The annotated copy of the image at `path`, under a name free in `out_dir` (JPEG unless it was a PNG)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png") else ".jpg"
    stem = free_stem(out_dir, printable_path(path.stem), [suffix], overwrite=overwrite, taken=taken)
    return result.save(out_dir / f"{stem}{suffix}", overwrite=True)


def _write_table(report: PredictReport, out_dir: Path, format: str, *, overwrite: bool, taken: set[Path]) -> Path:
    """Every face's row as predictions.json (a list of face dicts) or predictions.csv, under a free name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / f"{free_stem(out_dir, 'predictions', ['.' + format], overwrite=overwrite, taken=taken)}.{format}"
    if format == "json":
        table.write_text(json.dumps(report.rows, indent=2) + "\n")
    else:
        report.to_df().to_csv(table, index=False)
    return table
