"""`emolens predict PATH...`: label the faces in images, folders and globs.

Writes an annotated copy of each image and one table (JSON or CSV) with a row per face.
An image without a face is reported, not an error; an unreadable one is reported and
skipped; only when no input at all could be read is the whole call an error.
"""

from __future__ import annotations

import csv
import json
import os
import textwrap
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from emolens.errors import ConfigError, DataError, Interrupted
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
    annotated: list[Path] = field(default_factory=list)
    table: Path | None = None
    labels: tuple[str, ...] = EMOTIONS

    @cached_property
    def rows(self) -> list[dict[str, Any]]:
        """The table read back once, when first asked for: one summary dict per face from JSON, with
        its path first, or the flat rows of a CSV (which leaves landmarks out). The table is
        written as the images are read, never held whole in memory while they are."""
        if self.table is None:
            return []
        if self.table.suffix == ".json":
            return json.loads(self.table.read_text())
        import pandas as pd

        return pd.read_csv(self.table).to_dict("records")

    def table_rows(self) -> list[dict[str, Any]]:
        """The CSV's rows: `ImageResult.rows()` of every image, with path as the leading column."""
        return self.rows if self.table is not None and self.table.suffix == ".csv" else [flat_row(r) for r in self.rows]

    def to_df(self):
        """The table as a pandas DataFrame: `ImageResult.rows()` of every image, path first."""
        import pandas as pd

        return pd.DataFrame(self.table_rows(), columns=table_columns(self.labels, ["path"]))


class _TableWriter:
    """predictions.json (a list of face dicts, as json.dumps(indent=2) writes it) or predictions.csv,
    written a face at a time: a folder of any size costs no memory for its table, and a run
    stopped part way leaves a valid table of the images done."""

    def __init__(self, path: Path, format: str, labels: tuple[str, ...]) -> None:
        self.path, self.format, self.rows = path, format, 0
        # Written beside its name and moved there when closed: a run that reads no image leaves a
        # file the user had under that name (--overwrite) as it was.
        self._part = path.with_name(path.name + ".part")
        self._file = open(self._part, "w", newline="" if format == "csv" else None)  # noqa: SIM115 - closed by close()
        if format == "csv":
            self._csv = csv.DictWriter(self._file, fieldnames=table_columns(labels, ["path"]))
            self._csv.writeheader()
        else:
            self._file.write("[")

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if self.format == "csv":
                self._csv.writerow(flat_row(row))
            else:
                self._file.write(("\n" if self.rows == 0 else ",\n") + textwrap.indent(json.dumps(row, indent=2), "  "))
            self.rows += 1
        self._file.flush()

    def close(self, keep: bool = True) -> None:
        """Finish the table and move it to its name (keep=False: remove it)."""
        if self._file.closed:
            return
        if self.format == "json":
            self._file.write(("\n]" if self.rows else "]") + "\n")
        self._file.close()
        if keep:
            os.replace(self._part, self.path)
        else:
            self._part.unlink(missing_ok=True)


def predict_images(
    paths: list[str | Path], recognizer: EmotionRecognizer | Any = None, *, output: str | Path = "runs/predict",
    format: str = "json", save: bool = True, recursive: bool = False, overwrite: bool = False, on_image: Any = None,
    crops: bool = False,
) -> PredictReport:
    """Find and label the faces in every image; write annotated copies and a table into `output`.

    recognizer: an EmotionRecognizer (its model, detector and options), or a model for one
    built with the PIPELINE defaults (a path; None: the shipped model). format: "json" (a
    list of face dicts) or "csv" (`ImageResult.rows()` with a leading path column), written to
    output/predictions.json|csv as the images are read (Ctrl-C leaves the table of those done and
    raises `Interrupted` naming it). save=False writes the table only. Existing files are never
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
    writer = _TableWriter(_table_path(out_dir, format, overwrite=overwrite, taken=taken), format, rec.labels)
    try:
        for path in files:
            _predict_one_file(path, rec, report, writer, on_image, save=save, crops=crops, out_dir=out_dir, overwrite=overwrite, taken=taken)
    except KeyboardInterrupt:  # `finally` closes the table, keeping the images done
        raise Interrupted(f"{report.images} of {len(files)} images done" + (f"; their table: {writer.path}" if report.images else "")) from None
    finally:
        writer.close(keep=report.images > 0)
    if report.images == 0:
        raise DataError(f"no image could be read ({len(report.errors)} failed): " + "; ".join(report.errors[:5]))
    report.table = writer.path
    return report


def _predict_one_file(
    path: Path, rec: EmotionRecognizer, report: PredictReport, writer: _TableWriter, on_image: Any, *, save: bool, crops: bool,
    out_dir: Path, overwrite: bool, taken: set[Path],
) -> None:
    """One image of the batch: its faces to the table and the report, its annotated copy saved;
    an image that cannot be read is reported and the batch goes on."""
    try:
        result = rec.predict(path, name=printable_path(path.name), crops=crops)
    except DataError as exc:
        report.errors.append(str(exc))
        if on_image:
            on_image(path, None, str(exc))
        return
    report.images += 1
    report.faces += len(result)
    shown = printable_path(path)  # a name that is not UTF-8 would break the JSON/CSV table
    if not result.faces:
        report.no_face.append(shown)
    writer.write([{"path": shown, **row} for row in result.summary()])
    if save:
        report.annotated.append(_save_annotated(result, path, out_dir, overwrite=overwrite, taken=taken))
    if on_image:
        on_image(path, result, None)


def _save_annotated(result: ImageResult, path: Path, out_dir: Path, *, overwrite: bool, taken: set[Path]) -> Path:
    """The annotated copy of the image at `path`, under a name free in `out_dir` (JPEG unless it was a PNG)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png") else ".jpg"
    stem = free_stem(out_dir, printable_path(path.stem), [suffix], overwrite=overwrite, taken=taken)
    return result.save(out_dir / f"{stem}{suffix}", overwrite=True)


def _table_path(out_dir: Path, format: str, *, overwrite: bool, taken: set[Path]) -> Path:
    """Where the table of faces goes: predictions.json|csv in `out_dir`, under a free name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir / f"{free_stem(out_dir, 'predictions', ['.' + format], overwrite=overwrite, taken=taken)}.{format}"
