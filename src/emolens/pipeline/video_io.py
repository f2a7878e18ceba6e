"""Video in and out: cameras, files and stream URLs read with OpenCV; H.264 MP4 written with PyAV.

Reading stays with OpenCV (`open_source`, `iter_frames`): it opens cameras as well as files and
URLs, and decodes in C without holding the GIL, so `prefetch` overlaps decoding with the work
on the frames. Writing goes through PyAV (`VideoWriter`), because OpenCV's pip wheels carry no
H.264 encoder: their mp4v (MPEG-4 part 2) files do not play in Chromium, Firefox, notebooks or
on GitHub. PyAV's wheel ships FFmpeg with libx264 and AAC, so the annotated video of
`emolens video` and the webcam's `--record` are H.264 + yuv420p with the index at the front
(`+faststart`, playable while it downloads), and a source's sound is carried over as AAC.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import ConfigError, DataError

# libx264 speed/size trade-off. "veryfast" encodes a 640x480 frame in about 10 ms on one core
# of this project's CPU (measured on the sample face videos; "medium" takes 24 ms, "ultrafast"
# 6 ms for files 8x larger), which keeps the encoder thread ahead of detection and classification.
X264_PRESET = "veryfast"
X264_CRF = 23  # x264's default quality: no visible loss on drawn labels and bars
_TIME_BASE = Fraction(1, 90000)  # the MPEG clock: exact for 24, 25, 30 and 29.97 frames/s alike


@dataclass
class VideoSource:
    """An opened cv2.VideoCapture with what we know about it."""

    capture: Any
    label: str
    fps: float  # frames per second the source reports (30 when it reports none)
    frame_count: int  # 0 when unknown (cameras, streams)
    width: int
    height: int
    path: Path | None = None  # the file, when the source is one (its sound can be copied)

    def release(self) -> None:
        self.capture.release()


def _open_camera(index: int) -> tuple[Any, str]:
    import cv2

    label = f"camera {index}"
    # OpenCV logs its own warnings for a missing camera; our error below says it better.
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        cap = cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not cap.isOpened():
        raise DataError(
            f"{label} could not be opened: no camera with that number, or it is in use by another program. "
            "Try --camera 0, check that /dev/video* exists, or pass a video file or stream URL instead"
        )
    return cap, label


def _open_file_or_url(label: str) -> tuple[Any, Path | None]:
    import cv2

    is_url = "://" in label
    path = None if is_url else Path(label)
    if path is not None:
        if not path.exists():
            raise DataError(f"{label}: no such video file")
        if path.is_dir():
            raise DataError(f"{label}: is a folder, expected a video file")
        if path.stat().st_size == 0:
            raise DataError(f"{label}: empty file (0 bytes); expected a video")
    cap = cv2.VideoCapture(label)
    if not cap.isOpened():
        if is_url:
            raise DataError(f"{label}: stream could not be opened (check the URL and that it is reachable)")
        raise DataError(f"{label}: not a video OpenCV can read; expected a video file (mp4, avi, mov, mkv, ...)")
    return cap, path


def open_source(source: str | int | Path) -> VideoSource:
    """Open a video file, a camera index or a stream URL, with a clear error when it fails."""
    import cv2

    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        cap, label = _open_camera(int(source))
        path = None
    else:
        label = str(source)
        cap, path = _open_file_or_url(label)
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = float(fps) if fps and 0 < fps < 1000 else 30.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    return VideoSource(cap, label, fps, max(0, count), width, height, path)


def iter_frames(src: VideoSource, *, every: int = 1, max_frames: int | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, time in s, BGR frame) for every `every`-th frame; skipped frames are not decoded
    to images (`grab` only). Stops at the end, after `max_frames` yielded frames, or on a read error."""
    if every < 1:
        raise ConfigError(f"every must be at least 1, got {every}")
    cap, index, yielded = src.capture, 0, 0
    while max_frames is None or yielded < max_frames:
        if index % every:
            if not cap.grab():
                return
            index += 1
            continue
        ok, frame = cap.read()
        if not ok or frame is None:
            return
        yield index, index / src.fps, frame
        index += 1
        yielded += 1


