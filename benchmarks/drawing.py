"""Where the labels and score bars of annotated photos land, on real WIDER FACE photos.

    python benchmarks/drawing.py --data ../shared/datasets/widerface-val5
    python benchmarks/drawing.py --limit 50 --json out.json

Every photo goes through `EmotionRecognizer.predict` as `emolens predict` reads it (the default
detector and model), then through `emolens.pipeline.draw.plan_layout`, which decides where
`draw_faces` puts each face's tag and score bars. Reported, for `--bars largest` (the default)
and `--bars all`:

- where the bars of a face went: beside it (touching the face or its own tag, within
  `NEAR_PX` pixels at the image's drawing scale), elsewhere (a corner of the photo, away from the
  face: the reader has to match the panel to its face by colour), or nowhere (no free room);
- how far the bars that went elsewhere lie from their face, as a share of the photo's diagonal;
- tags and bars that cover another face (they should never), and tags that cover each other.

Faces are those the detector found, so a photo's layout is what a user of `emolens predict` sees.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/detection.py

NEAR_PX = 8  # bars this close to their face (or its tag), at drawing scale 1, count as beside it


def gap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Pixels between two rectangles (0 when they touch or overlap)."""
    dx = max(0, max(a[0], b[0]) - min(a[0] + a[2], b[0] + b[2]))
    dy = max(0, max(a[1], b[1]) - min(a[1] + a[3], b[1] + b[3]))
    return float(np.hypot(dx, dy))


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    return max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])) * max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))


def score_layout(layout, faces, shape: tuple[int, ...]) -> dict:
    """Where each face's bars went, and what covers what, in one photo's layout."""
    tag_of = {id(t.face): t.rect for t in layout.tags}
    diagonal = float(np.hypot(shape[0], shape[1]))
    out: dict = {"where": Counter(), "away": [], "over_face": 0, "tags_overlapping": 0}
    for bars in layout.bars:
        near = min(gap(bars.rect, tuple(bars.face.box)), gap(bars.rect, tag_of[id(bars.face)]))
        if near <= NEAR_PX * layout.unit:
            out["where"][f"beside ({bars.kind})"] += 1
        else:
            out["where"]["elsewhere"] += 1
            out["away"].append(near / diagonal)
    drawn = [(t.face, t.rect) for t in layout.tags] + [(b.face, b.rect) for b in layout.bars]
    for owner, rect in drawn:
        out["over_face"] += sum(1 for f in faces if f is not owner and overlap(rect, tuple(f.box)) > 0)
    rects = [t.rect for t in layout.tags]
    out["tags_overlapping"] = sum(1 for i in range(len(rects)) for j in range(i) if overlap(rects[i], rects[j]) > 0)
    return out


def run(images, bars: str) -> dict:
    from emolens.pipeline.draw import plan_layout

    where: Counter = Counter()
    away: list[float] = []
    over_face = tags_overlapping = photos = 0
    for faces, shape in images:
        if not faces:
            continue
        photos += 1
        layout = plan_layout(faces, shape, bars=bars)
        scored = score_layout(layout, faces, shape)
        where.update(scored["where"])
        where["nowhere"] += (1 if bars == "largest" else len(faces)) - len(layout.bars)
        away += scored["away"]
        over_face += scored["over_face"]
        tags_overlapping += scored["tags_overlapping"]
    total = sum(where.values())
    return {
        "bars": bars, "photos with faces": photos, "faces with bars wanted": total,
        "where": {k: f"{v} ({100.0 * v / max(total, 1):.1f}%)" for k, v in sorted(where.items())},
        "elsewhere: distance / diagonal (median, max)": [round(float(np.median(away)), 3), round(max(away), 3)] if away else None,
        "tags or bars over another face": over_face, "tags overlapping each other": tags_overlapping,
    }


def main() -> None:
    from detection import DEFAULT_DATA, load_images

    from emolens import EmotionRecognizer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with widerface-val5.zip and wider_face_val5_bbx_gt.txt")
    ap.add_argument("--limit", type=int, default=None, help="first N photos only")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    recognizer = EmotionRecognizer()
    start = time.perf_counter()
    images = [(recognizer.predict(bgr, name=path).faces, bgr.shape) for path, bgr, _ in load_images(args.data, args.limit)]
    print(f"{len(images)} photos read and searched in {time.perf_counter() - start:.0f} s "
          f"({sum(len(f) for f, _ in images)} faces found)")
    results = [run(images, bars) for bars in ("largest", "all")]
    for r in results:
        print(json.dumps(r, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
