"""What is in a dataset: class x split counts and exact-duplicate faces.

Duplicates are found by hashing each face's decoded pixels, so two files that decode to the same
pixels count as one picture. Duplicates across splits inflate test accuracy (the network has seen
those very pixels in training); `duplicate_mask` lets an evaluation report accuracy without them.

    >>> st = dataset_stats(load_dataset("archive.zip"))
    >>> print(st.to_markdown()); st.plot("classes.png"); st.duplicates["across"]["train&test"]
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emolens.data.dataset import SPLITS, FaceDataset
from emolens.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def pixel_hashes(images: np.ndarray) -> np.ndarray:
    """(N,) 16-byte blake2b digests of each face's pixels, as an array of bytes objects `S16`."""
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return np.array([hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat], dtype="S16")


def _split_index(split: str) -> int:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    return SPLITS.index(split)


def duplicate_mask(dataset: FaceDataset, split: str = "test", against: str = "train") -> np.ndarray:
    """Boolean mask over the rows of `dataset.subset(split)`: True where the same pixels occur in
    `against` (when split == against: elsewhere in the same split).

        >>> keep = ~duplicate_mask(ds, "test", "train")   # test faces never seen in training
        >>> accuracy(pred[keep], ds.subset("test").labels[keep])
    """
    s, a = _split_index(split), _split_index(against)
    hashes = pixel_hashes(dataset.images)
    rows = hashes[dataset.split == s]
    if s == a:
        _, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
        return counts[inverse] > 1
    return np.isin(rows, hashes[dataset.split == a])


