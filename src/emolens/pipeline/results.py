"""Results objects, Ultralytics-style: one `ImageResult` per image, one `FaceResult` per face.

Every export derives from `summary()`: the HTTP API returns it as is; `rows()` flattens it
into the one table layout that `to_df`, `to_csv`, `emolens predict --format csv` and the video
CSV all share; `to_json` serialises it. `plot()` draws the faces on a copy of the image.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from emolens.errors import ConfigError, DataError
from emolens.labels import EMOTIONS
from emolens.pipeline.defaults import PIPELINE

if TYPE_CHECKING:  # pragma: no cover
    from emolens.pipeline.draw import LayoutMemory

# The keys of FaceResult.summary(); everything else in a summary dict (frame, time, image,
# face, a caller's path) is context that leads its table row.
_FACE_KEYS = ("face_id", "box", "label", "score", "scores", "detection_confidence", "tilt", "landmarks")


def flat_row(summary: dict[str, Any], **leading: Any) -> dict[str, Any]:
    """One table row from one face's summary dict (as `summary()` gives it).

    Columns, in order: `leading` (e.g. path=..., or file=...), the summary's context (frame,
    time, image, face), face_id, x, y, w, h, one probability per emotion (label order),
    label, score (the top probability), detection_confidence, tilt. `table_columns` names them.
    Landmarks stay in the JSON (`summary()`): six columns of coordinates would bury the table.
    """
    context = {k: v for k, v in summary.items() if k not in _FACE_KEYS}
    return {
        **leading, **context, "face_id": summary["face_id"], **summary["box"], **summary["scores"],
        "label": summary["label"], "score": summary["score"], "detection_confidence": summary["detection_confidence"],
        "tilt": summary.get("tilt"),
    }


def _non_interactive_backends() -> set[str]:
    """matplotlib's backends that draw to files only (agg, pdf, svg, ...), lower case."""
    try:
        from matplotlib.backends import BackendFilter, backend_registry
    except ImportError:  # matplotlib < 3.9
        from matplotlib import rcsetup

        return {b.lower() for b in rcsetup.non_interactive_bk}
    return set(backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE))


def table_columns(labels: Sequence[str] = EMOTIONS, leading: Iterable[str] = (), *, frames: bool = False, image: bool = True) -> list[str]:
    """The columns `flat_row` gives, for a header written before any row (or a table with none).

    frames: the rows come from video frames (frame, time); image: summary() rows carry the
    image name and face index (FaceResult.flat() rows do not).
    """
    context = [*(["frame", "time"] if frames else []), *(["image", "face"] if image else [])]
    return [*leading, *context, "face_id", "x", "y", "w", "h", *labels, "label", "score", "detection_confidence", "tilt"]


@dataclass
class FaceResult:
    box: tuple[int, int, int, int]  # x, y, w, h in pixels of the original image
    label: str  # the most probable emotion; in videos and streams a track's, held until another leads it (StreamOptions.label_margin)
    scores: dict[str, float]  # probability of each emotion, in label order (EMOTIONS)
    detection_confidence: float | None = None  # None for a crop read as it came (predict_crops: no face found, or reframe=False)
    face_id: int | None = None  # stable track id in videos and streams
    # The face's in-plane tilt in degrees, positive when turned clockwise as seen (`Detection.roll`;
    # in video the track's moving average), by which its crop is turned upright unless align is
    # off; None from a detector that finds no landmarks (Haar, dlib) and for a crop in which no face
    # was found (`predict_crops`), 0 where the landmarks disagree (a profile).
    tilt: float | None = None
    # Eyes and mouth centre in pixels of the original image, from detectors that find landmarks:
    # {"right_eye": (x, y), "left_eye": (x, y), "mouth": (x, y)}, the person's right eye first
    # (on the image's left when the face is upright); None without landmarks.
    landmarks: dict[str, tuple[float, float]] | None = None

    @property
    def score(self) -> float:
        return self.scores[self.label]

    @classmethod
    def from_proba(
        cls, box: tuple[int, int, int, int], proba: np.ndarray, labels: tuple[str, ...] = EMOTIONS,
        detection_confidence: float | None = None, face_id: int | None = None, tilt: float | None = None,
        landmarks: dict[str, tuple[float, float]] | None = None,
    ) -> FaceResult:
        scores = {name: float(p) for name, p in zip(labels, proba, strict=True)}
        return cls(
            tuple(int(v) for v in box), labels[int(np.argmax(proba))], scores,
            None if detection_confidence is None else float(detection_confidence), face_id,
            None if tilt is None else float(tilt), landmarks,
        )

    def summary(self) -> dict[str, Any]:
        x, y, w, h = self.box
        return {
            "face_id": self.face_id,
            "box": {"x": x, "y": y, "w": w, "h": h},
            "label": self.label,
            "score": round(self.score, 6),
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
            "detection_confidence": None if self.detection_confidence is None else round(self.detection_confidence, 4),
            "tilt": None if self.tilt is None else round(self.tilt, 1),
            "landmarks": None if self.landmarks is None else {k: [round(x, 1), round(y, 1)] for k, (x, y) in self.landmarks.items()},
        }

    def flat(self, **leading: Any) -> dict[str, Any]:
        """One table row (`flat_row` of summary()): box and scores as their own columns."""
        return flat_row(self.summary(), **leading)


