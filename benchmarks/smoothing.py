"""Label flicker on a steady face: label changes per second with temporal smoothing off and on.

    python benchmarks/smoothing.py                                   # WIDER FACE close-ups, shipped model
    python benchmarks/smoothing.py --widerface ../shared/datasets/widerface-val5 --clips 8 --seconds 10
    python benchmarks/smoothing.py --fps 60 --label-margin 0.05 0.1   # a phone's frame rate; labels held by a margin

No real recording of a steady face ships with the project or lies on this machine, so each test
clip is built from a real photo: a large, valid face of WIDER FACE (Interview and Couple events,
the people as photographed, with their own expressions, hair, glasses and backgrounds), framed
640x480 with the face about a third of the height, then filmed the way a webcam sees a person
sitting still: a slow random walk of the head (about half a pixel per frame, within 6 px), a 2%
breathing zoom, a degree of roll, lighting that drifts by 6% and flickers by 1%, sensor noise
(sigma 3 grey levels), then H.264 compression (emolens's own writer) and decoding, as any video
file. Without --widerface data, the scikit-image astronaut photo is used instead (a strong smile:
almost no flicker to remove).

The clips are the faces the detector finds whose expression is least clear-cut (the smallest gap
between the top two scores on the still): a broad smile keeps its label either way, flicker is a
matter of faces between two emotions. Each clip runs through `FaceStream` (the video and webcam pipeline: detector, tracker, classifier)
with smooth=0 and smooth=PIPELINE.smooth (the default, or each `--smooth`), labels as the top
score (label margin 0), then at the last smoothing with each `--label-margin` (default
PIPELINE.label_margin: a track keeps its label until another emotion leads it by that much).
Reported per clip: label changes per second of the face's track; "tracks": ids in the clip (other
people in the view count too); "one id": the share of frames in which the face carries its main
id (100% = one id all through). Below the means, how far the bars move a second (the total
variation distance between consecutive frames' scores, summed over a second: 1.0 is a whole
score's worth). `--fps` films the clips at another frame rate (the head's walk as far a second).
`--compare-align` runs every clip again with faces cut as their boxes lie (`align=False`), on the
same clips (chosen by the mean gap of both settings), to show what turning crops upright does to flicker.

`--server` also sends every clip as the web page's camera view does (10 frames/s: every third frame at 30,
each a JPEG of quality 0.85) to the server's code (`emolens.serving.jobs.Runner`, in process: the
WebSocket only carries the bytes), two ways: each frame read afresh (`predict_image`, what
`/v1/stream` did before it followed faces) and followed as `/v1/stream` now does (`predict_frame`:
tracks, smoothing, the main face held through a miss). Reported: label changes per second of the
face whose bars the page shows, and the server's median and 95th-percentile time per frame.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zipfile
from itertools import pairwise
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WIDER = ROOT.parent / "shared" / "datasets" / "widerface-val5"
EVENTS = ("13--Interview", "19--Couple")  # close, mostly frontal faces


def wider_faces(folder: Path, count: int, min_height: int = 110) -> list[tuple[str, np.ndarray, tuple[int, int, int, int]]]:
    """(name, BGR photo, face box) for the `count` largest valid faces of the chosen events."""
    import cv2

    from emolens.faces.widerface import read_ground_truth

    images = [im for im in read_ground_truth(folder / "wider_face_val5_bbx_gt.txt") if im.path.split("/")[0] in EVENTS]
    picks = sorted(((f.box, im.path) for im in images for f in im.faces if not f.invalid and f.box[3] >= min_height),
                   key=lambda p: -p[0][3])
    out, used = [], set()
    with zipfile.ZipFile(folder / "widerface-val5.zip") as zf:
        for box, path in picks:
            if path in used:  # one face per photo: different people
                continue
            data = np.frombuffer(zf.read(f"WIDER_val/images/{path}"), np.uint8)
            out.append((Path(path).stem, cv2.imdecode(data, cv2.IMREAD_COLOR), box))
            used.add(path)
            if len(out) == count:
                break
    return out


def astronaut_face() -> list[tuple[str, np.ndarray, tuple[int, int, int, int]]]:
    from emolens.pipeline.samples import astronaut

    return [("astronaut", np.ascontiguousarray(astronaut()[:, :, ::-1]), (177, 66, 95, 95))]


def framed(photo: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A 4:3 view of the photo around the face, the face a third of its height, at `size`."""
    x, y, w, h = box
    scale = size[1] / (3.0 * h)  # the view is three face heights high
    cx, cy = x + w / 2, y + h / 2
    m = np.array([[scale, 0, size[0] / 2 - scale * cx], [0, scale, size[1] / 2 - scale * cy]])
    return view(photo, m, size, scale)


