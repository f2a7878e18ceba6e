"""Results objects, Ultralytics-style: one `ImageResult` per image, one `FaceResult` per face.

Every export derives from `summary()`: the HTTP API returns it as is, `to_df`, `to_json` and
`to_csv` flatten or serialise it. `plot()` draws the faces on a copy of the image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import ConfigError
from emolens.labels import EMOTIONS


@dataclass
class FaceResult:
    box: tuple[int, int, int, int]  # x, y, w, h in pixels of the original image
    label: str  # the most probable emotion
    scores: dict[str, float]  # probability of each emotion, in label order (EMOTIONS)
    detection_confidence: float | None = None  # None for crops given as they are (predict_crops)
    face_id: int | None = None  # stable track id in videos and streams

    @property
    def score(self) -> float:
        return self.scores[self.label]

    @classmethod
    def from_proba(
        cls, box: tuple[int, int, int, int], proba: np.ndarray, labels: tuple[str, ...] = EMOTIONS,
        detection_confidence: float | None = None, face_id: int | None = None,
    ) -> FaceResult:
        scores = {name: float(p) for name, p in zip(labels, proba, strict=True)}
        return cls(
            tuple(int(v) for v in box), labels[int(np.argmax(proba))], scores,
            None if detection_confidence is None else float(detection_confidence), face_id,
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
        }

    def flat(self) -> dict[str, Any]:
        """One table row: box and scores as their own columns."""
        s = self.summary()
        return {"face_id": s["face_id"], **s["box"], "label": s["label"], "score": s["score"],
                "detection_confidence": s["detection_confidence"], **s["scores"]}


@dataclass
class ImageResult:
    orig_img: np.ndarray  # (H, W, 3) uint8 BGR, as OpenCV draws and writes it
    faces: list[FaceResult]
    path: str | None = None  # source file, when there was one
    name: str = "image"
    model_name: str = ""
    labels: tuple[str, ...] = EMOTIONS
    speed: dict[str, float] = field(default_factory=dict)  # milliseconds per stage
    frame: int | None = None  # frame index and time (s) when the image comes from a video
    time: float | None = None

    def __len__(self) -> int:
        return len(self.faces)

    def __iter__(self):
        return iter(self.faces)

    def __getitem__(self, i: int) -> FaceResult:
        return self.faces[i]

    def __repr__(self) -> str:
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

    def rows(self) -> list[dict[str, Any]]:
        """summary() flattened: one row per face with x, y, w, h and one column per emotion."""
        out = []
        for s, face in zip(self.summary(), self.faces, strict=True):
            head = {k: v for k, v in s.items() if k in ("frame", "time", "image", "face")}
            out.append({**head, **face.flat()})
        return out

    def to_df(self):
        import pandas as pd

        columns = [*(["frame", "time"] if self.frame is not None else []), "image", "face", "face_id",
                   "x", "y", "w", "h", "label", "score", "detection_confidence", *self.labels]
        return pd.DataFrame(self.rows(), columns=columns)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps({"image": self.name, "model": self.model_name, "width": int(self.orig_img.shape[1]),
                           "height": int(self.orig_img.shape[0]), "faces": self.summary(),
                           "speed_ms": {k: round(v, 2) for k, v in self.speed.items()}}, indent=indent)

    def to_csv(self) -> str:
        return self.to_df().to_csv(index=False)

    def plot(self, *, bars: bool = True, ids: bool | None = None) -> np.ndarray:
        """A BGR copy of the image with each face boxed and labelled, and its emotion bars."""
        from emolens.pipeline.draw import draw_faces

        return draw_faces(self.orig_img, self.faces, labels=self.labels, bars=bars, ids=ids)

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the plotted image (.jpg, .png, ...), or the summary (.json, .csv) by suffix."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise ConfigError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) or choose another name")
        path.parent.mkdir(parents=True, exist_ok=True)
        suffix = path.suffix.lower()
        if suffix == ".json":
            path.write_text(self.to_json() + "\n")
        elif suffix == ".csv":
            path.write_text(self.to_csv())
        else:
            import cv2

            # imencode + write_bytes, not imwrite: OpenCV crashes (SIGSEGV) on a path that is not UTF-8.
            ok, encoded = cv2.imencode(suffix, self.plot())
            if not ok:
                raise ConfigError(f"{path}: OpenCV cannot write images with suffix {suffix!r}; use .jpg or .png")
            path.write_bytes(encoded.tobytes())
        return path
