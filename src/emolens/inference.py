"""From face crops to probabilities: the one inference path behind evaluate, photos, video,
webcam, HTTP and the ONNX backend's reference.

`predict_proba(model, faces)` takes uint8 crops (B, S, S) prepared by `emolens.preprocessing`,
normalises them with the model's own `PreprocessConfig`, runs the network in batches, applies
optional test-time augmentation, and returns calibrated probabilities (softmax of logits / T).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn as nn

from emolens.errors import ConfigError
from emolens.evaluation.calibration import softmax_with_temperature  # used here; also imported from here
from emolens.preprocessing import PreprocessConfig, normalize

TTA = Literal["none", "flip", "tencrop"]
TTA_MODES: tuple[str, ...] = ("none", "flip", "tencrop")


def _views(faces: torch.Tensor, cfg: PreprocessConfig, tta: str) -> list[torch.Tensor]:
    """Normalised views of a uint8 batch (B, S, S): each (B, 1, I, I)."""
    if tta not in TTA_MODES:
        raise ConfigError(f"unknown test-time augmentation {tta!r}; expected one of {TTA_MODES}")
    if tta == "none":
        return [normalize(faces, cfg)]
    if tta == "flip":
        x = normalize(faces, cfg)
        return [x, x.flip(-1)]
    # Ten-crop: four corners and the centre of an input-size crop, each also mirrored. When the
    # stored image is no larger than the input, crop 90% of it and resize back up.
    full = PreprocessConfig(**{**cfg.to_dict(), "input_size": cfg.image_size})
    x = normalize(faces, full)  # (B, 1, S, S)
    S, I = cfg.image_size, cfg.input_size
    c = I if I < S else max(8, int(round(S * 0.9)))
    offs = [(0, 0), (0, S - c), (S - c, 0), (S - c, S - c), ((S - c) // 2, (S - c) // 2)]
    views = []
    for top, left in offs:
        v = x[:, :, top : top + c, left : left + c]
        if c != I:
            v = nn.functional.interpolate(v, size=(I, I), mode="bilinear", align_corners=False)
        views += [v, v.flip(-1)]
    return views


@torch.inference_mode()
def predict_logits(
    model: nn.Module, faces: np.ndarray | torch.Tensor, *, batch_size: int = 256, tta: str = "none", device: str | torch.device | None = None
) -> np.ndarray:
    """Mean logits over TTA views, (B, C) float32. `faces` are uint8 crops (B, S, S)."""
    cfg: PreprocessConfig = model.emolens_config.preprocess
    device = torch.device(device) if device is not None else next(model.parameters()).device
    # channels_last pays on CUDA; on the CPU it measured no faster for these models at inference.
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    faces = torch.as_tensor(np.asarray(faces) if not isinstance(faces, torch.Tensor) else faces)
    if faces.ndim == 2:
        faces = faces.unsqueeze(0)
    model.eval()
    out = []
    for start in range(0, len(faces), batch_size):
        chunk = faces[start : start + batch_size]
        views = _views(chunk, cfg, tta)
        logits = sum(model(v.to(device).contiguous(memory_format=memory_format)).float() for v in views) / len(views)
        out.append(logits.cpu())
    if not out:
        return np.zeros((0, len(model.emolens_config.labels)), np.float32)
    return torch.cat(out).numpy()


def predict_proba(model: nn.Module, faces: np.ndarray | torch.Tensor, *, batch_size: int = 256, tta: str = "none") -> np.ndarray:
    """Calibrated class probabilities (B, C) for uint8 face crops (B, S, S)."""
    logits = predict_logits(model, faces, batch_size=batch_size, tta=tta)
    return softmax_with_temperature(logits, model.emolens_config.temperature)
