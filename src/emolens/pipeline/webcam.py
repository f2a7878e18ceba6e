"""`emolens webcam`: a live window with every face labelled and a bar graph of its emotions.

The frame loop (`live_frames`) is separate from the display, so it runs and is tested with a
video file standing in for the camera. The display is OpenCV's window when OpenCV was built
with a GUI (opencv-python); the core dependency opencv-python-headless has none, so then a Tk
window (Python's own tkinter, with Pillow) shows the frames, and where neither exists the
error says what to install. `--record` writes what the window shows through the same H.264
writer as `emolens video` (`emolens.pipeline.video_io.VideoWriter`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emolens.errors import ConfigError
from emolens.paths import free_stem
from emolens.pipeline.defaults import PIPELINE
from emolens.pipeline.draw import LayoutMemory, draw_fps, score_panel
from emolens.pipeline.recognizer import EmotionRecognizer
from emolens.pipeline.results import ImageResult
from emolens.pipeline.stream import FaceStream, StreamOptions
from emolens.pipeline.video_io import VideoWriter, iter_frames, open_source

QUIT_KEYS = ("q", "esc")
SNAPSHOT_KEY = "s"
NO_DISPLAY_HELP = (
    "To label a recording instead, use `emolens video FILE`; to run without a window, pass --no-window "
    "(with --record OUT.mp4 to keep the result)"
)
NO_GUI_HELP = (
    "no window can be opened: this OpenCV (opencv-python-headless, emolens's default) has no GUI and this Python has "
    "no tkinter. Install your system's Tk for Python (Debian/Ubuntu: `apt install python3-tk`; python.org and conda "
    "builds include it), or OpenCV's GUI build: `pip uninstall -y opencv-python-headless && pip install 'opencv-python<5'`. "
    + NO_DISPLAY_HELP
)


@dataclass
class LiveFrame:
    result: ImageResult  # the frame and its faces (ids stable across frames)
    fps: float  # frames processed per second over the last second (0 on the first frame)
    view: np.ndarray  # what the window shows: the labelled frame and the score panel
    time: float = 0.0  # seconds into the source: a file's own clock, else since the camera opened
    source_fps: float = 30.0  # the rate the source reports
    memory: LayoutMemory | None = None  # what the stream's drawing carries from frame to frame (whose bars)


def render_live(
    result: ImageResult, fps: float, bars: str = PIPELINE.bars, panel_width: int = 260, memory: LayoutMemory | None = None,
) -> np.ndarray:
    """The labelled frame with the frame rate, and beside it (outside the picture, so it covers
    no face) a bar graph of the largest face (`memory`'s choice, which keeps one person's
    through a stream, and each label where it was); bars="all" adds each face's bars on the frame."""
    memory = memory or LayoutMemory()
    frame = result.plot(bars="all" if bars == "all" else "none", color_order="bgr", follow=memory)
    draw_fps(frame, fps)
    main = memory.chosen if bars == "all" else memory.main_face(result.faces)  # "all": the plot chose it
    if main is None and memory.held:  # out of view for a moment: its last scores, rather than blank bars
        main, title = memory.shown, f"face #{memory.face_id} (out of view)"
    else:
        title = "no face" if main is None else (f"face #{main.face_id}" if main.face_id is not None else "face")
        title += " (chosen)" if main is not None and memory.pinned else ""
    scores = None if main is None or bars == "none" else main.scores
    panel = score_panel(scores, frame.shape[0], panel_width, result.labels, title=title)
    return np.hstack([frame, panel])


