"""Checks for the arrays a baseline model file carries, so a crafted file fails with a message.

A component stores its fitted state as named numpy arrays; on load each one is fetched here
by name with its expected number of dimensions, dtype kind and (partly known) shape.
"""

from __future__ import annotations

import numpy as np

from emolens.errors import ModelError


def take(arrays: dict[str, np.ndarray], key: str, ndim: int, kind: str = "f", shape: tuple[int | None, ...] | None = None) -> np.ndarray:
    """arrays[key], checked: `ndim` dimensions, dtype kind ('f' float, 'i' integer), `shape` (None = any)."""
    if key not in arrays:
        raise ModelError(f"baseline model file lacks the array {key!r}; it was not written by emolens, or is damaged")
    a = arrays[key]
    if a.ndim != ndim or a.dtype.kind not in (kind if kind != "i" else "iu"):
        raise ModelError(f"array {key!r} is {a.dtype}{list(a.shape)}; expected {ndim} dimensions of kind {kind!r}")
    if shape is not None:
        for i, (got, want) in enumerate(zip(a.shape, shape, strict=True)):
            if want is not None and got != want:
                raise ModelError(f"array {key!r} has shape {list(a.shape)}; dimension {i} should be {want}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ModelError(f"array {key!r} holds NaN or infinite values")
    return a
