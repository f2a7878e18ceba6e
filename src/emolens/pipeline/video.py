"""`emolens video FILE`: a per-frame CSV, an annotated H.264 video (with the source's sound)
and an emotion-over-time plot.

    >>> rec = EmotionRecognizer.of(None, threads=PIPELINE.stream_threads)
    >>> result = process_video("clip.mp4", rec, stream=StreamOptions(smooth=0.5), output="out/")
    >>> result.outputs["video"]                  # out/clip.annotated.mp4
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import ConfigError, DataError, Interrupted
from emolens.paths import free_stem
from emolens.pipeline.defaults import PIPELINE
from emolens.pipeline.draw import LayoutMemory
from emolens.pipeline.recognizer import EmotionRecognizer
from emolens.pipeline.results import table_columns
from emolens.pipeline.stream import FaceStream, StreamOptions
from emolens.pipeline.video_io import VideoSource, VideoWriter, iter_frames, open_source, prefetch


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
    audio: bool = False  # whether the annotated video carries the source's sound

    @cached_property
    def rows(self) -> list[dict[str, Any]]:
        """The CSV's rows (ImageResult.rows() of each frame), read back from the file once, when
        first asked for: labelling never holds them (about 900 bytes a face a frame as dicts)."""
        return [] if "csv" not in self.outputs else self.to_df().to_dict("records")

    def to_df(self):
        """The CSV as a pandas DataFrame (empty cells, such as a tilt without landmarks, are NaN)."""
        import pandas as pd

        return pd.read_csv(self.outputs["csv"])

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source, "frames": self.frames, "frames_with_faces": self.frames_with_faces,
            "faces": self.faces, "tracks": self.tracks, "video_fps": round(self.video_fps, 3),
            "processing_fps": round(self.processing_fps, 1), "seconds": round(self.seconds, 2),
            "outputs": {k: str(v) for k, v in self.outputs.items()}, "audio": self.audio,
        }


class Timeline:
    """Each face's scores over time for the plot, in bounded memory: at most `max_points` a face
    (when full, every other point goes and later points are taken half as often), so an hour of
    video costs what a minute does: at most 64 KB a face at the default, a few KB for a short track."""

    def __init__(self, labels: tuple[str, ...], max_points: int = 2048) -> None:
        self.labels, self.max_points = labels, max_points
        self.points: dict[int, np.ndarray] = {}  # face id -> (max_points, 1 + len(labels)): time, scores
        self.count: dict[int, int] = {}  # points held
        self.seen: dict[int, int] = {}  # frames the face was in
        self.stride: dict[int, int] = {}  # one point kept every `stride` frames of the face

    def add(self, face_id: int, time: float, scores: dict[str, float]) -> None:
        seen = self.seen.get(face_id, 0)
        self.seen[face_id] = seen + 1
        if face_id not in self.points:  # small at first: a crowd's many short tracks cost little
            self.points[face_id] = np.empty((min(64, self.max_points), 1 + len(self.labels)), np.float32)
            self.count[face_id], self.stride[face_id] = 0, 1
        if seen % self.stride[face_id]:
            return
        n = self.count[face_id]
        if n == len(self.points[face_id]) < self.max_points:  # grow by doubling, up to max_points
            grown = np.empty((min(2 * n, self.max_points), 1 + len(self.labels)), np.float32)
            grown[:n] = self.points[face_id]
            self.points[face_id] = grown
        if n == self.max_points:  # full: keep every other point, and take points half as often
            kept = self.points[face_id][0:n:2]
            self.points[face_id][: len(kept)] = kept
            n = self.count[face_id] = len(kept)
            self.stride[face_id] *= 2
            if seen % self.stride[face_id]:
                return
        self.points[face_id][n] = (time, *(scores[k] for k in self.labels))
        self.count[face_id] = n + 1

    def series(self, face_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(times, scores (n, labels)) of one face, in time order."""
        held = self.points[face_id][: self.count[face_id]].astype(np.float64)
        return held[:, 0], held[:, 1:]