@dataclass
class ImageResult:
    orig_img: np.ndarray  # (H, W, 3) uint8 BGR, as OpenCV draws and writes it
    faces: list[FaceResult]
    path: str | None = None  # source file, when there was one
    name: str = "image"
    model_name: str = ""
    labels: tuple[str, ...] = EMOTIONS
    detector: str = ""  # the face detector that found `faces` ("auto" resolves per install)
    speed: dict[str, float] = field(default_factory=dict)  # milliseconds per stage
    frame: int | None = None  # frame index and time (s) when the image comes from a video
    time: float | None = None
    # Why this input gave no result (predict over many inputs: one that cannot be read is
    # answered with an error result naming it, and the others go on). None: read fine.
    error: str | None = None

    @classmethod
    def failed(cls, name: str, error: str, path: str | None = None, model_name: str = "", labels: tuple[str, ...] = EMOTIONS) -> ImageResult:
        """The result of an input that could not be read: no image, no faces, `error` says why."""
        return cls(np.zeros((0, 0, 3), np.uint8), [], path=path, name=name, model_name=model_name, labels=labels, error=error)

    @property
    def ok(self) -> bool:
        return self.error is None

    def __len__(self) -> int:
        return len(self.faces)

    def __iter__(self):
        return iter(self.faces)

    def __getitem__(self, i: int) -> FaceResult:
        return self.faces[i]

    def __repr__(self) -> str:
        if self.error is not None:
            return f"ImageResult({self.name!r}, error: {self.error})"
        faces = ", ".join(f"{f.label} {f.score:.0%}" for f in self.faces) or "no face"
        return f"ImageResult({self.name!r}, {self.orig_img.shape[1]}x{self.orig_img.shape[0]}: {faces})"

    def summary(self) -> list[dict[str, Any]]:
        """One dict per face (JSON-ready), numbered from 0 in detection order (largest first)."""
        rows = []
        for i, face in enumerate(self.faces):
            row = {"image": self.name, "face": i, **face.summary()}
            if self.frame is not None:
                row = {"frame": self.frame, "time": round(float(self.time or 0.0), 4), **row}
            rows.append(row)
        return rows

    def rows(self, **leading: Any) -> list[dict[str, Any]]:
        """summary() as table rows, one flat dict per face: the layout of every emotion table.

        `leading` columns come first (`rows(path="a.jpg")`), then frame and time (video
        frames), image, face, face_id, x, y, w, h, one probability per emotion, label, score,
        detection_confidence; `columns()` lists them, also when there is no face.
        """
        return [flat_row(s, **leading) for s in self.summary()]

    def columns(self, *leading: str) -> list[str]:
        """The keys of each `rows()` dict, in order; `leading`: the names of its leading columns."""
        return table_columns(self.labels, leading, frames=self.frame is not None)

    def to_df(self, **leading: Any):
        """rows() as a pandas DataFrame (the same columns when no face was found)."""
        import pandas as pd

        return pd.DataFrame(self.rows(**leading), columns=self.columns(*leading))

    def to_json(self, indent: int | None = 2) -> str:
        doc = {"image": self.name, "model": self.model_name, "detector": self.detector, "width": int(self.orig_img.shape[1]),
               "height": int(self.orig_img.shape[0]), "faces": self.summary(),
               "speed_ms": {k: round(v, 2) for k, v in self.speed.items()}}
        if self.error is not None:
            doc["error"] = self.error
        return json.dumps(doc, indent=indent)

    def to_csv(self) -> str:
        return self.to_df().to_csv(index=False)

    def _drawable(self, what: str) -> None:
        if self.error is not None:
            raise DataError(f"{self.name}: nothing to {what}, the image could not be read ({self.error})")

    def plot(
        self, *, bars: bool | str = PIPELINE.bars, ids: bool | None = None, color_order: Literal["rgb", "bgr"] = "rgb",
        follow: LayoutMemory | None = None,
    ) -> np.ndarray:
        """A copy of the image with each face boxed and labelled, and score bars: bars="largest"
        (the largest face; in a video, a `LayoutMemory` carried from frame to frame, `follow`, keeps
        them on one person and one side of them, and each tag where it was), "all" or "none".

        Returns (H, W, 3) uint8 in RGB, ready for matplotlib (`plt.imshow(result.plot())`) and
        PIL (`Image.fromarray`); color_order="bgr" gives OpenCV's order (cv2.imshow, cv2.imwrite).
        """
        from emolens.pipeline.draw import draw_faces

        if color_order not in ("rgb", "bgr"):
            raise ConfigError(f"color_order must be 'rgb' (matplotlib, PIL) or 'bgr' (OpenCV), got {color_order!r}")
        self._drawable("plot")
        drawn = draw_faces(self.orig_img, self.faces, labels=self.labels, bars=bars, ids=ids, follow=follow)  # OpenCV draws BGR
        return drawn if color_order == "bgr" else np.ascontiguousarray(drawn[:, :, ::-1])

    def show(self, *, bars: bool | str = PIPELINE.bars, ids: bool | None = None, block: bool | None = None) -> None:
        """Show plot() with matplotlib: inline in a Jupyter notebook, in a window elsewhere.

        block=False returns at once (the window stays while Python runs). Raises ConfigError,
        saying what to do, where matplotlib cannot show anything: a non-interactive backend
        such as Agg, which it picks when there is no display (or MPLBACKEND says so).
        """
        import matplotlib

        image = self.plot(bars=bars, ids=ids)
        backend = matplotlib.get_backend()  # resolves the automatic choice: Agg when there is no display
        if backend.lower() in _non_interactive_backends():
            raise ConfigError(
                f"cannot show {self.name}: matplotlib's backend is {backend!r}, which opens no window (no display, or "
                "MPLBACKEND set). In Jupyter, show() draws inline; on a desktop, install a GUI toolkit matplotlib can use "
                "(your system's python3-tk, or `pip install pyqt6`) and unset MPLBACKEND; or write the picture with "
                "result.save('labelled.jpg')"
            )
        import matplotlib.pyplot as plt

        h, w = image.shape[:2]
        side = 8.0 / max(w, h)  # the longer side 8 inches, the aspect kept
        fig, ax = plt.subplots(figsize=(w * side, h * side + 0.4))
        ax.imshow(image)
        ax.set_axis_off()
        ax.set_title(self.name)
        fig.tight_layout()
        plt.show(block=block)

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the plotted image (.jpg, .png, ...), or the summary (.json, .csv) by suffix.

        Nothing that exists is replaced unless overwrite=True: when `path` exists, the next
        free name is taken (a.jpg, a-2.jpg, a-3.jpg, ..., the rule of every emolens output), so
        saving twice in a notebook keeps both. Returns the path written.
        """
        from emolens.paths import free_stem

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".json", ".csv"):
            self._drawable("save")
        if not overwrite:
            path = path.with_name(free_stem(path.parent, path.stem, [path.suffix]) + path.suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".json":
            path.write_text(self.to_json() + "\n")
        elif suffix == ".csv":
            path.write_text(self.to_csv())
        else:
            import cv2

            # imencode + write_bytes, not imwrite: OpenCV crashes (SIGSEGV) on a path that is not UTF-8.
            ok, encoded = cv2.imencode(suffix, self.plot(color_order="bgr"))
            if not ok:
                raise ConfigError(f"{path}: OpenCV cannot write images with suffix {suffix!r}; use .jpg or .png")
            path.write_bytes(encoded.tobytes())
        return path
