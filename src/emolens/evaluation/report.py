"""`EvaluationReport`: the result of `evaluate`, with its exports (JSON, Markdown, DataFrame, PNG).

Like an Ultralytics metrics object, every export derives from the same fields: `summary()`
for the headline, `to_dict()` for everything, and `save()` writing them all into one folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from emolens.errors import DataError

REPORT_FILES: tuple[str, ...] = ("report.json", "report.md", "confusion_counts.png", "confusion_normalized.png", "reliability.png")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


@dataclass
class EvaluationReport:
    """How one model did on one split of one dataset. Rates are fractions in [0, 1]."""

    model_name: str
    model_path: str | None  # None when an in-memory model was evaluated
    arch: str
    dataset: str  # the dataset's source (path of the zip, folder or CSV)
    dataset_sha256: str
    split: str
    tta: str
    classes: tuple[str, ...]
    n_images: int
    accuracy: float
    balanced_accuracy: float  # mean per-class recall: what a majority-class guesser cannot game
    macro_f1: float
    nll: float  # mean negative log-likelihood of the calibrated probabilities
    ece: float  # expected calibration error of the calibrated probabilities
    temperature: float  # the model's softmax temperature used for nll, ece and probabilities
    nll_uncalibrated: float  # same at T = 1, to show what calibration buys
    ece_uncalibrated: float
    per_class: list[dict[str, Any]]  # class, precision, recall, f1, support
    confusion: list[list[int]]  # counts; rows = true class, columns = predicted class
    reliability: dict[str, list]  # see emolens.evaluation.calibration.reliability_bins
    dedup: dict[str, Any] | None  # accuracy/macro-F1 on the faces whose pixels are not in train
    timing: dict[str, Any]  # seconds, images_per_s, batch_size, device
    emolens_version: str = ""
    created: str = ""

    # -- exports -----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The headline figures as one flat dict (what the CLI prints and dashboards log)."""
        d = {
            "model": self.model_name, "split": self.split, "tta": self.tta, "n_images": self.n_images,
            "accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy, "macro_f1": self.macro_f1,
            "nll": self.nll, "ece": self.ece, "temperature": self.temperature,
            "images_per_s": self.timing.get("images_per_s"),
        }
        if self.dedup is not None:
            d |= {
                "dedup_n_images": self.dedup["n_images"],
                "dedup_accuracy": self.dedup["accuracy"],
                "dedup_macro_f1": self.dedup["macro_f1"],
            }
        return d

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvaluationReport:
        known = {f.name for f in fields(cls)}
        missing = sorted(known - set(d) - {"emolens_version", "created"})
        if missing:
            raise DataError(f"evaluation report lacks fields {missing}; was it written by EvaluationReport.to_json?")
        d = {k: v for k, v in d.items() if k in known}
        d["classes"] = tuple(d["classes"])
        return cls(**d)

    def to_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> EvaluationReport:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise DataError(f"{path}: no such report file") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from None

    def to_df(self) -> Any:
        """Per-class precision, recall, F1 and support as a pandas DataFrame indexed by class."""
        import pandas as pd

        return pd.DataFrame(self.per_class).set_index("class")

    def headline_rows(self) -> list[tuple[str, str]]:
        """(name, formatted value) pairs shared by the Markdown report and the CLI table."""
        rows = [
            ("accuracy", _pct(self.accuracy)),
            ("balanced accuracy", _pct(self.balanced_accuracy)),
            ("macro-F1", _pct(self.macro_f1)),
            ("NLL", f"{self.nll:.4f}"),
            (f"ECE ({len(self.reliability['count'])} bins)", f"{self.ece:.4f}"),
            ("temperature", f"{self.temperature:.3f}"),
        ]
        if self.dedup is not None:
            label = f"images not in train ({self.dedup['n_images']} of {self.n_images})"
            rows += [(f"accuracy, {label}", _pct(self.dedup["accuracy"])), (f"macro-F1, {label}", _pct(self.dedup["macro_f1"]))]
        ips = self.timing.get("images_per_s")
        rows.append(("speed", f"{ips:,.0f} images/s ({self.timing.get('device')}, batch {self.timing.get('batch_size')})" if ips else "n/a"))
        return rows

    def to_markdown(self, *, figures: bool = False) -> str:
        """A readable report. figures=True links the PNGs that `save` writes beside it."""
        lines = [
            f"# Evaluation of {self.model_name} on {self.split}",
            "",
            f"- model: `{self.model_name}` ({self.arch})" + (f", file `{self.model_path}`" if self.model_path else ""),
            f"- data: `{self.dataset or 'in-memory dataset'}`, split **{self.split}**, {self.n_images} images",
            f"- test-time augmentation: **{self.tta}**; softmax temperature {self.temperature:.3f}",
            f"- emolens {self.emolens_version}, {self.created}",
            "",
            "## Headline",
            "",
            "| metric | value |",
            "|---|---|",
            *(f"| {name} | {value} |" for name, value in self.headline_rows()),
            "",
            f"Without calibration (T = 1): NLL {self.nll_uncalibrated:.4f}, ECE {self.ece_uncalibrated:.4f}.",
        ]
        if self.dedup is not None:
            lines += [
                "",
                f"{self.dedup['n_duplicates']} of the {self.n_images} {self.split} images have exact pixel copies in the train "
                "split; the 'not in train' rows leave them out, so they measure recognition rather than memory.",
            ]
        lines += ["", "## Per class", "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {r['class']} | {_pct(r['precision'])} | {_pct(r['recall'])} | {_pct(r['f1'])} | {r['support']} |" for r in self.per_class]
        lines += ["", "## Confusion matrix (rows: true, columns: predicted)", "", "| true \\ predicted | " + " | ".join(self.classes) + " |"]
        lines += ["|---" * (len(self.classes) + 1) + "|"]
        lines += [f"| **{c}** | " + " | ".join(str(v) for v in row) + " |" for c, row in zip(self.classes, self.confusion, strict=True)]
        if figures:
            lines += [
                "", "![confusion matrix, row-normalised](confusion_normalized.png)", "",
                "![confusion matrix, counts](confusion_counts.png)", "", "![reliability diagram](reliability.png)",
            ]
        return "\n".join(lines) + "\n"

    # -- figures ------------------------------------------------------------------------------

    def plot_confusion(self, path: str | Path, normalize: bool = True) -> Path:
        """Confusion matrix PNG: row-normalised percentages (normalize=True) or raw counts."""
        from emolens.evaluation.plots import plot_confusion_matrix

        kind = "row-normalised" if normalize else "counts"
        title = f"{self.model_name} on {self.split} ({self.n_images} images, TTA {self.tta}): {kind}"
        return plot_confusion_matrix(self.confusion, self.classes, path, normalize=normalize, title=title)

    def plot_reliability(self, path: str | Path) -> Path:
        from emolens.evaluation.calibration import plot_reliability_diagram

        title = f"{self.model_name} on {self.split}: ECE {self.ece:.3f} at T = {self.temperature:.2f}"
        return plot_reliability_diagram(self.reliability, path, title=title)

    def save(self, out_dir: str | Path) -> Path:
        """Write report.json, report.md and the three PNGs into `out_dir`; returns the folder used.

        A folder that already holds any of these files is left untouched: the report goes to the
        first free `out_dir-2`, `out_dir-3`, ... instead (the returned path says which).
        """
        from emolens.paths import free_dir

        out = free_dir(out_dir, REPORT_FILES)
        self.to_json(out / "report.json")
        (out / "report.md").write_text(self.to_markdown(figures=True), encoding="utf-8")
        self.plot_confusion(out / "confusion_counts.png", normalize=False)
        self.plot_confusion(out / "confusion_normalized.png", normalize=True)
        self.plot_reliability(out / "reliability.png")
        return out

    def __str__(self) -> str:
        width = max(len(name) for name, _ in self.headline_rows())
        return "\n".join(f"{name:<{width}}  {value}" for name, value in self.headline_rows())


def class_recall(report: EvaluationReport, name: str) -> float | None:
    """Recall of one class in a report (None when the class has no face in the split)."""
    for row in report.per_class:
        if row["class"] == name:
            return float(row["recall"]) if row["support"] else None
    return None


__all__ = ["REPORT_FILES", "EvaluationReport", "class_recall"]
