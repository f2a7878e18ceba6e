"""`emolens video FILE`: a per-frame CSV, an annotated video and an emotion-over-time plot."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import ConfigError, DataError
from emolens.pipeline.outputs import free_stem
from emolens.pipeline.recognizer import EmotionRecognizer
from emolens.pipeline.stream import BackgroundWriter, FaceStream, iter_frames, open_source, prefetch


@dataclass
class VideoResult:
    source: str
    frames: int  # frames processed
    frames_with_faces: int
    faces: int  # face rows in the CSV
    tracks: int  # distinct face ids
    video_fps: float
    processing_fps: float  # frames processed per second of wall time, all outputs included
    seconds: float
    outputs: dict[str, Path] = field(default_factory=dict)  # "csv", "video", "plot" -> path
    rows: list[dict[str, Any]] = field(default_factory=list)  # the CSV rows

    def to_df(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source, "frames": self.frames, "frames_with_faces": self.frames_with_faces,
            "faces": self.faces, "tracks": self.tracks, "video_fps": round(self.video_fps, 3),
            "processing_fps": round(self.processing_fps, 1), "seconds": round(self.seconds, 2),
            "outputs": {k: str(v) for k, v in self.outputs.items()},
        }


def csv_columns(labels: tuple[str, ...]) -> list[str]:
    return ["frame", "time", "face_id", "x", "y", "w", "h", *labels, "label", "detection_confidence"]


def plot_timeline(rows: list[dict[str, Any]], labels: tuple[str, ...], path: Path, title: str = "", max_faces: int = 4) -> Path:
    """Emotion scores over time, one panel per face id (the `max_faces` seen longest)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from emolens.pipeline.draw import color_of

    by_id: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_id.setdefault(int(r["face_id"]), []).append(r)
    ids = sorted(by_id, key=lambda i: -len(by_id[i]))[:max_faces]
    n = max(1, len(ids))
    fig = Figure(figsize=(10, 2.6 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    if not ids:
        axes[0].text(0.5, 0.5, "no face found in this video", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_axis_off()
    for ax, fid in zip(axes, sorted(ids), strict=False):
        face_rows = by_id[fid]
        t = np.array([r["time"] for r in face_rows], float)
        # Break the lines where the face was not seen, rather than bridging the gap.
        step = np.median(np.diff(t)) if len(t) > 1 else 0.0
        cut = np.flatnonzero(np.diff(t) > 2.5 * step) + 1 if step > 0 else np.array([], int)
        t_plot = np.insert(t, cut, np.nan)
        for name in labels:
            b, g, r_ = color_of(name)
            values = np.insert(np.array([r[name] for r in face_rows], float), cut, np.nan)
            ax.plot(t_plot, values, label=name, color=(r_ / 255, g / 255, b / 255), linewidth=1.4)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"face #{fid}\nprobability")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    if ids:
        axes[0].legend(ncol=len(labels), loc="upper center", bbox_to_anchor=(0.5, 1.32), frameon=False, fontsize=9)
    fig.suptitle(title or "emotions over time")
    fig.savefig(path, dpi=110)
    return path


def process_video(
    source: str | Path, model: Any = None, *, detector: str = "haar", backend: str = "auto", output: str | Path = "runs/video",
    every: int = 1, smooth: float = 0.0, detect_every: int = 10, min_face_size: int = 48, save_video: bool = True,
    plot: bool = True, max_frames: int | None = None, overwrite: bool = False, progress: bool = True,
    detector_threshold: float | None = None, recognizer: EmotionRecognizer | None = None, fourcc: str = "mp4v",
) -> VideoResult:
    """Label every face in a video, tracking faces across frames with stable ids.

    Writes into `output`: STEM.csv (one row per face per processed frame: frame, time,
    face_id, box, the scores, top emotion), STEM.annotated.mp4 (processed frames, drawn) and
    STEM.emotions.png (scores over time per face). every=N processes every N-th frame;
    smooth in [0, 1) averages each face's scores over time. Existing files are kept: new
    names get -2, -3, ... unless overwrite=True.
    """
    if every < 1:
        raise ConfigError(f"every must be at least 1, got {every}")
    # One classifier thread: the second core decodes and encodes video meanwhile (see prefetch).
    rec = recognizer or EmotionRecognizer(
        model, detector=detector, backend=backend, min_face_size=min_face_size, threads=1,
        detector_options={"threshold": detector_threshold} if detector_threshold is not None else None,
    )
    src = open_source(str(source))
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffixes = [".csv"] + ([".annotated.mp4"] if save_video else []) + ([".emotions.png"] if plot else [])
    stem = free_stem(out_dir, Path(str(source)).stem or "video", suffixes, overwrite=overwrite)
    outputs = {"csv": out_dir / f"{stem}.csv"}
    stream = FaceStream(rec, detect_every=detect_every, smooth=smooth)
    columns = csv_columns(rec.labels)
    writer = None
    rows: list[dict[str, Any]] = []
    frames = with_faces = 0
    total = src.frame_count // every + (1 if src.frame_count % every else 0) if src.frame_count else None
    if max_frames is not None and total is not None:
        total = min(total, max_frames)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc=Path(str(source)).name, dynamic_ncols=True)
    frames_in = prefetch(iter_frames(src, every=every, max_frames=max_frames))
    results = stream.run(frames_in)
    t0 = time.perf_counter()
    try:
        with open(outputs["csv"], "w", newline="") as fh:
            table = csv.DictWriter(fh, fieldnames=columns)
            table.writeheader()
            for result in results:
                index, t, frame = result.frame, result.time, result.orig_img
                frames += 1
                with_faces += bool(result.faces)
                for face in result.faces:
                    x, y, w, h = face.box
                    row = {"frame": index, "time": round(t, 4), "face_id": face.face_id, "x": x, "y": y, "w": w, "h": h,
                           **{k: round(v, 5) for k, v in face.scores.items()}, "label": face.label,
                           "detection_confidence": None if face.detection_confidence is None else round(face.detection_confidence, 4)}
                    table.writerow(row)
                    rows.append(row)
                if save_video:
                    if writer is None:
                        outputs["video"] = out_dir / f"{stem}.annotated.mp4"
                        writer = BackgroundWriter(outputs["video"], fourcc, src.fps / every, (frame.shape[1], frame.shape[0]))
                    writer.write(result.plot(bars=True, color_order="bgr"))
                if bar is not None:
                    bar.update(1)
    finally:
        results.close()
        frames_in.close()  # stops the reader thread before its capture is released
        src.release()
        if writer is not None:
            writer.release()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    if frames == 0:
        outputs["csv"].unlink(missing_ok=True)
        raise DataError(f"{source}: no frame could be read; the file may be truncated or use a codec OpenCV lacks")
    if plot:
        outputs["plot"] = plot_timeline(rows, rec.labels, out_dir / f"{stem}.emotions.png", title=Path(str(source)).name)
    return VideoResult(
        source=str(source), frames=frames, frames_with_faces=with_faces, faces=len(rows),
        tracks=len({r["face_id"] for r in rows}), video_fps=src.fps, processing_fps=frames / max(seconds, 1e-9),
        seconds=seconds, outputs=outputs, rows=rows,
    )
