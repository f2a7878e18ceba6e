"""Batched transforms: uint8 faces (B, S, S) -> normalised float (B, 1, I, I).

`create_transform(preprocess, aug, is_training)` builds both the training augmentation and
the evaluation transform from the config that travels with the weights. Both end in
`emolens.preprocessing.normalize`, so training, evaluation and inference share one
normalisation. The training transform works on whole batches on the batch's device (one
`grid_sample` does crop, zoom, rotation, shift and mirror for every image at once), so the
data pipeline costs little next to the model; `benchmarks/train_throughput.py` measures it.

Example::

    tf = create_transform(PreprocessConfig(), AugConfig(), is_training=True, seed=0)
    x = tf(torch.from_numpy(ds.images[:64]))  # (64, 1, 48, 48) float32
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from emolens.errors import DataError
from emolens.preprocessing import PreprocessConfig, normalize

if TYPE_CHECKING:  # pragma: no cover
    from emolens.training.config import AugConfig

Transform = Callable[[torch.Tensor], torch.Tensor]


def _as_batch(faces: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(faces)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1:
        raise DataError(f"expected faces shaped (B, S, S) or (B, 1, S, S), got {tuple(x.shape)}")
    return x


class EvalTransform:
    """Exactly what inference does: `normalize` (resize if needed, centre crop, mean/std)."""

    def __init__(self, preprocess: PreprocessConfig):
        self.preprocess = preprocess

    def __call__(self, faces: torch.Tensor) -> torch.Tensor:
        return normalize(faces, self.preprocess)


class TrainTransform:
    """Random crop/zoom/rotation/shift/mirror, brightness/contrast and erasing, batched.

    All randomness comes from `self.generator` (on the batch's device), so a seed gives the
    same augmentation every run; `reseed()` restarts it, e.g. at the start of each epoch.
    """

    def __init__(self, preprocess: PreprocessConfig, aug: AugConfig, seed: int = 0):
        self.preprocess = preprocess
        self.aug = aug
        self.seed = seed
        # normalize() on an image that already has the input size does only /255 and mean/std.
        self._norm_cfg = dataclasses.replace(preprocess, image_size=preprocess.input_size)
        self._generators: dict[torch.device, torch.Generator] = {}

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self._generators.clear()

    def _gen(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            g = torch.Generator(device=device)
            g.manual_seed(self.seed)
            self._generators[device] = g
        return self._generators[device]

    def _uniform(self, n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
        return torch.rand(n, generator=g, device=device) * (hi - lo) + lo

    def __call__(self, faces: torch.Tensor) -> torch.Tensor:
        x = _as_batch(faces)  # (B, 1, S, S) uint8
        if not self.aug.enabled:
            return normalize(x, self.preprocess)
        B, dev = x.shape[0], x.device
        g, a = self._gen(dev), self.aug
        S, I = self.preprocess.image_size, self.preprocess.input_size
        x = x.float()  # 0..255
        if B == 0:
            return normalize(x[:, :, :I, :I], self._norm_cfg)

        # One affine warp per image. In affine_grid's normalised coordinates the output spans
        # [-1, 1]; a crop of I out of S is a scale of I/S with an offset of up to (S-I)/S.
        zoom = self._uniform(B, a.scale[0], a.scale[1], g, dev)
        angle = self._uniform(B, -a.rotate, a.rotate, g, dev) * (math.pi / 180.0)
        flip = torch.where(torch.rand(B, generator=g, device=dev) < a.hflip, -1.0, 1.0)
        span = (S - I) / S + 2 * a.translate  # crop freedom plus the configured shift
        tx = self._uniform(B, -span, span, g, dev)
        ty = self._uniform(B, -span, span, g, dev)
        k = (I / S) / zoom
        cos, sin = torch.cos(angle) * k, torch.sin(angle) * k
        theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)  # (B, 2, 3)
        grid = F.affine_grid(theta, [B, 1, I, I], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode=a.padding, align_corners=False)  # (B, 1, I, I)

        # Brightness scales everything; contrast scales deviations from each image's mean.
        if a.brightness or a.contrast:
            bright = self._uniform(B, 1 - a.brightness, 1 + a.brightness, g, dev).view(B, 1, 1, 1)
            contrast = self._uniform(B, 1 - a.contrast, 1 + a.contrast, g, dev).view(B, 1, 1, 1)
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = ((x - mean) * contrast + mean) * bright
            x = x.clamp_(0.0, 255.0)

        x = self._degrade(x, g)  # (B, 1, I, I), 0..255
        x = normalize(x, self._norm_cfg)  # the shared normalisation; (B, 1, I, I)

        # Random erasing after normalisation, filled with noise of the normalised scale.
        if a.erase_prob > 0:
            area = self._uniform(B, a.erase_area[0], a.erase_area[1], g, dev) * I * I
            aspect = torch.exp(self._uniform(B, math.log(0.3), math.log(3.3), g, dev))
            h = (area * aspect).sqrt().clamp(1, I)
            w = (area / aspect).sqrt().clamp(1, I)
            top = torch.rand(B, generator=g, device=dev) * (I - h)
            left = torch.rand(B, generator=g, device=dev) * (I - w)
            on = torch.rand(B, generator=g, device=dev) < a.erase_prob
            r = torch.arange(I, device=dev, dtype=x.dtype)
            rows = (r.view(1, I) >= top.view(B, 1)) & (r.view(1, I) < (top + h).view(B, 1))  # (B, I)
            cols = (r.view(1, I) >= left.view(B, 1)) & (r.view(1, I) < (left + w).view(B, 1))
            mask = (rows.unsqueeze(2) & cols.unsqueeze(1) & on.view(B, 1, 1)).unsqueeze(1)  # (B, 1, I, I)
            noise = torch.randn(x.shape, generator=g, device=dev, dtype=x.dtype)
            x = torch.where(mask, noise, x)
        return x

    def _degrade(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Low light, blur, small-face resolution and noise, each on its own random images."""
        a, dev, B = self.aug, x.device, x.shape[0]
        if (idx := _pick(B, a.gamma_prob, g, dev)).numel():
            gamma = torch.exp(self._uniform(idx.numel(), math.log(a.gamma[0]), math.log(a.gamma[1]), g, dev)).view(-1, 1, 1, 1)
            x[idx] = 255.0 * (x[idx] / 255.0).clamp(0, 1) ** gamma
        if (idx := _pick(B, a.blur_prob, g, dev)).numel():
            x[idx] = gaussian_blur(x[idx], self._uniform(idx.numel(), a.blur_sigma[0], a.blur_sigma[1], g, dev))
        if (idx := _pick(B, a.lowres_prob, g, dev)).numel():
            lo, hi = a.lowres_size
            sides = torch.randint(lo, hi + 1, (idx.numel(),), generator=g, device=dev)
            x[idx] = _low_resolution(x[idx], sides)
        if (idx := _pick(B, a.noise_prob, g, dev)).numel():
            std = self._uniform(idx.numel(), a.noise_std[0], a.noise_std[1], g, dev).view(-1, 1, 1, 1)
            x[idx] = (x[idx] + std * torch.randn(x[idx].shape, generator=g, device=dev, dtype=x.dtype)).clamp(0.0, 255.0)
        return x


def _pick(n: int, prob: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """Indices of the images (of n) that get an augmentation applied with probability `prob`."""
    if prob <= 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    return torch.nonzero(torch.rand(n, generator=g, device=device) < prob).flatten()


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image of (B, 1, H, W) with its own sigma (B,), separably, reflecting at edges."""
    B = x.shape[0]
    radius = max(1, int(math.ceil(3 * float(sigma.max()))))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    k = (k / k.sum(1, keepdim=True)).view(B, 1, 1, -1)  # (B, 1, 1, K): one kernel per image
    y = F.pad(x.transpose(0, 1), (radius, radius, radius, radius), mode="reflect")  # (1, B, H+2r, W+2r)
    y = F.conv2d(y, k, groups=B)  # along W
    y = F.conv2d(y, k.transpose(2, 3), groups=B)  # along H
    return y.transpose(0, 1)


def _low_resolution(x: torch.Tensor, sides: torch.Tensor) -> torch.Tensor:
    """Down to `sides[i]` pixels (area-averaged, as a camera sees a small face) and back up."""
    out = x.clone()
    size = x.shape[-1]
    for side in sides.unique().tolist():
        idx = torch.nonzero(sides == side).flatten()
        small = F.interpolate(x[idx], size=(int(side), int(side)), mode="area")
        out[idx] = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    return out


def create_transform(preprocess: PreprocessConfig, aug: AugConfig | None = None, is_training: bool = False, *, seed: int = 0) -> Transform:
    """The training augmentation (is_training=True) or the evaluation transform, from config."""
    if not is_training:
        return EvalTransform(preprocess)
    if aug is None:
        from emolens.training.config import AugConfig

        aug = AugConfig()
    return TrainTransform(preprocess, aug, seed=seed)