def live_frames(
    source: str | int, recognizer: EmotionRecognizer, stream: StreamOptions | None = None, *, max_frames: int | None = None,
) -> Iterator[LiveFrame]:
    """Process a camera (index), stream URL or video file frame by frame until it ends."""
    from collections import deque

    options = stream if stream is not None else StreamOptions()
    src = open_source(source)
    faces = FaceStream(recognizer, options, name=src.label, fps=src.fps)
    memory = LayoutMemory.at_rate(src.fps)
    stamps: deque[float] = deque()
    start = time.perf_counter()
    try:
        for result in faces.run(iter_frames(src, max_frames=max_frames)):
            now = time.perf_counter()
            stamps.append(now)
            while len(stamps) > 2 and now - stamps[0] > 1.0:  # the rate over the last second
                stamps.popleft()
            fps = (len(stamps) - 1) / (now - stamps[0]) if len(stamps) > 1 else 0.0
            clock = float(result.time or 0.0) if src.path is not None else now - start
            yield LiveFrame(result, fps, render_live(result, fps, options.bars, memory=memory), clock, src.fps, memory)
    finally:
        src.release()


class Window(Protocol):
    def show(self, image: np.ndarray) -> None: ...
    def key(self) -> str | None: ...  # the key pressed since the last call ("q", "s", "esc"), or None
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    # Optional: the pixel of the shown image clicked since the last call, or None (`follow_click`).
    # def click(self) -> tuple[int, int] | None: ...


def follow_click(frame: LiveFrame, point: tuple[int, int]) -> int | None:
    """A click at `point` of the shown view: on a face, the live bars follow that person
    (`LayoutMemory.follow`), however large the others grow; on the face followed already, they
    go back to the largest. The id followed after the click (None: the largest face's)."""
    memory = frame.memory
    if memory is None:
        return None
    x, y = point
    under = [f for f in frame.result.faces if f.face_id is not None and f.box[0] <= x <= f.box[0] + f.box[2] and f.box[1] <= y <= f.box[1] + f.box[3]]
    if under:
        face = min(under, key=lambda f: f.box[2] * f.box[3])  # the smallest: a face in front of another's box
        memory.follow(None if memory.pinned and memory.face_id == face.face_id else face.face_id)
    return memory.face_id if memory.pinned else None


class Cv2Window:
    def __init__(self, title: str):
        import cv2

        self.title = title
        self._click: tuple[int, int] | None = None
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise ConfigError(NO_GUI_HELP) from None
        cv2.setMouseCallback(title, self._on_mouse)

    def _on_mouse(self, event: int, x: int, y: int, *_: Any) -> None:
        import cv2

        if event == cv2.EVENT_LBUTTONDOWN:
            self._click = (x, y)  # OpenCV gives the image's pixel, however the window is scaled

    def click(self) -> tuple[int, int] | None:
        click, self._click = self._click, None
        return click

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


class TkWindow:
    """A live image in a Tk window: Python's own GUI toolkit (tkinter, with Pillow's ImageTk),
    so the default install, whose OpenCV has no GUI, still opens a window."""

    def __init__(self, title: str):
        try:
            import tkinter

            from PIL import Image, ImageTk
        except ImportError as exc:
            raise ConfigError(f"{NO_GUI_HELP} (tkinter: {exc})") from None
        try:
            self.root = tkinter.Tk()
        except tkinter.TclError as exc:  # no display: SSH without -X, a server, DISPLAY unset
            raise ConfigError(f"no window can be opened here ({exc}). {NO_DISPLAY_HELP}") from None
        self._image_cls, self._tk_image = Image, ImageTk
        self.root.title(title)
        self._label = tkinter.Label(self.root, borderwidth=0)
        self._label.pack()
        self._photo: Any = None
        self._key: str | None = None
        self._click: tuple[int, int] | None = None
        self._closed = False
        self.root.bind("<Key>", self._on_key)
        self._label.bind("<Button-1>", self._on_click)
        self.root.protocol("WM_DELETE_WINDOW", self._on_close)

    def _on_key(self, event: Any) -> None:
        self._key = "esc" if event.keysym == "Escape" else (event.char or event.keysym or "").lower() or None

    def _on_close(self) -> None:
        self._closed = True

    def _on_click(self, event: Any) -> None:
        self._click = (int(event.x), int(event.y))  # the label shows the image at 1:1

    def click(self) -> tuple[int, int] | None:
        click, self._click = self._click, None
        return click

    def show(self, image: np.ndarray) -> None:
        rgb = np.ascontiguousarray(image[:, :, ::-1])  # the views are BGR, as OpenCV draws them
        self._photo = self._tk_image.PhotoImage(self._image_cls.fromarray(rgb))  # kept: Tk shows nothing once it is freed
        self._label.configure(image=self._photo)
        self.root.update()  # draws the frame and runs the key and close handlers

    def key(self) -> str | None:
        key, self._key = self._key, None
        return key

    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        import tkinter

        self._closed = True
        with contextlib.suppress(tkinter.TclError):  # destroyed already, or its display went away
            self.root.destroy()


