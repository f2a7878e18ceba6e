"""`emolens webcam`: a live window with every face labelled and a bar graph of its emotions.

The frame loop (`live_frames`) is separate from the display, so it runs and is tested with a
video file standing in for the camera. The display is OpenCV's window when OpenCV was built
with a GUI (opencv-python); the core dependency opencv-python-headless has none, so then a
matplotlib window is used where an interactive matplotlib backend and a display exist, and
otherwise the error says how to get one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emolens.errors import ConfigError
from emolens.pipeline.draw import draw_fps, score_panel
from emolens.pipeline.outputs import free_stem
from emolens.pipeline.recognizer import EmotionRecognizer
from emolens.pipeline.results import ImageResult
from emolens.pipeline.stream import FaceStream, iter_frames, open_source

QUIT_KEYS = ("q", "esc")
SNAPSHOT_KEY = "s"
NO_GUI_HELP = (
    "no window can be opened: this OpenCV (opencv-python-headless, emolens's default) has no GUI, and matplotlib "
    "has no interactive backend or display here. For the live window install OpenCV's GUI build: "
    "`pip uninstall -y opencv-python-headless && pip install 'opencv-python<5'`. To label a recording instead, "
    "use `emolens video FILE`; to run without a window, pass --no-window (with --record OUT.mp4 to keep the result)"
)


@dataclass
class LiveFrame:
    result: ImageResult  # the frame and its faces (ids stable across frames)
    fps: float  # frames processed per second over the last second (0 on the first frame)
    view: np.ndarray  # what the window shows: the labelled frame and the score panel


def render_live(result: ImageResult, fps: float, panel_width: int = 260) -> np.ndarray:
    """The labelled frame with the frame rate, and beside it a bar graph of the largest face."""
    frame = result.plot(bars=len(result.faces) > 1, color_order="bgr")  # bars per face only when the panel cannot show them all
    draw_fps(frame, fps)
    main = max(result.faces, key=lambda f: f.box[2] * f.box[3], default=None)
    title = "no face" if main is None else (f"face #{main.face_id}" if main.face_id is not None else "face")
    panel = score_panel(None if main is None else main.scores, frame.shape[0], panel_width, result.labels, title=title)
    return np.hstack([frame, panel])


def live_frames(
    source: str | int, recognizer: EmotionRecognizer, *, detect_every: int = 3, smooth: float = 0.5, max_frames: int | None = None,
) -> Iterator[LiveFrame]:
    """Process a camera (index), stream URL or video file frame by frame until it ends."""
    from collections import deque

    src = open_source(source)
    stream = FaceStream(recognizer, detect_every=detect_every, smooth=smooth)
    stamps: deque[float] = deque()
    try:
        for result in stream.run(iter_frames(src, max_frames=max_frames)):
            now = time.perf_counter()
            stamps.append(now)
            while len(stamps) > 2 and now - stamps[0] > 1.0:  # the rate over the last second
                stamps.popleft()
            fps = (len(stamps) - 1) / (now - stamps[0]) if len(stamps) > 1 else 0.0
            yield LiveFrame(result, fps, render_live(result, fps))
    finally:
        src.release()


class Window(Protocol):
    def show(self, image: np.ndarray) -> None: ...
    def key(self) -> str | None: ...  # the key pressed since the last call ("q", "s", "esc"), or None
    def closed(self) -> bool: ...
    def close(self) -> None: ...


class Cv2Window:
    def __init__(self, title: str):
        import cv2

        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise ConfigError(NO_GUI_HELP) from None

    def show(self, image: np.ndarray) -> None:
        import cv2

        cv2.imshow(self.title, image)

    def key(self) -> str | None:
        import cv2

        code = cv2.waitKey(1) & 0xFF
        return None if code == 255 else ("esc" if code == 27 else chr(code).lower())

    def closed(self) -> bool:
        import cv2

        return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.title)


class MatplotlibWindow:
    """A live image in a matplotlib figure, for OpenCV builds without a GUI."""

    _NON_INTERACTIVE = ("agg", "pdf", "ps", "svg", "pgf", "cairo", "template", "inline")

    def __init__(self, title: str):
        import matplotlib.pyplot as plt

        backend = plt.get_backend().lower()
        if any(b in backend for b in self._NON_INTERACTIVE):
            raise ConfigError(NO_GUI_HELP)
        self._plt = plt
        self.fig, self.ax = plt.subplots(num=title)
        self.ax.set_axis_off()
        self.fig.tight_layout()
        self._im = None
        self._key: str | None = None
        self._closed = False
        self.fig.canvas.mpl_connect("key_press_event", self._on_key)
        self.fig.canvas.mpl_connect("close_event", lambda _e: setattr(self, "_closed", True))
        plt.show(block=False)

    def _on_key(self, event: Any) -> None:
        self._key = "esc" if event.key == "escape" else (event.key or "").lower()

    def show(self, image: np.ndarray) -> None:
        rgb = image[:, :, ::-1]
        if self._im is None:
            self._im = self.ax.imshow(rgb)
        else:
            self._im.set_data(rgb)
        self._plt.pause(0.001)

    def key(self) -> str | None:
        key, self._key = self._key, None
        return key

    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._plt.close(self.fig)


def open_window(title: str = "emolens") -> Window:
    """OpenCV's window when this OpenCV has a GUI, else a matplotlib one, else a clear error."""
    try:
        return Cv2Window(title)
    except ConfigError:
        return MatplotlibWindow(title)