def view(photo: np.ndarray, m: np.ndarray, size: tuple[int, int], scale: float) -> np.ndarray:
    """`photo` through the affine map `m` at `size`; beyond its edges, plain grey. (A mirrored
    border, as first written, made mirror copies of a face near the edge: a camera sees no such
    twins, and the detector's finds jumping between them gave one clip 13 track ids.)"""
    import cv2

    flags = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(photo, m, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=(90, 90, 90))


def film(still: np.ndarray, path: Path, seconds: float, fps: float, seed: int) -> Path:
    """Write `still` as a video of a person sitting still (see the module docstring). The head's
    random walk takes smaller steps at higher frame rates, so that it wanders as far in a second
    (its steps' sigma scales with the square root of the frame interval; 0.5 px at 30 frames/s)."""
    import cv2

    from emolens.pipeline.video_io import VideoWriter

    rng = np.random.default_rng(seed)
    h, w = still.shape[:2]
    pos, step = np.zeros(2), 0.5 * float(np.sqrt(30.0 / fps))
    with VideoWriter(path, fps) as writer:
        for i in range(int(seconds * fps)):
            t = i / fps
            pos = np.clip(pos + rng.normal(0, step, 2), -6, 6)
            zoom = 1 + 0.02 * np.sin(2 * np.pi * t / 4.0)
            roll = 1.0 * np.sin(2 * np.pi * t / 6.5)
            m = cv2.getRotationMatrix2D((w / 2, h / 2), roll, zoom)
            m[:, 2] += pos
            frame = cv2.warpAffine(still, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
            gain = 1 + 0.06 * np.sin(2 * np.pi * t / 3.7) + rng.normal(0, 0.01)
            frame = frame * gain + rng.normal(0, 3.0, frame.shape)
            writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    return path


def ambiguity(recognizer, still: np.ndarray, aligns: tuple[bool, ...]) -> float | None:
    """Gap between the top two scores of the still's largest face (None: no face found), the
    mean over the alignment settings compared, so that no setting has its own hardest faces
    chosen for it (measured: choosing by one setting alone favoured the other)."""
    gaps = []
    for align in aligns:
        recognizer.align = align
        result = recognizer.predict(still)
        if not result.faces:
            return None
        top = sorted(result.faces[0].scores.values(), reverse=True)
        gaps.append(top[0] - top[1])
    recognizer.align = aligns[0]
    return float(np.mean(gaps))


def label_changes(video: Path, recognizer, smooth: float, label_margin: float = 0.0) -> dict[str, float]:
    """Label changes per second of the clip's longest track, how far its scores (the bars) move
    a second (the total variation distance between consecutive frames' scores, summed), and
    how many ids the clip got."""
    from emolens.pipeline.stream import FaceStream, StreamOptions
    from emolens.pipeline.video_io import iter_frames, open_source

    src = open_source(str(video))
    stream = FaceStream(recognizer, StreamOptions(smooth=smooth, label_margin=label_margin), fps=src.fps)  # as `emolens video`
    tracks: dict[int, list[tuple[int, str, np.ndarray]]] = {}
    frames, fps = 0, src.fps
    try:
        for result in stream.run(iter_frames(src)):
            frames += 1
            for face in result.faces:
                tracks.setdefault(face.face_id, []).append((result.frame, face.label, np.array(list(face.scores.values()))))
    finally:
        src.release()
    if not tracks:
        return {"changes_per_s": float("nan"), "bars_moved_per_s": float("nan"), "ids": 0, "seen": 0.0}
    main = max(tracks.values(), key=len)
    steps = [(a, b) for a, b in pairwise(main) if b[0] == a[0] + 1]
    seconds = len(main) / fps
    return {"changes_per_s": sum(a[1] != b[1] for a, b in steps) / seconds,
            "bars_moved_per_s": sum(0.5 * float(np.abs(a[2] - b[2]).sum()) for a, b in steps) / seconds,
            "ids": len(tracks), "seen": len(main) / max(frames, 1)}


def page_frames(video: Path, every: int = 3) -> list[bytes]:
    """The clip as the web page sends a camera: every `every`-th frame, a JPEG of quality 0.85."""
    import cv2

    from emolens.pipeline.video_io import iter_frames, open_source

    src = open_source(str(video))
    try:
        return [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for i, _, f in iter_frames(src) if i % every == 0]
    finally:
        src.release()


def server_flicker(frames: list[bytes], recognizer, fps: float, follow: bool) -> dict[str, float]:
    """Label changes per second of the face whose bars the page shows, and server ms per frame."""
    from emolens.serving.jobs import LiveSession, Runner
    from emolens.serving.uploads import Upload

    runner, live = Runner(recognizer), LiveSession(recognizer)
    shown: list[str | None] = []
    times = []
    for k, data in enumerate(frames):
        upload = Upload(data, f"frame {k}")
        out = runner.predict_frame(upload, live) if follow else runner.predict_image(upload)
        times.append(out["timings"]["predict_ms"])
        main = out.get("main", {}).get("face_id") if follow else None
        faces = [f for f in out["faces"] if f["face_id"] == main] if follow else out["faces"][:1]  # afresh: the largest
        shown.append(faces[0]["label"] if faces else None)
    live.close()
    changes = sum(a != b for a, b in pairwise(shown) if a is not None and b is not None)
    return {"changes_per_s": changes / (len(frames) / fps), "ms_median": float(np.median(times)), "ms_p95": float(np.percentile(times, 95))}


def server_section(clips: list[tuple[str, Path]], recognizer, fps: float) -> dict:
    print("as the web page's camera (10 frames/s, JPEG) through the server's code: label changes per second, ms per frame")
    rows = {}
    for name, clip in clips:
        frames = page_frames(clip, every=max(1, round(fps / 10.0)))
        rows[name] = {how: server_flicker(frames, recognizer, 10.0, follow) for how, follow in (("afresh", False), ("followed", True))}
        print(f"{name[:34]:<34}" + "".join(f"{how:>10} {r['changes_per_s']:5.2f}/s {r['ms_median']:6.1f} ms" for how, r in rows[name].items()))
    means = {how: {k: float(np.mean([r[how][k] for r in rows.values()])) for k in ("changes_per_s", "ms_median", "ms_p95")} for how in ("afresh", "followed")}
    print(f"{'mean':<34}" + "".join(f"{how:>10} {m['changes_per_s']:5.2f}/s {m['ms_median']:6.1f} ms (p95 {m['ms_p95']:.1f})" for how, m in means.items()))
    return {"clips": rows, "mean": means}


def steadiest_faces(rec, folder: Path, count: int, aligns: tuple[bool, ...]) -> tuple[list, str]:
    """The `count` faces to film and where they come from: the WIDER FACE faces least clear-cut,
    or scikit-image's astronaut where WIDER FACE is not here."""
    if not (folder / "widerface-val5.zip").exists():
        return astronaut_face(), "scikit-image astronaut (no WIDER FACE here)"
    candidates = wider_faces(folder, 6 * count)
    gaps = {f[0]: ambiguity(rec, framed(f[1], f[2]), aligns) for f in candidates}
    # A face with a plain expression (a broad smile) keeps its label with or without
    # smoothing; flicker is a matter of faces between two emotions (neutral or sad?), so the
    # clips are the faces whose top two scores on the still are closest.
    faces = sorted((f for f in candidates if gaps[f[0]] is not None), key=lambda f: gaps[f[0]])[:count]
    return faces, f"WIDER FACE val ({', '.join(EVENTS)})"


def flicker_rows(rec, clips: list[tuple[str, Path]], settings: list[tuple[float, bool, float]], names: list[str], shown: str) -> list[dict]:
    """Each clip's label changes per second at each (smoothing, alignment) setting, printed as it
    goes with the tracks and the main id's share at setting `shown`."""
    rows = []
    for name, clip in clips:
        runs = {}
        for n, (v, align, margin) in zip(names, settings, strict=True):
            rec.align = align
            runs[n] = label_changes(clip, rec, v, margin)
        rec.align = settings[0][1]
        rows.append({"clip": name.split(". ", 1)[1], "runs": runs})
        print(f"{name[:34]:<34}" + "".join(f"{r['changes_per_s']:>24.2f}" for r in runs.values())
              + f"{runs[shown]['ids']:>8}{runs[shown]['seen']:>8.0%}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widerface", type=Path, default=DEFAULT_WIDER, help="WIDER FACE val5 folder (photos of real faces)")
    parser.add_argument("--clips", type=int, default=8, help="faces (one clip each)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=30.0, help="the clips' frame rate (a phone films at 30 or 60)")
    parser.add_argument("--model", help="model (default: the shipped one)")
    parser.add_argument("--smooth", type=float, nargs="+", help="smoothing settings to compare with 0 (default: PIPELINE.smooth), each with labels "
                        "as the top score (label margin 0)")
    parser.add_argument("--label-margin", type=float, nargs="*", help="label margins to add at the last smoothing (default: PIPELINE.label_margin)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--compare-align", action="store_true", help="also run every clip with align=False (crops not turned upright)")
    parser.add_argument("--server", action="store_true", help="also send every clip to the server's code as the web page's camera does")
    args = parser.parse_args()

    from emolens.pipeline.defaults import PIPELINE
    from emolens.pipeline.recognizer import EmotionRecognizer

    rec = EmotionRecognizer.of(args.model, threads=PIPELINE.stream_threads)
    aligns = (rec.align, not rec.align) if args.compare_align else (rec.align,)
    faces, source = steadiest_faces(rec, args.widerface, args.clips, aligns)
    smooths = [0.0, *sorted(set(args.smooth or [PIPELINE.smooth]) - {0.0})]
    margins = sorted(set([PIPELINE.label_margin] if args.label_margin is None else args.label_margin) - {0.0})
    settings = [(v, align, 0.0) for align in aligns for v in smooths] + [(smooths[-1], aligns[0], m) for m in margins]
    print(f"steady-face clips from {source}: {len(faces)} clips of {args.seconds:g} s, 640x480, {args.fps:g} frames/s; "
          f"model {rec.model_name}, detector {rec.detector.name}, detect_every {PIPELINE.detect_every}; label changes per second:")
    names = [f"smooth={v:g}" + ("" if a else ",no-align") + (f",margin={m:g}" if m else "") for v, a, m in settings]
    print(f"{'clip':<34}" + "".join(f"{n:>24}" for n in names) + f"{'tracks':>8}{'one id':>8}")
    with tempfile.TemporaryDirectory(prefix="emolens-smoothing-") as tmp:
        clips = [(f"{k + 1}. {name}", film(framed(photo, box), Path(tmp) / f"{k}.mp4", args.seconds, args.fps, seed=k))
                 for k, (name, photo, box) in enumerate(faces)]
        rows = flicker_rows(rec, clips, settings, names, shown=names[len(smooths) - 1])  # the default alignment, last smoothing
        means = {n: float(np.nanmean([r["runs"][n]["changes_per_s"] for r in rows])) for n in names}
        moved = {n: float(np.nanmean([r["runs"][n]["bars_moved_per_s"] for r in rows])) for n in names}
        print(f"{'mean':<34}" + "".join(f"{m:>24.2f}" for m in means.values()))
        print(f"{'bars moved a second (mean)':<34}" + "".join(f"{m:>24.2f}" for m in moved.values()))
        served = server_section(clips, rec, args.fps) if args.server else None
    if args.json:
        args.json.write_text(json.dumps({"source": source, "default_smooth": PIPELINE.smooth, "clips": rows,
                                         "mean_changes_per_s": means, "mean_bars_moved_per_s": moved, "server": served}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