def open_window(title: str = "emolens") -> Window:
    """OpenCV's window when this OpenCV has a GUI (opencv-python), else a Tk window (the
    default install's headless OpenCV has none), else a clear error saying what to install."""
    try:
        return Cv2Window(title)
    except ConfigError:
        return TkWindow(title)


@dataclass
class WebcamReport:
    frames: int = 0
    seconds: float = 0.0
    snapshots: list[Path] = field(default_factory=list)
    recording: Path | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _snapshot(view: np.ndarray, folder: Path) -> Path:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    stem = free_stem(folder, time.strftime("emolens-snapshot-%Y%m%d-%H%M%S"), [".jpg"])
    path = folder / f"{stem}.jpg"
    ok, encoded = cv2.imencode(".jpg", view)
    if ok:
        path.write_bytes(encoded.tobytes())
    return path


def run_webcam(
    source: str | None = None, recognizer: Any = None, *, camera: int = 0, stream: StreamOptions | None = None,
    snapshot_dir: str | Path = ".", window: bool = True, record: str | Path | None = None, max_frames: int | None = None,
    display: Window | None = None,
) -> WebcamReport:
    """Show a camera (or stream URL / video file `source`) live with every face labelled.

    recognizer: a ready `EmotionRecognizer` (or a model for `EmotionRecognizer.of`, with the
    PIPELINE defaults and one classifier thread). stream: `StreamOptions` (PIPELINE defaults).
    Keys: s saves a snapshot into `snapshot_dir`, q or Esc quits (closing the window too); a
    click on a face keeps the bars on that person (`follow_click`), a second click lets go.
    window=False processes without showing anything (with `record` to keep an annotated
    H.264 video). `display` replaces the window (an object with show/key/closed/close).
    """
    if record is not None and Path(record).exists():
        raise ConfigError(f"{record} already exists; choose another --record file")
    rec = EmotionRecognizer.of(recognizer, threads=PIPELINE.stream_threads)
    display = display if display is not None else (open_window("emolens - s: snapshot, q: quit, click a face: follow it") if window else None)
    report = WebcamReport(recording=Path(record) if record is not None else None)
    writer = None
    t0 = time.perf_counter()
    try:
        for live in live_frames(source if source is not None else camera, rec, stream, max_frames=max_frames):
            report.frames += 1
            if record is not None:
                writer = writer or VideoWriter(record, live.source_fps)
                writer.write(live.view, live.time)  # at the frame's own time: a live camera's rate varies
            if display is None:
                continue
            display.show(live.view)
            point = display.click() if hasattr(display, "click") else None
            if point is not None:
                follow_click(live, point)
            key = display.key()
            if key == SNAPSHOT_KEY:
                report.snapshots.append(_snapshot(live.view, Path(snapshot_dir)))
                print(f"snapshot saved to {report.snapshots[-1]}")
            if key in QUIT_KEYS or display.closed():
                break
    finally:
        report.seconds = time.perf_counter() - t0
        if writer is not None:
            writer.close()
        if display is not None:
            display.close()
    return report
