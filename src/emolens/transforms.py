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
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from emolens.checks import check_choice, check_range
from emolens.errors import ConfigError, DataError
from emolens.preprocessing import PreprocessConfig, normalize

Transform = Callable[[torch.Tensor], torch.Tensor]
PADDING = ("zeros", "border", "reflection")


@dataclass
class AugConfig:
    """What `TrainTransform` does to each training face; the `aug` section of a training config."""

    enabled: bool = True  # off = train on exactly what evaluation sees
    scale: tuple[float, float] = (0.9, 1.1)  # zoom range; >1 zooms in
    rotate: float = 10.0  # max in-plane rotation, degrees
    translate: float = 0.08  # max shift, as a share of the side
    hflip: float = 0.5  # faces are near-symmetric, so mirroring keeps the label
    brightness: float = 0.25  # multiply by a factor in [1-b, 1+b]
    contrast: float = 0.25  # scale deviations from the image mean by [1-c, 1+c]
    erase_prob: float = 0.25  # random erasing: hides a part of the face, against relying on one cue
    erase_area: tuple[float, float] = (0.02, 0.15)  # erased share of the input
    padding: str = "reflection"  # how pixels shifted in from outside are filled: zeros | border | reflection
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) mixup; 0 = off
    cutmix_alpha: float = 0.0  # Beta(alpha, alpha) cutmix; 0 = off; with both, each batch picks one
    mix_prob: float = 1.0  # chance that a batch is mixed when mixup or cutmix is on
    # Degradations of photos and video that FER-2013's studio-like crops rarely show; each is
    # applied to an image with its probability (0 = off, the default, as in the 0.3.0 recipe).
    gamma_prob: float = 0.0  # low light / overexposure: pixel^gamma, gamma in `gamma`
    gamma: tuple[float, float] = (0.6, 2.0)  # >1 darkens mid-tones like an underexposed frame
    blur_prob: float = 0.0  # out of focus or motion: Gaussian blur, sigma in `blur_sigma` (input pixels)
    blur_sigma: tuple[float, float] = (0.4, 1.6)
    lowres_prob: float = 0.0  # small faces: down to a side in `lowres_size`, then back up
    lowres_size: tuple[int, int] = (12, 32)
    noise_prob: float = 0.0  # sensor noise: Gaussian, std in `noise_std` grey levels
    noise_std: tuple[float, float] = (2.0, 12.0)
    jpeg_prob: float = 0.0  # compressed photos and video frames: JPEG at a quality in `jpeg_quality` (`jpeg_compress`)
    jpeg_quality: tuple[int, int] = (10, 60)

    def __post_init__(self) -> None:
        check_choice("aug", "padding", self.padding, PADDING)
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(f"aug.scale must be (low, high) with 0 < low <= high, got {self.scale}")
        if not 0 < self.erase_area[0] <= self.erase_area[1] <= 1:
            raise ConfigError(f"aug.erase_area must be (low, high) with 0 < low <= high <= 1, got {self.erase_area}")
        for name in ("hflip", "erase_prob", "mix_prob"):
            check_range("aug", name, getattr(self, name), 0.0, 1.0)
        for name in ("brightness", "contrast"):
            check_range("aug", name, getattr(self, name), 0.0, 1.0)
        check_range("aug", "rotate", self.rotate, 0.0, 180.0)
        check_range("aug", "translate", self.translate, 0.0, 0.5)
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ConfigError("aug.mixup_alpha and aug.cutmix_alpha must be >= 0")
        for name in ("gamma_prob", "blur_prob", "lowres_prob", "noise_prob", "jpeg_prob"):
            check_range("aug", name, getattr(self, name), 0.0, 1.0)
        for name, lo in (("gamma", 0.05), ("blur_sigma", 0.01), ("lowres_size", 2), ("noise_std", 0.0), ("jpeg_quality", 1)):
            pair = getattr(self, name)
            if len(pair) != 2 or not lo <= pair[0] <= pair[1]:
                raise ConfigError(f"aug.{name} must be (low, high) with {lo} <= low <= high, got {pair}")
        if self.jpeg_quality[1] > 100:
            raise ConfigError(f"aug.jpeg_quality must lie in [1, 100], got {self.jpeg_quality}")


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
        return self.views(faces)[0]

    def views(self, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(augmented, whole): the batch as trained, and the same warped and lit faces before the
        degradations and erasing (what a teacher sees under `distill.whole_teacher`). The second
        costs one normalisation and no random draw: the first is the same either way."""
        x = _as_batch(faces)  # (B, 1, S, S) uint8
        if not self.aug.enabled:
            x = normalize(x, self.preprocess)
            return x, x
        g, I = self._gen(x.device), self.preprocess.input_size
        x = x.float()  # 0..255
        if x.shape[0] == 0:
            x = normalize(x[:, :, :I, :I], self._norm_cfg)
            return x, x
        # The order of the steps is the order of the generator's draws: a seed's augmentation
        # stays what it was for the shipped weights' recorded runs.
        x = self._warp(x, g)  # (B, 1, I, I)
        x = self._light(x, g)
        whole = normalize(x.clone(), self._norm_cfg)  # normalize divides a float batch in place
        x = self._degrade(x, g)  # 0..255
        x = normalize(x, self._norm_cfg)  # the shared normalisation
        return self._erase(x, g), whole

    def _warp(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """One random affine warp per image (zoom, rotation, mirror, shift), cropping S to I. In
        affine_grid's normalised coordinates the output spans [-1, 1]; a crop of I out of S is a
        scale of I/S with an offset of up to (S-I)/S."""
        a, dev, B = self.aug, x.device, x.shape[0]
        S, I = self.preprocess.image_size, self.preprocess.input_size
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
        return F.grid_sample(x, grid, mode="bilinear", padding_mode=a.padding, align_corners=False)

    def _light(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Brightness scales everything; contrast scales deviations from each image's mean."""
        a, dev, B = self.aug, x.device, x.shape[0]
        if not (a.brightness or a.contrast):
            return x
        bright = self._uniform(B, 1 - a.brightness, 1 + a.brightness, g, dev).view(B, 1, 1, 1)
        contrast = self._uniform(B, 1 - a.contrast, 1 + a.contrast, g, dev).view(B, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (((x - mean) * contrast + mean) * bright).clamp_(0.0, 255.0)

    def _erase(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Random erasing, after normalisation, filled with noise of the normalised scale."""
        a, dev, (B, _, I, _) = self.aug, x.device, x.shape
        if a.erase_prob <= 0:
            return x
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
        return torch.where(mask, noise, x)

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
        if (idx := _pick(B, a.jpeg_prob, g, dev)).numel():
            x[idx] = jpeg_compress(x[idx], torch.randint(a.jpeg_quality[0], a.jpeg_quality[1] + 1, (idx.numel(),), generator=g, device=dev))
        return x


def _pick(n: int, prob: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """Indices of the images (of n) that get an augmentation applied with probability `prob`."""
    if prob <= 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    return torch.nonzero(torch.rand(n, generator=g, device=device) < prob).flatten()


# The example luminance quantisation table of the JPEG standard (ITU T.81, Annex K), which
# libjpeg, OpenCV and PIL scale by the quality.
_JPEG_LUMA = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99],
], dtype=torch.float32)


def _dct_matrix(n: int = 8) -> torch.Tensor:
    """The orthonormal DCT-II: JPEG's transform of an 8x8 block is D @ block @ D.T."""
    k, i = torch.arange(n, dtype=torch.float64).view(-1, 1), torch.arange(n, dtype=torch.float64).view(1, -1)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.float()


def jpeg_compress(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Grey faces (B, 1, H, W), 0..255, through baseline JPEG at each image's quality (B,), batched
    on their device: 8x8 DCT, the standard table scaled as libjpeg scales it, rounding, back.
    A grey JPEG has no colour to subsample, so this is the whole of its loss; it gives what
    OpenCV's encoder and decoder give within rounding (tests/test_transforms.py)."""
    B, _, H, W = x.shape
    ph, pw = -H % 8, -W % 8
    blocks = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x  # JPEG repeats the edge too
    hb, wb = (H + ph) // 8, (W + pw) // 8
    blocks = blocks.reshape(B, hb, 8, wb, 8).permute(0, 1, 3, 2, 4) - 128.0  # (B, hb, wb, 8, 8)
    d = _dct_matrix().to(x.device, x.dtype)
    q = quality.to(x.device, torch.float32).clamp(1, 100)
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q).view(B, 1, 1, 1, 1)
    table = ((_JPEG_LUMA.to(x.device) * scale + 50.0) / 100.0).floor().clamp(1.0, 255.0).to(x.dtype)
    coef = torch.round((d @ blocks @ d.T) / table) * table
    out = (d.T @ coef @ d + 128.0).round().clamp(0.0, 255.0)
    return out.permute(0, 1, 3, 2, 4).reshape(B, 1, H + ph, W + pw)[:, :, :H, :W]


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
    return TrainTransform(preprocess, aug or AugConfig(), seed=seed)