def csv_columns(labels: tuple[str, ...]) -> list[str]:
    """The video CSV's header: `ImageResult.rows()` of a video frame, the layout of every emolens table."""
    return table_columns(labels, frames=True)


def plot_timeline(timeline: Timeline, path: Path, title: str = "", max_faces: int = 4) -> Path:
    """Emotion scores over time, one panel per face id (the `max_faces` seen longest)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    labels = timeline.labels
    ids = sorted(timeline.seen, key=lambda i: -timeline.seen[i])[:max_faces]
    n = max(1, len(ids))
    fig = Figure(figsize=(10, 2.6 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    if not ids:
        axes[0].text(0.5, 0.5, "no face found in this video", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_axis_off()
    for ax, fid in zip(axes, sorted(ids), strict=False):
        _plot_face(ax, *timeline.series(fid), labels)
        ax.set_ylabel(f"face #{fid}\nprobability")
    axes[-1].set_xlabel("time (s)")
    if ids:
        axes[0].legend(ncol=len(labels), loc="upper center", bbox_to_anchor=(0.5, 1.32), frameon=False, fontsize=9)
    fig.suptitle(title or "emotions over time")
    fig.savefig(path, dpi=110)
    return path


def _plot_face(ax: Any, t: np.ndarray, scores: np.ndarray, labels: tuple[str, ...]) -> None:
    from emolens.pipeline.colors import rgb01_of

    # Break the lines where the face was not seen, rather than bridging the gap.
    step = np.median(np.diff(t)) if len(t) > 1 else 0.0
    cut = np.flatnonzero(np.diff(t) > 2.5 * step) + 1 if step > 0 else np.array([], int)
    t_plot = np.insert(t, cut, np.nan)
    for k, name in enumerate(labels):
        ax.plot(t_plot, np.insert(scores[:, k], cut, np.nan), label=name, color=rgb01_of(name, labels), linewidth=1.4)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)


def _progress_bar(src: VideoSource, every: int, max_frames: int | None, name: str) -> Any:
    from tqdm import tqdm

    total = -(-src.frame_count // every) if src.frame_count else None
    if max_frames is not None and total is not None:
        total = min(total, max_frames)
    return tqdm(total=total, unit="frame", desc=name, dynamic_ncols=True)


@dataclass
class _Counts:
    frames: int = 0
    with_faces: int = 0
    faces: int = 0  # rows written
    stopped: bool = False  # by Ctrl-C


def _close_all(results: Any, frames_in: Any, src: VideoSource, writer: VideoWriter | None, bar: Any) -> None:
    """Stop the stream and close what it read and wrote, in order: the reader thread before its
    capture is released, the video finished so it plays."""
    results.close()
    frames_in.close()
    src.release()
    if writer is not None:
        writer.close()
    if bar is not None:
        bar.close()


def _label_frames(
    results: Any, table: csv.DictWriter, timeline: Timeline, writer: VideoWriter | None, bars: str, bar: Any,
    counts: _Counts | None = None, fps: float | None = None,
) -> _Counts:
    """Write each frame's faces to the CSV (ImageResult.rows()) and the timeline, and its drawing to
    the video (`fps` frames a second); `counts` (returned) is filled as it goes, so a Ctrl-C leaves it right."""
    counts = counts if counts is not None else _Counts()
    memory = LayoutMemory.at_rate(fps)  # one person's bars through a shot, on one side of them; tags that stay put
    for result in results:
        counts.frames += 1
        counts.with_faces += bool(result.faces)
        for row in result.rows():
            table.writerow(row)
            timeline.add(int(row["face_id"]), float(row["time"]), row)
            counts.faces += 1
        if writer is not None:
            writer.write(result.plot(bars=bars, color_order="bgr", follow=memory))
        if bar is not None:
            bar.update(1)
    return counts


def _output_paths(out_dir: Path, stem: str, *, save_video: bool, plot: bool, overwrite: bool) -> dict[str, Path]:
    """Where a video's table, annotated copy and timeline go: names no existing file has (unless
    `overwrite`), all sharing one stem."""
    out_dir.mkdir(parents=True, exist_ok=True)
    suffixes = {"csv": ".csv"} | ({"video": ".annotated.mp4"} if save_video else {}) | ({"plot": ".emotions.png"} if plot else {})
    free = free_stem(out_dir, stem, list(suffixes.values()), overwrite=overwrite)
    return {key: out_dir / f"{free}{suffix}" for key, suffix in suffixes.items()}


def process_video(
    source: str | Path, recognizer: Any = None, *, stream: StreamOptions | None = None, output: str | Path = "runs/video",
    every: int = 1, save_video: bool = True, plot: bool = True, max_frames: int | None = None, overwrite: bool = False,
    progress: bool = True,
) -> VideoResult:
    """Label every face in a video, tracking faces across frames with stable ids.

    recognizer: a ready `EmotionRecognizer` (or a model for `EmotionRecognizer.of`, built
    with the PIPELINE defaults and one classifier thread). stream: detection interval,
    smoothing and score bars (`StreamOptions`, defaults from PIPELINE).

    Writes into `output`: STEM.csv (one `ImageResult.rows()` row per face per processed frame:
    frame, time, image, face, face_id, box, the scores, top emotion), STEM.annotated.mp4 (H.264,
    the processed frames drawn, the source's sound kept) and STEM.emotions.png (scores over
    time per face). every=N processes every N-th frame. Existing files are kept: new names get
    -2, -3, ... unless overwrite=True.
    """
    if every < 1:
        raise ConfigError(f"every must be at least 1, got {every}")
    # One classifier thread by default: the second core decodes and encodes video meanwhile.
    rec = EmotionRecognizer.of(recognizer, threads=PIPELINE.stream_threads)
    options = stream if stream is not None else StreamOptions()
    src = open_source(str(source))
    name = Path(str(source)).name or "video"
    outputs = _output_paths(Path(output), Path(str(source)).stem or "video", save_video=save_video, plot=plot, overwrite=overwrite)
    rate = src.fps / every  # frames processed a second
    # Sound only when the frames keep their timing: every-N-th frame or a cut still spans the same time.
    writer = VideoWriter(outputs["video"], rate, audio_from=src.path) if save_video else None
    timeline = Timeline(rec.labels)
    bar = _progress_bar(src, every, max_frames, name) if progress else None
    frames_in = prefetch(iter_frames(src, every=every, max_frames=max_frames))
    results = FaceStream(rec, options, name=name, fps=rate).run(frames_in)
    t0 = time.perf_counter()
    counts = _Counts()
    try:
        with open(outputs["csv"], "w", newline="") as fh:
            table = csv.DictWriter(fh, fieldnames=csv_columns(rec.labels))
            table.writeheader()
            _label_frames(results, table, timeline, writer, options.bars, bar, counts, rate)
    except KeyboardInterrupt:
        counts.stopped = True  # the outputs are closed below: a playable video and a CSV of the frames done
    finally:
        _close_all(results, frames_in, src, writer, bar)
    seconds = time.perf_counter() - t0
    if counts.frames == 0:
        for path in outputs.values():
            path.unlink(missing_ok=True)
        if counts.stopped:
            raise Interrupted("0 frames done; nothing written")
        raise DataError(f"{source}: no frame could be read; the file may be truncated or use a codec OpenCV lacks")
    if plot:
        outputs["plot"] = plot_timeline(timeline, outputs["plot"], title=name)
    if counts.stopped:
        raise Interrupted(f"{counts.frames} frames done; " + ", ".join(f"{kind}: {path}" for kind, path in outputs.items()))
    return VideoResult(
        source=str(source), frames=counts.frames, frames_with_faces=counts.with_faces, faces=counts.faces,
        tracks=len(timeline.seen), video_fps=src.fps, processing_fps=counts.frames / max(seconds, 1e-9),
        seconds=seconds, outputs=outputs, audio=writer is not None and writer.has_audio,
    )