@dataclass
class WebcamReport:
    frames: int = 0
    seconds: float = 0.0
    snapshots: list[Path] = field(default_factory=list)
    recording: Path | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def run_webcam(
    source: str | None = None, camera: int = 0, model: Any = None, *, detector: str = "haar", backend: str = "auto",
    smooth: float = 0.5, detect_every: int = 3, min_face_size: int = 48, snapshot_dir: str | Path = ".",
    window: bool = True, record: str | Path | None = None, max_frames: int | None = None, detector_threshold: float | None = None,
    recognizer: EmotionRecognizer | None = None, display: Window | None = None,
) -> WebcamReport:
    """Show a camera (or stream URL / video file `source`) live with every face labelled.

    Keys: s saves a snapshot into `snapshot_dir`, q or Esc quits (closing the window too).
    window=False processes without showing anything (with `record` to keep an annotated
    video). `display` replaces the window (an object with show/key/closed/close).
    """
    import cv2

    display = display if display is not None else (open_window("emolens - s: snapshot, q: quit") if window else None)
    rec = recognizer or EmotionRecognizer(
        model, detector=detector, backend=backend, min_face_size=min_face_size, threads=1,
        detector_options={"threshold": detector_threshold} if detector_threshold is not None else None,
    )
    report = WebcamReport()
    writer = None
    snap_dir = Path(snapshot_dir)
    t0 = time.perf_counter()
    try:
        for live in live_frames(source if source is not None else camera, rec, detect_every=detect_every, smooth=smooth, max_frames=max_frames):
            report.frames += 1
            if record is not None:
                if writer is None:
                    report.recording = Path(record)
                    if report.recording.exists():
                        raise ConfigError(f"{record} already exists; choose another --record file")
                    h, w = live.view.shape[:2]
                    writer = cv2.VideoWriter(str(record), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (w, h))
                writer.write(live.view)
            if display is None:
                continue
            display.show(live.view)
            key = display.key()
            if key == SNAPSHOT_KEY:
                snap_dir.mkdir(parents=True, exist_ok=True)
                stem = free_stem(snap_dir, time.strftime("emolens-snapshot-%Y%m%d-%H%M%S"), [".jpg"])
                path = snap_dir / f"{stem}.jpg"
                cv2.imwrite(str(path), live.view)
                report.snapshots.append(path)
                print(f"snapshot saved to {path}")
            if key in QUIT_KEYS or display.closed():
                break
    finally:
        report.seconds = time.perf_counter() - t0
        if writer is not None:
            writer.release()
        if display is not None:
            display.close()
    return report
