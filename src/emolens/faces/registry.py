"""Detectors by name: `create_detector("haar")`, `"yunet:face_detection_yunet_2023mar.onnx"`."""

from __future__ import annotations

from difflib import get_close_matches
from typing import Any

from emolens.errors import ConfigError
from emolens.faces.base import FaceDetector

DETECTORS: tuple[str, ...] = ("haar", "yunet", "mediapipe")


def list_detectors() -> list[str]:
    return list(DETECTORS)


def create_detector(spec: str | FaceDetector = "haar", **options: Any) -> FaceDetector:
    """A detector from a name, "name:MODEL_FILE", or an instance (returned as it is).

    options go to the detector's constructor (min_face_size, threshold, min_neighbors, ...).
    """
    if isinstance(spec, FaceDetector):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"detector must be a name like 'haar' or a FaceDetector, got {type(spec).__name__}")
    name, _, model_path = spec.partition(":")
    name = name.strip().lower()
    options = {k: v for k, v in options.items() if v is not None}
    if name == "haar":
        from emolens.faces.haar import HaarDetector

        if model_path:
            options["cascade"] = model_path
        return HaarDetector(**options)
    if name in ("yunet", "mediapipe"):
        if name == "yunet":
            from emolens.faces.yunet import YuNetDetector as cls
        else:
            from emolens.faces.mediapipe_detector import MediaPipeDetector as cls
        for key in ("min_neighbors", "scale_factor"):  # Haar-only knobs the CLI may pass along
            options.pop(key, None)
        return cls(model_path=model_path or None, **options)
    close = get_close_matches(name, DETECTORS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown face detector {spec!r}.{hint} Available: {', '.join(DETECTORS)} (yunet and mediapipe take :MODEL_FILE)")
