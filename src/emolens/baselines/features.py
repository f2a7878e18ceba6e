"""Hand-made features of the classic FER baselines: HOG and whitened PCA ("eigenfaces").

Both start from what the networks see: uint8 faces through `emolens.preprocessing.normalize`
(centre crop to the input size, mean/std), so a baseline and a CNN read identical pixels.
Each extractor keeps its fitted state as plain arrays (`arrays()` / `from_arrays()`), which is
how it is saved: no pickle anywhere.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from emolens.baselines.arrays import take
from emolens.baselines.params import merge_params
from emolens.errors import ConfigError, ModelError
from emolens.preprocessing import PreprocessConfig, normalize

_CHUNK = 2048  # faces normalised per call: bounds the float copy of a 35k-face set


def normalized_pixels(faces: np.ndarray, preprocess: PreprocessConfig) -> np.ndarray:
    """uint8 faces (N, S, S) -> float32 (N, I, I), exactly the network input without the channel."""
    faces = np.asarray(faces)
    if faces.ndim != 3 or faces.dtype != np.uint8:
        raise ConfigError(f"expected uint8 faces shaped (N, S, S), got {faces.dtype} {faces.shape}")
    n, side = len(faces), preprocess.input_size
    out = np.empty((n, side, side), np.float32)
    for start in range(0, n, _CHUNK):
        out[start : start + _CHUNK] = normalize(faces[start : start + _CHUNK], preprocess)[:, 0].numpy()
    return out


class HogFeatures:
    """Histograms of oriented gradients (Dalal & Triggs), via scikit-image. Nothing is fitted."""

    name = "hog"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "orientations": 9,  # the Dalal-Triggs choice; more bins rarely help at 48 px
        "pixels_per_cell": 8,  # 48 px -> 6x6 cells: eyes, brows and mouth each span a few cells
        "cells_per_block": 2,  # 2x2-cell blocks, L2-Hys normalised: robust to lighting
    }

    def __init__(self, params: dict[str, Any] | None = None):
        self.params = merge_params(self.name, self.DEFAULTS, params)
        for key in self.DEFAULTS:
            if self.params[key] < 1:
                raise ConfigError(f"hog.{key} must be >= 1, got {self.params[key]}")

    def fit(self, x: np.ndarray, seed: int = 0) -> HogFeatures:
        return self

    def transform(self, x: np.ndarray, *, progress: bool = False) -> np.ndarray:
        """(N, I, I) normalised pixels -> (N, D) float32 descriptors."""
        from skimage.feature import hog
        from tqdm.auto import tqdm

        p = self.params
        cell, block = p["pixels_per_cell"], p["cells_per_block"]
        if x.shape[1] // cell < block:
            raise ConfigError(f"hog: a {x.shape[1]} px face holds {x.shape[1] // cell} cells of {cell} px, fewer than cells_per_block={block}")
        kw = {"orientations": p["orientations"], "pixels_per_cell": (cell, cell), "cells_per_block": (block, block), "block_norm": "L2-Hys"}
        first = hog(x[0], **kw) if len(x) else np.zeros(0)
        out = np.empty((len(x), first.size), np.float32)
        for i in tqdm(range(len(x)), desc="HOG", unit="face", disable=not progress, mininterval=1.0):
            out[i] = hog(x[i], **kw)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {}

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> HogFeatures:
        return cls(params)


class PcaFeatures:
    """Whitened principal components of the raw normalised pixels (eigenfaces)."""

    name = "pca"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "n_components": 150,  # keeps ~90% of FER-2013 pixel variance; more mostly adds noise
        "whiten": True,  # unit variance per component, so no component dominates a kernel or an SVM
    }

    def __init__(self, params: dict[str, Any] | None = None):
        self.params = merge_params(self.name, self.DEFAULTS, params)
        if self.params["n_components"] < 1:
            raise ConfigError(f"pca.n_components must be >= 1, got {self.params['n_components']}")

    def fit(self, x: np.ndarray, seed: int = 0) -> PcaFeatures:
        from sklearn.decomposition import PCA

        flat = x.reshape(len(x), -1)
        k = self.params["n_components"]
        if k > min(flat.shape):
            raise ConfigError(f"pca.n_components = {k} exceeds min(n_faces, n_pixels) = {min(flat.shape)}; lower it")
        pca = PCA(n_components=k, whiten=self.params["whiten"], svd_solver="randomized", random_state=seed).fit(flat)
        self.mean_ = pca.mean_.astype(np.float64)
        self.components_ = pca.components_.astype(np.float64)
        self.explained_variance_ = pca.explained_variance_.astype(np.float64)
        return self

    def transform(self, x: np.ndarray, *, progress: bool = False) -> np.ndarray:
        if not hasattr(self, "components_"):
            raise ModelError("PcaFeatures is not fitted; call fit() first")
        z = (x.reshape(len(x), -1).astype(np.float64) - self.mean_) @ self.components_.T
        if self.params["whiten"]:
            z /= np.sqrt(self.explained_variance_)
        return z.astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "components": self.components_, "explained_variance": self.explained_variance_}

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> PcaFeatures:
        self = cls(params)
        k = self.params["n_components"]
        self.mean_ = take(arrays, "mean", 1)
        self.components_ = take(arrays, "components", 2, shape=(k, len(self.mean_)))
        self.explained_variance_ = take(arrays, "explained_variance", 1, shape=(k,))
        if (self.explained_variance_ <= 0).any():
            raise ModelError("array 'explained_variance' must be positive")
        return self


class Standardizer:
    """Zero mean, unit variance per feature, fitted on train: what SVMs and MLPs need."""

    name = "standardize"

    def fit(self, z: np.ndarray) -> Standardizer:
        self.mean_ = z.mean(axis=0, dtype=np.float64)
        std = z.std(axis=0, dtype=np.float64)
        self.scale_ = np.where(std > 1e-12, std, 1.0)  # a constant feature stays as it is
        return self

    def transform(self, z: np.ndarray) -> np.ndarray:
        return ((z - self.mean_) / self.scale_).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "scale": self.scale_}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Standardizer:
        self = cls()
        self.mean_ = take(arrays, "mean", 1)
        self.scale_ = take(arrays, "scale", 1, shape=(len(self.mean_),))
        if (self.scale_ <= 0).any():
            raise ModelError("array 'scale' must be positive")
        return self


FEATURES: dict[str, type[HogFeatures] | type[PcaFeatures]] = {"hog": HogFeatures, "pca": PcaFeatures}