@dataclass
class DatasetStats:
    """Counts and duplicates of one dataset. Every export derives from `summary()`."""

    source: str
    source_sha256: str
    classes: tuple[str, ...]
    splits: tuple[str, ...]  # the splits present, in SPLITS order
    counts: dict[str, dict[str, int]]  # split -> class -> images
    duplicates: dict[str, Any] = field(default_factory=dict)
    image_size: int = 0
    skipped: int = 0
    skipped_items: list[str] = field(default_factory=list)  # one message per item left out, naming it

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source, "source_sha256": self.source_sha256, "image_size": self.image_size,
            "classes": list(self.classes), "splits": list(self.splits), "counts": self.counts,
            "totals": {s: sum(c.values()) for s, c in self.counts.items()}, "images": sum(sum(c.values()) for c in self.counts.values()),
            "skipped": self.skipped, "skipped_items": list(self.skipped_items), "duplicates": self.duplicates,
        }

    def skipped_text(self) -> str:
        """Every skipped item, one per line ("" when none was skipped)."""
        if not self.skipped_items:
            return ""
        return "\n".join([f"skipped {len(self.skipped_items)} items:", *(f"  - {m}" for m in self.skipped_items)])

    def table(self) -> pd.DataFrame:
        """Classes (rows, plus "total") x splits (columns, plus "total")."""
        import pandas as pd

        df = pd.DataFrame({s: [self.counts[s][c] for c in self.classes] for s in self.splits}, index=list(self.classes), dtype="int64")
        df["total"] = df.sum(axis=1)
        df.loc["total"] = df.sum(axis=0)
        df.index.name = "class"
        return df

    def to_markdown(self) -> str:
        df = self.table()
        head = ["class", *df.columns]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join([str(idx), *(str(int(v)) for v in row)]) + " |" for idx, row in zip(df.index, df.to_numpy(), strict=True)]
        return "\n".join(lines)

    def duplicates_text(self) -> str:
        d = self.duplicates
        lines = [f"exact-duplicate faces (same decoded pixels): {d['groups']} groups holding {d['images_in_groups']} images; "
                 f"{d['distinct_images']} distinct of {d['images']}"]
        for s, v in d["within"].items():
            lines.append(f"  within {s}: {v['images']} images in {v['groups']} groups")
        for pair, v in d["across"].items():
            a, b = pair.split("&")
            lines.append(f"  {a} ∩ {b}: {v['groups']} shared pixel groups; {v[a]} {a} images, {v[b]} {b} images")
        lines.append(f"  groups with conflicting labels: {d['conflicting_label_groups']} ({d['conflicting_label_images']} images)")
        return "\n".join(lines)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.summary(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def plot(self, path: str | Path | None = None) -> Any:
        """Grouped bar chart, one bar per split for each class. Saves a PNG when `path` is given;
        returns the matplotlib Figure."""
        # A bare Figure renders with Agg and leaves pyplot's global state (and backend) alone.
        import matplotlib
        from matplotlib.figure import Figure

        fig = Figure(figsize=(max(6.0, 1.1 * len(self.classes) + 2), 4.2), dpi=120)
        ax = fig.subplots()
        x = np.arange(len(self.classes))
        width = 0.8 / max(1, len(self.splits))
        colors = matplotlib.colormaps["tab10"].colors
        for i, s in enumerate(self.splits):
            values = [self.counts[s][c] for c in self.classes]
            bars = ax.bar(x + (i - (len(self.splits) - 1) / 2) * width, values, width, label=f"{s} ({sum(values)})", color=colors[i % 10])
            ax.bar_label(bars, fontsize=6, padding=1)
        ax.set_xticks(x, self.classes)
        ax.set_ylabel("images")
        ax.set_title(f"{Path(self.source.split(' (')[0]).name or 'dataset'}: images per class and split")
        ax.legend(frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig

    def save(self, out: str | Path) -> dict[str, Path]:
        """Write stats.md, stats.json and stats.png into `out` (created if needed). Existing
        files are never overwritten: a numbered suffix (stats-1.json, ...) is used instead."""
        out = Path(out).expanduser()
        if out.exists() and not out.is_dir():
            raise DataError(f"{out} exists and is not a folder; pass --out a folder (it will be created)")
        out.mkdir(parents=True, exist_ok=True)
        stem, n = "stats", 0
        while any((out / f"{stem}{ext}").exists() for ext in (".md", ".json", ".png")):
            n += 1
            stem = f"stats-{n}"
        paths = {"markdown": out / f"{stem}.md", "json": out / f"{stem}.json", "plot": out / f"{stem}.png"}
        skipped = f"\n```\n{self.skipped_text()}\n```\n" if self.skipped_items else ""
        paths["markdown"].write_text(self.to_markdown() + "\n\n```\n" + self.duplicates_text() + "\n```\n" + skipped)
        self.to_json(paths["json"])
        self.plot(paths["plot"])
        return paths


def _duplicates(dataset: FaceDataset, splits: tuple[str, ...]) -> dict[str, Any]:
    hashes = pixel_hashes(dataset.images)
    uniq, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    in_group = counts[inverse] > 1
    # A group conflicts when its members do not all carry the same label.
    lab_min = np.full(len(uniq), np.iinfo(np.int64).max)
    lab_max = np.full(len(uniq), -1)
    np.minimum.at(lab_min, inverse, dataset.labels)
    np.maximum.at(lab_max, inverse, dataset.labels)
    conflicting = lab_min != lab_max
    result: dict[str, Any] = {
        "images": len(hashes),
        "distinct_images": len(uniq),
        "groups": int((counts > 1).sum()),
        "images_in_groups": int(in_group.sum()),
        "conflicting_label_groups": int(conflicting.sum()),
        "conflicting_label_images": int(conflicting[inverse].sum()),
        "within": {},
        "across": {},
    }
    per_split = {s: hashes[dataset.split == SPLITS.index(s)] for s in splits}
    for s, h in per_split.items():
        _, inv, cnt = np.unique(h, return_inverse=True, return_counts=True)
        result["within"][s] = {"images": int((cnt[inv] > 1).sum()), "groups": int((cnt > 1).sum())}
    for a, b in combinations(splits, 2):
        shared = np.intersect1d(per_split[a], per_split[b])
        result["across"][f"{a}&{b}"] = {
            "groups": len(shared), a: int(np.isin(per_split[a], shared).sum()), b: int(np.isin(per_split[b], shared).sum()),
        }
    return result


def dataset_stats(dataset: FaceDataset) -> DatasetStats:
    """Class x split counts and exact-duplicate statistics of a loaded dataset."""
    splits = tuple(s for s in SPLITS if dataset.has_split(s))
    return DatasetStats(
        source=dataset.source, source_sha256=dataset.source_sha256, classes=tuple(dataset.classes), splits=splits,
        counts={s: dataset.class_counts(s) for s in splits}, duplicates=_duplicates(dataset, splits),
        image_size=dataset.image_size, skipped=len(dataset.skipped), skipped_items=list(dataset.skipped),
    )
