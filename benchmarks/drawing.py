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

Videos of two people: `--video N` also films N WIDER FACE photos of two people of about the same
size (Interview and Couple events, both faces valid and 80 px high or more, the larger no more
than 1.3 times the other's area) the way `benchmarks/smoothing.py` films one person sitting still
(a slow random walk, breathing zoom, roll, drifting light, sensor noise, H.264), the view framed
round both faces, and runs each through `FaceStream` as `emolens video` does. Reported: how many
times a second the face whose bars `--bars largest` shows changes from one person to the other,
choosing the largest face in every frame and as the video writer chooses
(`emolens.pipeline.draw.LayoutMemory`; frames without bars are skipped, so bars leaving one
person and coming back on the other count); how many times a second the panel jumps round its
face (its centre moves, relative to the face's, by more than half the panel's height: to
another side or a corner), placed afresh in every frame and as the writer keeps it; how many
times a second the bars go while a face is in view; how many times a second a face goes unfound
for a moment (up to 15 frames) and comes back with its id; and how many times a second a face's
tag moves to another slot round its face, placed afresh and as the writer keeps it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/detection.py

NEAR_PX = 8  # bars this close to their face (or its tag), at drawing scale 1, count as beside it


def score_layout(layout, faces, shape: tuple[int, ...]) -> dict:
    """Where each face's bars went, and what covers what, in one photo's layout."""
    from emolens.faces.base import gap, intersection

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
        out["over_face"] += sum(1 for f in faces if f is not owner and intersection(rect, tuple(f.box)) > 0)
    rects = [t.rect for t in layout.tags]
    out["tags_overlapping"] = sum(1 for i in range(len(rects)) for j in range(i) if intersection(rects[i], rects[j]) > 0)
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


def two_person_photos(folder: Path, count: int) -> list[tuple[str, np.ndarray, tuple[int, int, int, int]]]:
    """(name, BGR photo, box round both faces) for the first `count` photos of two people of about the same size."""
    import zipfile

    import cv2
    from smoothing import EVENTS

    from emolens.faces.widerface import read_ground_truth

    out = []
    with zipfile.ZipFile(folder / "widerface-val5.zip") as zf:
        for image in read_ground_truth(folder / "wider_face_val5_bbx_gt.txt"):
            faces = [f.box for f in image.faces if not f.invalid]
            areas = sorted(w * h for _, _, w, h in faces)
            if image.path.split("/")[0] not in EVENTS or len(faces) != 2 or min(h for *_, h in faces) < 80 or areas[1] > 1.3 * areas[0]:
                continue
            (ax, ay, aw, ah), (bx, by, bw, bh) = faces
            x, y = min(ax, bx), min(ay, by)
            both = (x, y, max(ax + aw, bx + bw) - x, max(ay + ah, by + bh) - y)
            data = np.frombuffer(zf.read(f"WIDER_val/images/{image.path}"), np.uint8)
            out.append((Path(image.path).stem, cv2.imdecode(data, cv2.IMREAD_COLOR), both))
            if len(out) == count:
                break
    return out


def framed_pair(photo: np.ndarray, both: tuple[int, int, int, int], size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A 4:3 view of the photo round both faces: they fill 70% of its width or half its height
    (grey beyond the photo's edges, as `smoothing.view`)."""
    from smoothing import view

    x, y, w, h = both
    scale = min(0.7 * size[0] / w, 0.5 * size[1] / h)
    cx, cy = x + w / 2, y + h / 2
    m = np.array([[scale, 0, size[0] / 2 - scale * cx], [0, scale, size[1] / 2 - scale * cy]])
    return view(photo, m, size, scale)


def _side(panel: tuple[int, int, int, int], face: tuple[int, int, int, int]) -> str:
    px, py, pw, ph = panel
    fx, fy, fw, fh = face
    return "right" if px >= fx + fw else "left" if px + pw <= fx else "below" if py >= fy + fh else "above" if py + ph <= fy else "over"


def _tag_place(tag) -> str:
    """Where a tag lies round its face: above, below or over it (`_side`), level with the face's
    left edge, its right edge or centred."""
    fx, _, fw, _ = tag.face.box
    tx, _, tw, _ = tag.rect
    return _side(tag.rect, tag.face.box) + ("-left" if tx == fx else "-right" if tx + tw == fx + fw else "-centre")


def _changes(sequences: dict[int, list[str]]) -> int:
    return sum(sum(a != b for a, b in pairwise(v)) for v in sequences.values())


def _panel_offset(bars) -> tuple[int | None, float, float, float]:
    """The face a panel belongs to, where its centre lies from the face's centre, and half its height."""
    (px, py, pw, ph), (fx, fy, fw, fh) = bars.rect, bars.face.box
    return bars.face.face_id, px + pw / 2 - fx - fw / 2, py + ph / 2 - fy - fh / 2, ph / 2


def _panel_jumps(offsets: list) -> int:
    """Frames in which the panel jumped round its face: its centre moved, relative to the face's,
    by more than half the panel's height (to another side, a corner, back). A panel beside its
    face moves with it, and one kept at a spot moves only by the face's own jitter; frames without
    bars are skipped, and a change of face is a change of person, counted there."""
    shown = [o for o in offsets if o is not None]
    return sum(bool(a[0] == b[0] and np.hypot(b[1] - a[1], b[2] - a[2]) > b[3]) for a, b in pairwise(shown))


def _blinks(seen: dict[int, list[int]], longest: int = 15) -> int:
    """Times a face went unfound for 1 to `longest` frames and was found again with its id: its
    box and tag blink out of the annotated video (the bars are held: `PIPELINE.main_face_hold`)."""
    return sum(1 <= b - a - 1 <= longest for frames in seen.values() for a, b in pairwise(frames))


def bar_switches(video: Path, recognizer) -> dict[str, float]:
    """Changes a second of the face whose bars are shown (the largest in each frame, and
    LayoutMemory's choice), jumps of its panel round it, and changes of the slots of the faces'
    tags (placed afresh each frame, and as LayoutMemory keeps them); and how often the bars go
    while a face is in view."""
    from emolens.pipeline.draw import LayoutMemory, plan_layout
    from emolens.pipeline.stream import FaceStream, StreamOptions
    from emolens.pipeline.video_io import iter_frames, open_source

    src = open_source(str(video))
    follow = LayoutMemory()
    shown: dict[str, list] = {k: [] for k in ("person: largest each frame", "person: as the video shows")}
    jumps: dict[str, list] = {"panel: placed afresh": [], "panel: as the video shows": []}
    tags: dict[str, dict[int, list[str]]] = {"tags: placed afresh": {}, "tags: as the video shows": {}}
    gone: list[bool] = []  # frames with faces in view but no bars drawn (the main face missed, held)
    seen: dict[int, list[int]] = {}  # face id -> the frames it was found in
    frames = 0
    try:
        for result in FaceStream(recognizer, StreamOptions()).run(iter_frames(src)):
            for face in result.faces:
                seen.setdefault(face.face_id, []).append(frames)
            frames += 1
            largest = max(result.faces, key=lambda f: f.box[2] * f.box[3], default=None)
            shown["person: largest each frame"].append(None if largest is None else largest.face_id)
            afresh = LayoutMemory()
            afresh.face_id = follow.face_id  # the same person as the video, its panel and tags placed with no memory
            for how, chooser in (("placed afresh", afresh), ("as the video shows", follow)):
                layout = plan_layout(result.faces, result.orig_img.shape, bars="largest", follow=chooser)
                jumps[f"panel: {how}"].append(_panel_offset(layout.bars[0]) if layout.bars else None)
                for tag in layout.tags:
                    tags[f"tags: {how}"].setdefault(tag.face.face_id, []).append(_tag_place(tag))
            shown["person: as the video shows"].append(layout.bars[0].face.face_id if layout.bars else None)
            gone.append(bool(result.faces) and not layout.bars)
    finally:
        src.release()
    seconds = frames / src.fps
    # frames without a face are skipped: bars leaving one person and coming back on the other still count
    out = {k: sum(a != b for a, b in pairwise(i for i in v if i is not None)) / seconds for k, v in shown.items()}
    out |= {f"{k} jumps": _panel_jumps(v) / seconds for k, v in jumps.items()}
    out["bars gone with a face in view"] = sum(b and not a for a, b in pairwise([False, *gone])) / seconds
    out["faces missed a moment"] = _blinks(seen) / seconds
    return out | {k: _changes(v) / seconds for k, v in tags.items()}  # moves of all faces' tags


def video_section(folder: Path, clips: int, seconds: float, first_seed: int = 0) -> dict:
    import tempfile

    from smoothing import film

    from emolens.pipeline.defaults import PIPELINE
    from emolens.pipeline.recognizer import EmotionRecognizer

    recognizer = EmotionRecognizer(threads=PIPELINE.stream_threads)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="emolens-drawing-") as tmp:
        for k, (name, photo, both) in enumerate(two_person_photos(folder, clips)):
            clip = film(framed_pair(photo, both), Path(tmp) / f"{k}.mp4", seconds, 30.0, seed=first_seed + k)
            rows[name] = bar_switches(clip, recognizer)
            print(name, {n: round(v, 2) for n, v in rows[name].items()})
    means = {n: round(float(np.mean([r[n] for r in rows.values()])), 3) for n in next(iter(rows.values()))} if rows else {}
    print(f"{len(rows)} two-person clips of {seconds:g} s: the face with bars changes per second, mean: {means}")
    return {"clips": rows, "mean changes per second": means}


def main() -> None:
    from detection import DEFAULT_DATA, load_images

    from emolens import EmotionRecognizer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with widerface-val5.zip and wider_face_val5_bbx_gt.txt")
    ap.add_argument("--limit", type=int, default=None, help="first N photos only")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--video", type=int, default=0, metavar="N", help="also film N two-person photos (see above)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each --video clip")
    ap.add_argument("--first-seed", type=int, default=0, help="the --video clips' camera motion, noise and light from seeds N, N+1, ... "
                    "(another sample of the same photos)")
    args = ap.parse_args()
    recognizer = EmotionRecognizer()
    start = time.perf_counter()
    images = [(recognizer.predict(bgr, name=path).faces, bgr.shape) for path, bgr, _ in load_images(args.data, args.limit)]
    print(f"{len(images)} photos read and searched in {time.perf_counter() - start:.0f} s "
          f"({sum(len(f) for f, _ in images)} faces found)")
    results = [run(images, bars) for bars in ("largest", "all")]
    for r in results:
        print(json.dumps(r, indent=2))
    if args.video:
        results.append(video_section(args.data, args.video, args.seconds, args.first_seed))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
