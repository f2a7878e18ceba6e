"""Face-detector recall, false detections and speed on real WIDER FACE photos.

    python benchmarks/detection.py --data ../shared/datasets/widerface-val5 --detectors haar mtcnn centerface
    python benchmarks/detection.py --detectors "haar,min_face_size=20,min_neighbors=3" --limit 50 --json out.json

Every image of the set (394 validation photos of five events, 1024 px wide, as they come) goes
through `detector.detect` once; a detection is a hit when it overlaps a labelled face at IoU
>= 0.5 (greedy by confidence, the WIDER FACE protocol). Reported per detector:

- recall of the valid faces at least 40 px high, 20 px high, and of all valid faces;
- recall of the valid faces of 40 px and up that the annotators flagged hard: atypical pose
  (turned), extreme illumination, heavy blur, heavy occlusion (a second table);
- the share of detections matching no face. A detection on a face the annotators flagged
  invalid, or on a face under 20 px, is neither a hit nor a false detection: the official
  protocol ignores invalid faces, and faces under 20 px are below what emolens classifies;
- milliseconds per image, the mean wall time of `detect` alone (decoding not included), with
  OpenCV's default threads (CenterFace's onnxruntime: one thread), and the milliseconds
  `create_detector` took (the first instance; the server builds one per worker thread);
- for CenterFace, the pixels its network ran on, as a multiple of the photos' pixels: its work,
  the same on every CPU (its time grows with them; one search of the whole photo is a little
  over 1.0, the sides being padded to multiples of 32).

Tilted faces: `--turn DEG` turns every photo by DEG degrees (every other one the other way) about its
centre, on a canvas grown to hold it whole, and each labelled face becomes a box of its own size
centred where its centre went: what a detector that finds the tilted face should report (a box
drawn round the tilted face is a little larger; at 30 degrees its IoU with that box stays above
0.5 for boxes up to 1.37x the face's side).

Camera-sized photos: `--scale F` enlarges every photo F times (cubic) and its faces with it, as a
phone's 12-megapixel photo of the scene would hold them (`--scale 4`: 4096 px wide; the detail is
the original's). Heights are then counted in the original photo's pixels (">= 40 px" is 160 px
at 4x), faces under 20 of those are ignored as before, and a column for faces of 200 px and up
(800 px at 4x, a close portrait's face) is added.

Low light: `--stops-under N` darkens every photo as if taken N stops underexposed (its linear light
divided by 2**N, through sRGB's 2.2 gamma: 7 stops leaves a white wall at 28 of 255).

Following known faces: `--follow` scores what the video pipeline does between whole-frame searches
(`FaceDetector.detect_near`, then the tracker) instead of `detect`. For each valid face of 40 px and up,
a track is started at the face's box moved by up to 10% of its side and scaled by 0.9-1.1 (a track's
prediction is never exact; the same draws for every detector), the detector searches near it,
and the face counts as followed when the tracker (`ByteTracker`, as the pipeline builds it) takes
the find for that track and it matches the face at IoU >= 0.5; reported by condition too (faces
half turned away, blurred or hidden are where a face in a video is lost). False follows: tracks
started on windows the size of a face beside it (below it, either side, twice as far below) that
overlap no labelled face, in which the tracker took a find for a face.

Photos as `emolens predict` searches them: `--photo` scores `EmotionRecognizer.find_photo_faces`
instead of `detect`: the detector, followed by the close-up search where it finds nothing, then
the search of photos the wrong way round (`turned_photos`), each detector without ("photo-plain")
and with it ("photo"). With `--turn 90` (every other photo turned the other way) or `--turn 180` it measures
photos taken sideways or upside down.

A detector spec is `NAME[:MODEL_FILE][,option=value...]`, the options going to its
constructor (`emolens.faces.create_detector` parses it), e.g. `haar,min_face_size=20` or `mediapipe,tile=1`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "widerface-val5"


BIG_FACE_PX = 200  # with --scale: faces at least this high in the original photo (a close portrait's face once enlarged)
FOLLOW_MIN_PX = 40  # --follow: faces at least this high are followed
FOLLOW_SHIFT, FOLLOW_SCALE = 0.1, 0.1  # --follow: a track's prediction misses the face by up to this share of its side, and its size by this share
BESIDE = ((0.0, 1.2), (1.2, 0.0), (-1.2, 0.0), (0.0, 2.2))  # --follow: face-free windows at these offsets from a face, in its width and height


def load_images(data: Path, limit: int | None, every: int = 1) -> list[tuple[str, np.ndarray, tuple]]:
    """(path, BGR image, faces) for each image of the annotation file found in the zip (the first
    `limit`, every `every`th of them)."""
    import cv2

    from emolens.faces.widerface import read_ground_truth

    labelled = read_ground_truth(data / "wider_face_val5_bbx_gt.txt")[:limit:every]
    out = []
    with zipfile.ZipFile(data / "widerface-val5.zip") as zf:
        names = {n.split("images/", 1)[-1]: n for n in zf.namelist() if n.endswith(".jpg")}
        for item in labelled:
            raw = np.frombuffer(zf.read(names[item.path]), np.uint8)
            out.append((item.path, cv2.imdecode(raw, cv2.IMREAD_COLOR), item.faces))
    return out


def turn_photo(bgr: np.ndarray, faces: tuple, degrees: float) -> tuple[np.ndarray, tuple]:
    """The photo turned clockwise by `degrees` on a canvas that holds it whole, and its faces as
    boxes of their own size centred where their centres went (see the module docstring)."""
    from emolens.faces.base import turn_whole
    turned, turn = turn_whole(bgr, degrees)
    moved = []
    for face in faces:
        x, y, fw, fh = face.box
        cx, cy = turn @ np.array([x + fw / 2.0, y + fh / 2.0, 1.0])
        moved.append(replace(face, box=(int(round(cx - fw / 2.0)), int(round(cy - fh / 2.0)), fw, fh)))
    return turned, tuple(moved)


def scale_photo(bgr: np.ndarray, faces: tuple, factor: float) -> tuple[np.ndarray, tuple]:
    """The photo enlarged `factor` times, and its faces with it."""
    import cv2

    if factor == 1.0:
        return bgr, faces
    big = cv2.resize(bgr, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    return big, tuple(replace(face, box=tuple(int(round(v * factor)) for v in face.box)) for face in faces)


def underexpose(bgr: np.ndarray, stops: float) -> np.ndarray:
    """The photo as taken `stops` stops darker: linear light divided by 2**stops, back through
    the 2.2 gamma of sRGB, and rounded to 8 bits again (the dark end's detail is lost as in a
    camera's underexposed frame, without its noise)."""
    if not stops:
        return bgr
    return np.round(bgr.astype(np.float32) * np.float32(2.0 ** (-stops / 2.2))).astype(np.uint8)


def photo_search(spec: str, turned_photos: bool):
    """What `emolens predict` searches a photo with: the detector, the close-up search and, with
    `turned_photos`, the search of photos the wrong way round (`EmotionRecognizer.find_photo_faces`)."""
    from emolens import EmotionRecognizer

    rec = EmotionRecognizer(detector=spec, turned_photos=turned_photos)
    return rec.detector, rec.find_photo_faces


def run_detector(spec: str, images: list, scale: float = 1.0, stops: float = 0.0, photo: str = "") -> dict[str, object]:
    from emolens.faces import create_detector
    from emolens.faces.widerface import HEIGHTS, DetectionTally

    start = time.perf_counter()
    if photo:
        detector, search = photo_search(spec, turned_photos=photo == "photo")
    else:
        detector = create_detector(spec)
        search = detector.detect
    build_ms = 1000 * (time.perf_counter() - start)  # what one detector per server thread costs
    search(underexpose(scale_photo(*images[0][1:], scale)[0], stops))  # warm-up: first-call allocations and lazy initialisation
    network_pixels = counted_network_pixels(detector)
    heights = HEIGHTS if scale == 1.0 else (*HEIGHTS, BIG_FACE_PX)
    tally = DetectionTally(min_height=int(round(20 * scale)), heights=tuple(int(round(h * scale)) for h in heights))
    seconds, photo_pixels = [], 0
    for _, bgr, faces in images:
        if scale != 1.0:
            bgr, faces = scale_photo(bgr, faces, scale)
        bgr = underexpose(bgr, stops)
        photo_pixels += bgr.shape[0] * bgr.shape[1]
        start = time.perf_counter()
        dets = search(bgr)
        seconds.append(time.perf_counter() - start)
        tally.add(faces, dets)
    summary = tally.summary()
    summary["recall"] = dict(zip(map(str, heights), summary["recall"].values(), strict=True))  # in the original's pixels
    summary["faces"] = dict(zip(map(str, heights), summary["faces"].values(), strict=True))
    summary.update(spec=spec + (f" ({photo})" if photo else ""), detector=repr(detector), ms_per_image=1000 * float(np.mean(seconds)),
                   ms_median=1000 * float(np.median(seconds)), build_ms=build_ms)
    if network_pixels is not None:
        summary["network_pixels"] = network_pixels[0] / photo_pixels
    return summary


def counted_network_pixels(detector) -> list[int] | None:
    """CenterFace's work, the same on every CPU: from now on, the pixels of every input its network
    runs on are added up in the returned list's one item (None for other detectors). Its time grows
    with these pixels, and they are counted in an instant where valgrind's count of instructions
    (benchmarks/detection_avx2.py) takes minutes a photo. It wraps the detector's private `_run`, the
    one call every search makes (a benchmark's look inside, not an API)."""
    from emolens.faces.centerface import CenterFaceDetector

    if not isinstance(detector, CenterFaceDetector):
        return None
    run, total = detector._run, [0]

    def counting(blob):
        total[0] += blob.shape[2] * blob.shape[3]
        return run(blob)

    detector._run = counting
    return total


def predicted_box(box: tuple, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A track's prediction of where the face `box` is: moved and resized a little."""
    x, y, w, h = box
    scale = rng.uniform(1 - FOLLOW_SCALE, 1 + FOLLOW_SCALE)
    dx, dy = rng.uniform(-FOLLOW_SHIFT, FOLLOW_SHIFT, 2) * max(w, h)
    cx, cy, nw, nh = x + w / 2 + dx, y + h / 2 + dy, w * scale, h * scale
    return int(round(cx - nw / 2)), int(round(cy - nh / 2)), int(round(nw)), int(round(nh))


def beside_boxes(face: tuple, faces: tuple, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Windows of the face's size beside it, inside the photo, overlapping no labelled face."""
    from emolens.faces.base import intersection

    x, y, w, h = face
    boxes = [(int(x + dx * w), int(y + dy * h), w, h) for dx, dy in BESIDE]
    return [b for b in boxes if b[0] >= 0 and b[1] >= 0 and b[0] + w <= width and b[1] + h <= height
            and all(intersection(b, other.box) == 0 for other in faces)]


def follow(detector, bgr: np.ndarray, prior: tuple) -> tuple[object | None, float]:
    """The find a new track at `prior` takes in this photo (None: it would coast), and the
    seconds the search near it took."""
    from emolens.faces.base import Detection
    from emolens.pipeline.stream import new_tracker

    tracker = new_tracker(detect_every=1)
    tracker.update([Detection(prior, 1.0)])
    start = time.perf_counter()
    det = detector.detect_near(bgr, prior)
    seconds = time.perf_counter() - start
    return (det if det is not None and tracker.update([det])[0] is not None else None), seconds


def run_follow(spec: str, images: list) -> dict[str, object]:
    from emolens.faces import create_detector
    from emolens.faces.base import iou
    from emolens.faces.widerface import CONDITIONS

    detector = create_detector(spec)
    names = [name for _, _, name in CONDITIONS]
    faces_n, found_n = dict.fromkeys(["all", *names], 0), dict.fromkeys(["all", *names], 0)
    windows, false_follows, seconds = 0, 0, []
    for i, (_, bgr, faces) in enumerate(images):
        rng = np.random.default_rng(i)  # the same predictions for every detector
        for face in faces:
            if face.invalid or face.box[3] < FOLLOW_MIN_PX:
                continue
            det, took = follow(detector, bgr, predicted_box(face.box, rng))
            seconds.append(took)
            hit = det is not None and iou(det.box, face.box) >= 0.5
            for name in ("all", *face.conditions):
                faces_n[name] += 1
                found_n[name] += hit
            for window in beside_boxes(face.box, faces, bgr.shape[1], bgr.shape[0]):
                windows += 1
                false_follows += follow(detector, bgr, window)[0] is not None
    return {"spec": spec, "detector": repr(detector), "faces": faces_n,
            "followed": {k: found_n[k] / n if n else 0.0 for k, n in faces_n.items()},
            "windows": windows, "false_follows": false_follows, "ms_per_follow": 1000 * float(np.mean(seconds))}


def markdown_follow(rows: list[dict]) -> str:
    counts = rows[0]["faces"] if rows else {}
    lines = ["| detector | " + " | ".join(f"{'faces >= 40 px' if k == 'all' else k} ({n})" for k, n in counts.items())
             + " | windows beside faces taken for a face | ms per follow |",
             "|---|" + "---|" * (len(counts) + 2)]
    for r in rows:
        lines.append(f"| `{r['spec']}` | " + " | ".join(f"{100 * v:.1f}%" for v in r["followed"].values())
                     + f" | {r['false_follows']} of {r['windows']} | {r['ms_per_follow']:.1f} |")
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    big = bool(rows) and str(BIG_FACE_PX) in rows[0]["recall"]
    work = any("network_pixels" in r for r in rows)
    lines = [
        "| detector | recall, faces >= 40 px | >= 20 px | all faces |" + (f" >= {BIG_FACE_PX} px |" if big else "")
        + " detections matching no face | ms per image | ms to build |" + (" network input, x the photo's pixels |" if work else ""),
        "|---|---|---|---|" + ("---|" if big else "") + "---|---|---|" + ("---|" if work else ""),
    ]
    for r in rows:
        rec = r["recall"]
        lines.append(
            f"| `{r['spec']}` | {100 * rec['40']:.1f}% | {100 * rec['20']:.1f}% | {100 * rec['0']:.1f}% | "
            + (f"{100 * rec[str(BIG_FACE_PX)]:.1f}% | " if big else "")
            + f"{100 * r['false_share']:.1f}% ({r['false_detections']} of {r['detections'] - r['ignored_detections']}) | {r['ms_per_image']:.0f} | {r.get('build_ms', float('nan')):.0f} |"
            + ((f" {r['network_pixels']:.3f} |" if "network_pixels" in r else " - |") if work else "")
        )
    return "\n".join(lines)


def markdown_conditions(rows: list[dict]) -> str:
    """Recall of the faces of 40 px and up that the annotators flagged hard, per condition."""
    if not rows:
        return ""
    counts = rows[0]["condition_faces"]
    lines = ["| detector | " + " | ".join(f"{name} ({n} faces)" for name, n in counts.items()) + " |",
             "|---|" + "---|" * len(counts)]
    for r in rows:
        lines.append(f"| `{r['spec']}` | " + " | ".join(f"{100 * v:.1f}%" for v in r["condition_recall"].values()) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with widerface-val5.zip and wider_face_val5_bbx_gt.txt")
    ap.add_argument("--detectors", nargs="+", default=["haar"], help="detector specs, NAME[:MODEL][,option=value...]")
    ap.add_argument("--limit", type=int, default=None, help="first N images only (quick looks; the table uses all)")
    ap.add_argument("--json", type=Path, help="write every figure here as JSON")
    ap.add_argument("--turn", type=float, default=0.0, help="turn every photo by this many degrees, alternately clockwise and back (tilted faces)")
    ap.add_argument("--stops-under", type=float, default=0.0, help="underexpose every photo by this many stops (low light)")
    ap.add_argument("--follow", action="store_true", help="score following known faces (the video pipeline between whole-frame searches) instead of detect")
    ap.add_argument("--photo", action="store_true", help="score the search `emolens predict` makes of a photo, without and with the search of photos the wrong way round")
    ap.add_argument("--scale", type=float, default=1.0, help="enlarge every photo this many times, as a camera's full-size photo (heights stay in the original's pixels)")
    args = ap.parse_args()
    if args.follow and (args.scale != 1.0 or args.stops_under):
        ap.error("--follow scores the photos as they are (or turned, --turn): not with --scale or --stops-under")

    from emolens.errors import EmolensError

    images = load_images(args.data, args.limit)
    if args.turn:
        images = [(path, *turn_photo(bgr, faces, args.turn if i % 2 == 0 else -args.turn)) for i, (path, bgr, faces) in enumerate(images)]
        print(f"photos turned by {args.turn:g} degrees, alternately clockwise and anticlockwise", file=sys.stderr)
    if args.scale != 1.0:  # enlarged one at a time as they are searched: 394 of them at 4x would hold 16.6 GB of pixels
        print(f"photos enlarged {args.scale:g} times", file=sys.stderr)
    n_faces = sum(len(f) for _, _, f in images)
    print(f"{len(images)} images, {n_faces} labelled faces from {args.data}", file=sys.stderr)
    if args.follow:
        return report_follow(args, images)
    rows = []
    for spec in args.detectors:
        try:
            for photo in ("photo-plain", "photo") if args.photo else ("",):
                rows.append(run_detector(spec, images, args.scale, args.stops_under, photo))
        except EmolensError as exc:
            print(f"{spec}: skipped: {exc}", file=sys.stderr)
            continue
        print(markdown(rows[-1:]).splitlines()[-1], file=sys.stderr)
    f = rows[0]["faces"] if rows else {}
    turned = f", turned by +-{args.turn:g} degrees" if args.turn else ""
    turned += f", enlarged {args.scale:g}x (heights in the original's pixels)" if args.scale != 1.0 else ""
    turned += f", underexposed by {args.stops_under:g} stops" if args.stops_under else ""
    bigs = f", {f.get(str(BIG_FACE_PX))} of >= {BIG_FACE_PX} px" if args.scale != 1.0 else ""
    print(f"\n{len(images)} images{turned}; valid faces: {f.get('40')} of >= 40 px, {f.get('20')} of >= 20 px, {f.get('0')} in all{bigs}\n")
    print(markdown(rows))
    print(f"\nrecall of the faces of >= 40 px{' (original pixels)' if args.scale != 1.0 else ''} the annotators flagged hard\n")
    print(markdown_conditions(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
        print(f"\nwrote {args.json}")


def report_follow(args: argparse.Namespace, images: list) -> None:
    rows = [run_follow(spec, images) for spec in args.detectors]
    print(f"\n{len(images)} images; faces of >= {FOLLOW_MIN_PX} px followed from a track's prediction, by condition\n")
    print(markdown_follow(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