def prefetch(frames: Iterator, size: int = 8) -> Iterator:
    """Run a frame iterator in a background thread, `size` items ahead.

    OpenCV releases the GIL while it decodes, so on a 2-core machine decoding the next frames
    overlaps with detecting and classifying this one.
    """
    q: queue.Queue = queue.Queue(maxsize=size)
    done = object()
    stop = threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            for item in frames:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            failure.append(exc)
        finally:
            q.put(done)

    thread = threading.Thread(target=work, name="emolens-decode", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except Exception:
                thread.join(0.05)


class _AudioCopy:
    """A file's first audio track, re-encoded to AAC (what MP4 players all read) and muxed
    into the output as far as the video has got, so sound and picture stay interleaved."""

    def __init__(self, path: Path, output: Any):
        import av

        self._input = av.open(str(path))
        stream = self._input.streams.audio[0]
        layout = stream.layout.name if stream.layout is not None and stream.channels <= 2 else "stereo"
        self._out = output.add_stream("aac", rate=stream.rate or 44100, layout=layout)
        self._frames = self._input.decode(stream)
        self._output = output
        self.done = False

    @staticmethod
    def has_audio(path: Path) -> bool:
        import av

        try:
            with av.open(str(path)) as container:
                return bool(container.streams.audio)
        except (av.FFmpegError, OSError):
            return False

    def until(self, seconds: float) -> None:
        """Mux the source's sound up to `seconds` (the end of the video written so far)."""
        while not self.done:
            frame = next(self._frames, None)
            if frame is None:
                self.done = True
                break
            end = None if frame.time is None else frame.time + frame.samples / frame.sample_rate
            frame.pts = None  # numbered by the encoder from 0, like the video
            for packet in self._out.encode(frame):
                self._output.mux(packet)
            if end is not None and end >= seconds:
                break

    def finish(self) -> None:
        """Flush the encoder's last packets into the output."""
        for packet in self._out.encode(None):
            self._output.mux(packet)

    def release(self) -> None:
        self._input.close()


class VideoWriter:
    """An H.264 MP4 written frame by frame from a background thread (encoding overlaps the
    caller's work), with the sound of `audio_from` carried over when that file has any.

    Frames are BGR uint8 (H, W, 3), all of one size (odd sides are padded by a pixel: H.264's
    yuv420p needs even ones). `write(frame)` places frames 1/fps apart; `write(frame, t)` at
    `t` seconds, for live sources whose frames do not come at a steady rate (the webcam).

        >>> with VideoWriter("out.mp4", fps=30, audio_from="clip.mp4") as writer:
        ...     for frame in frames:
        ...         writer.write(frame)
    """

    def __init__(self, path: str | Path, fps: float, *, audio_from: str | Path | None = None, queue_size: int = 8):
        import av  # a core dependency (see pyproject.toml); imported here so `import emolens` stays light

        if not fps > 0:
            raise ConfigError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.frames = 0
        self._av = av
        self._audio_from = Path(audio_from) if audio_from is not None and _AudioCopy.has_audio(Path(audio_from)) else None
        self._container: Any = None
        self._stream: Any = None
        self._audio: _AudioCopy | None = None
        self._last_pts = -1
        self._error: BaseException | None = None
        self._q: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._work, name="emolens-encode", daemon=True)
        self._thread.start()

    @property
    def has_audio(self) -> bool:
        """Whether the source's sound goes into this file."""
        return self._audio_from is not None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, width: int, height: int) -> None:
        av = self._av
        try:
            self._container = av.open(str(self.path), "w", format="mp4", options={"movflags": "+faststart"})
        except (av.FFmpegError, OSError) as exc:
            raise DataError(f"{self.path}: cannot write a video here ({exc})") from None
        stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001),
                                            options={"preset": X264_PRESET, "crf": str(X264_CRF)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = _TIME_BASE  # frames carry their own times (live sources)
        stream.codec_context.thread_count = 1  # the other core decodes, detects and classifies
        self._stream = stream
        if self._audio_from is not None:
            try:
                self._audio = _AudioCopy(self._audio_from, self._container)
            except (av.FFmpegError, ValueError) as exc:
                warnings.warn(f"{self._audio_from}: its sound could not be read ({exc}); {self.path} has none", stacklevel=2)
                self._audio_from = None

    def _encode(self, frame: np.ndarray, seconds: float, index: int) -> None:
        h, w = frame.shape[:2]
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self._container is None:
            self._open(frame.shape[1], frame.shape[0])
        if (frame.shape[1], frame.shape[0]) != (self._stream.width, self._stream.height):
            raise DataError(f"{self.path}: frame {index} is {w}x{h}, the video is {self._stream.width}x{self._stream.height}")
        image = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
        self._last_pts = max(self._last_pts + 1, round(seconds / _TIME_BASE))  # strictly increasing
        image.pts, image.time_base = self._last_pts, _TIME_BASE
        for packet in self._stream.encode(image):
            self._container.mux(packet)
        if self._audio is not None:
            self._audio.until(seconds + 1.0 / self.fps)

    def _work(self) -> None:
        while (item := self._q.get()) is not None:
            if self._error is None:
                try:
                    self._encode(*item)
                except BaseException as exc:  # raised in the caller's thread, by write or close
                    self._error = exc

    def _check(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            if isinstance(error, DataError | ConfigError):
                raise error
            raise DataError(f"{self.path}: cannot write a video here ({error})")

    def write(self, frame: np.ndarray, seconds: float | None = None) -> None:
        """Queue one BGR frame, shown at `seconds` (default: frames 1/fps apart)."""
        self._check()
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise DataError(f"{self.path}: frames must be uint8 (H, W, 3) BGR images, got {getattr(frame, 'shape', type(frame).__name__)}")
        self._q.put((frame, self.frames / self.fps if seconds is None else float(seconds), self.frames))
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (its index is written now)."""
        if not self._thread.is_alive():
            return
        self._q.put(None)
        self._thread.join()
        try:
            if self._container is not None and self._error is None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
                if self._audio is not None:
                    self._audio.finish()
        except (self._av.FFmpegError, OSError) as exc:
            self._error = exc
        finally:
            if self._audio is not None:
                self._audio.release()
            if self._container is not None:
                try:
                    self._container.close()
                except (self._av.FFmpegError, OSError) as exc:
                    self._error = self._error or exc
        self._check()
