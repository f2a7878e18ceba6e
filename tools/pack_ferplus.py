"""A smaller copy of the FER+ image folders, for a machine whose upload is capped.

    python tools/pack_ferplus.py ../shared/datasets/ferplus/ferplus-images.zip .data/ferplus-trainval.zip

The GPU machine the project borrows takes at most 64 MiB of files per call, with the checkout;
`ferplus-images.zip` is 70 MB. This keeps only the folders training reads (FER2013Train and
FER2013Valid by default: the test split is measured on the CPU afterwards) and re-encodes each
face as lossless WebP, renaming it in its `label.csv` so the copy is the same layout and decodes
to the same pixels (checked per face). Dropping folders does most of the work: FER2013Train alone
packs into 50.4 MB against its 51.9 MB in the original zip, in 13.5 min on 2 cores
(`--splits FER2013Train`, 2026-12-03).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

SPLIT_DIRS = ("FER2013Train", "FER2013Valid", "FER2013Test")


def webp_of(png: bytes, name: str) -> bytes:
    """Lossless WebP of one face; refuses a face whose pixels would not survive the round trip."""
    with Image.open(io.BytesIO(png)) as image:
        pixels = np.asarray(image.convert("L"))
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "WEBP", lossless=True, quality=100, method=6)
    with Image.open(io.BytesIO(out.getvalue())) as back:
        if not np.array_equal(np.asarray(back.convert("L")), pixels):
            raise SystemExit(f"{name}: lossless WebP changed its pixels; not packed")
    return out.getvalue()


def pack_split(src: zipfile.ZipFile, dst: zipfile.ZipFile, split_dir: str) -> int:
    """Copy one split folder, faces as WebP, its label.csv naming them; returns the face count."""
    label_name = next((n for n in src.namelist() if PurePosixPath(n).parts[-2:] == (split_dir, "label.csv")), None)
    if label_name is None:
        raise SystemExit(f"{src.filename}: no {split_dir}/label.csv")
    folder = str(PurePosixPath(label_name).parent)
    rows = list(csv.reader(src.read(label_name).decode("utf-8-sig").splitlines()))
    out_rows = []
    for row in rows:
        if not row:
            continue
        webp_name = str(PurePosixPath(row[0]).with_suffix(".webp"))
        dst.writestr(f"{split_dir}/{webp_name}", webp_of(src.read(f"{folder}/{row[0]}"), row[0]), zipfile.ZIP_STORED)
        out_rows.append([webp_name, *row[1:]])
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(out_rows)
    dst.writestr(f"{split_dir}/label.csv", text.getvalue(), zipfile.ZIP_DEFLATED)
    return len(out_rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="ferplus-images.zip (Microsoft's FER+ folder layout, zipped)")
    ap.add_argument("out", type=Path, help="the smaller zip to write (must not exist)")
    ap.add_argument("--splits", nargs="+", default=["FER2013Train", "FER2013Valid"], choices=SPLIT_DIRS)
    args = ap.parse_args(argv)
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; not overwritten")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".partial")
    with zipfile.ZipFile(args.source) as src, zipfile.ZipFile(partial, "w") as dst:
        for split_dir in args.splits:
            print(f"{split_dir}: {pack_split(src, dst, split_dir)} faces", file=sys.stderr)
    partial.rename(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)", file=sys.stderr)


if __name__ == "__main__":
    main()
