"""Class-folder trees, wherever they live (a zip's member names or a folder on disk).

Recognised, below at most two wrapper folders (e.g. the `archive/` many zips add):
- `<split>/<class>/...`: the Kaggle FER-2013 layout (`train/`, `test/`) and any dataset with
  train/val/test folders;
- `<class>/...`: CK+, JAFFE, a user's photos. Images may sit in sub-folders of a class folder.
Class folder names go through `canonical_label`, so `Happiness/`, `HA/` and `happy/` all mean happy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from tqdm.auto import tqdm

from emolens.data.readers.base import (
    IMAGE_SUFFIXES,
    SPLIT_DIRS,
    RawBuilder,
    RawData,
    SkipItem,
    decode_face,
    is_ignored,
    split_from_path,
)
from emolens.errors import DataError
from emolens.labels import EMOTIONS, canonical_label
from emolens.preprocessing import PreprocessConfig

_MAX_WRAPPERS = 2


@dataclass
class TreeItem:
    key: str  # how the reader opens it: zip member name or path relative to the root
    name: str  # how messages and `FaceDataset.names` show it (path below the wrappers)
    class_name: str  # the class folder, as spelt in the source
    label: int | None  # index into EMOTIONS, None when the class is not one of the seven
    split: int  # index into SPLITS, or UNASSIGNED


@dataclass
class TreePlan:
    layout: str  # "split folders" or "class folders"
    items: list[TreeItem] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # one per file or folder left out
    class_dirs: int = 0


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _looks_like_class(name: str, label_map: dict[str, str | None] | None) -> bool:
    key = name.lower()
    return canonical_label(name, label_map) is not None or key in {k.lower() for k in (label_map or {})}


def plan_tree(
    files: list[tuple[str, tuple[str, ...]]], dirs: list[tuple[str, ...]], label_map: dict[str, str | None] | None
) -> TreePlan:
    """Work out which file is which class and split.

    files: (key, path parts relative to the root) of every file; dirs: parts of every folder,
    so that empty class folders can be reported.
    """
    files = [(k, p) for k, p in files if p and not any(is_ignored(x) for x in p)]
    dirs = [d for d in dirs if d and not any(is_ignored(x) for x in d)]

    # Strip wrapper folders: one folder holding everything that is neither a split nor a class.
    for _ in range(_MAX_WRAPPERS):
        tops = {p[0] for _, p in files} | {d[0] for d in dirs}
        if len(tops) != 1 or not files or any(len(p) < 3 for _, p in files):
            break
        top = next(iter(tops))
        if top.lower() in SPLIT_DIRS or _looks_like_class(top, label_map):
            break
        files = [(k, p[1:]) for k, p in files]
        dirs = [d[1:] for d in dirs if len(d) > 1]

    split_tops = {p[0] for _, p in files if len(p) >= 2 and p[0].lower() in SPLIT_DIRS}
    split_tops |= {d[0] for d in dirs if d[0].lower() in SPLIT_DIRS}
    plan = TreePlan(layout="split folders" if split_tops else "class folders")
    class_level = 1 if split_tops else 0  # index of the class folder in a path

    seen_class_dirs: set[tuple[str, ...]] = set()
    for key, parts in files:
        name = "/".join(parts)
        if split_tops and parts[0] not in split_tops:
            if len(parts) > 1:
                plan.messages.append(f"{name}: outside the split folders ({', '.join(sorted(split_tops))}); skipped")
            continue
        if len(parts) <= class_level + 1:
            # A file beside the class folders. Notes (README, LICENSE, CSVs) are expected there.
            if is_image_name(parts[-1]):
                where = f"{parts[0]}/" if class_level else "the dataset root"
                plan.messages.append(f"{name}: image directly in {where}, not inside a class folder; skipped")
            continue
        class_name = parts[class_level]
        seen_class_dirs.add(parts[: class_level + 1])
        canonical = canonical_label(class_name, label_map)
        label = EMOTIONS.index(canonical) if canonical is not None else None
        if label is not None and not is_image_name(parts[-1]):
            # Never read: a video or a pipe in a class folder must cost nothing (the folder hash skips it too).
            suffix = PurePosixPath(parts[-1]).suffix or "no suffix"
            plan.messages.append(f"{name}: not a readable image (suffix {suffix}; expected one of {' '.join(IMAGE_SUFFIXES)}); skipped")
            continue
        plan.items.append(TreeItem(key=key, name=name, class_name=class_name, label=label, split=split_from_path(parts)))

    class_dirs = {d[: class_level + 1] for d in dirs if len(d) > class_level and (not split_tops or d[0] in split_tops)}
    for d in sorted(class_dirs - seen_class_dirs):
        plan.messages.append(f"{'/'.join(d)}/: empty class folder; skipped")
    plan.class_dirs = len(class_dirs | seen_class_dirs)
    return plan


def decode_tree(
    plan: TreePlan, read_bytes: Callable[[str], bytes], out: RawBuilder, cfg: PreprocessConfig, *,
    desc: str, progress: bool, read_errors: tuple[type[BaseException], ...], read_error: Callable[[BaseException], str],
) -> RawData:
    """Decode every planned image into `out`; a file that cannot be read or decoded is reported
    (`read_error(exc)` says why it could not be read) and skipped, and reading goes on."""
    for message in plan.messages:
        out.skip(message)
    for item in tqdm(plan.items, desc=desc, unit="img", disable=not progress, mininterval=0.5):
        if item.label is None:
            out.ignore_class(item.class_name, item.name)
            continue
        try:
            face = decode_face(read_bytes(item.key), item.name, cfg)  # messages name the file as FaceDataset.names does
        except DataError as exc:
            out.skip(f"{exc}; skipped")
            continue
        except SkipItem as exc:
            out.skip(f"{item.name}: {exc}; skipped")
            continue
        except read_errors as exc:
            out.skip(f"{item.name}: {read_error(exc)}; skipped")
            continue
        out.add(face, item.label, item.split, item.name)
    return out.build()
