"""The one preprocessing path, shared by training, evaluation, photos, video, webcam and HTTP.

Every image that reaches a model goes through these functions, configured by the
`PreprocessConfig` that travels with the weights, so that training and inference can never
drift apart. Nobody else re-types 48, a mean or a margin.

Stages:
1. `to_gray`        any image (path, PIL, numpy gray/RGB/BGR/RGBA, 8/16-bit) -> (H, W) uint8
2. `crop_face`      a face box in a full image -> square crop with margin -> (S, S) uint8
   `square_resize`  a whole image that is already a face crop -> (S, S) uint8
3. `normalize`      a uint8 batch (B, S, S) -> float (B, 1, input_size, input_size), each
                    underexposed face brightened first (`brighten_dark_faces`)
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from emolens.errors import ConfigError, DataError

ColorOrder = Literal["rgb", "bgr"]

# What a model file may declare. 8 is the smallest side a config can be built with; 256 bounds
# the network a file can make us build (a fully connected head grows with the side squared).
SIDE_RANGE = (8, 256)
MEAN_RANGE = (0.0, 1.0)  # of pixel/255, which lies in [0, 1]
STD_RANGE = (1e-3, 1.0)  # a tinier std turns float32 inputs into inf
# A face whose brightest 1% of pixels lies below this (of 255) is brightened until it reaches it,
# at most FACE_MAX_GAIN times, before the network sees it: in training and at inference alike.
# Faces as datasets and cameras usually give them are left alone. Chosen on FER+ validation
# among 128, 160, 200 and 230 (the shipped model on its faces 0, 3, 5 and 7 stops underexposed):
# 83.26%, 83.95%, 84.04%, 83.38% at 128, against 83.26%, 84.01%, 82.79% and 77.18% as they were
# (docs/experiments.md, "Dark faces").
FACE_BRIGHT_LEVEL = 128.0
FACE_MAX_GAIN = 8.0


@dataclass(frozen=True)
class PreprocessConfig:
    """How a face becomes a model input. Saved beside every set of weights."""

    image_size: int = 48  # side of the stored face crop; FER-2013 is 48x48
    input_size: int = 48  # side the network sees (may differ, e.g. 44 for crop training)
    mean: float = 0.5  # of pixel/255 over FER-2013 train (0.508, rounded)
    std: float = 0.25  # of pixel/255 over FER-2013 train (0.254, rounded)
    face_margin: float = 0.2  # box grows by this fraction per side: FER crops show brow to chin
    # Measured per detector (`emolens.faces.framing`): detector name -> (scale, dx, dy), the crop
    # that frames that detector's boxes as FER-2013 frames its faces. Detectors not listed use
    # face_margin, centred on the box.
    framing: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lo, hi = SIDE_RANGE
        if not (lo <= self.image_size <= hi and lo <= self.input_size <= hi):
            # The upper bound too: a model trained at a size no model file may declare could never be loaded.
            raise ConfigError(
                f"image_size and input_size must be in [{lo}, {hi}], got {self.image_size} and {self.input_size}"
            )
        if self.input_size > self.image_size:
            raise ConfigError(
                f"input_size {self.input_size} is larger than image_size {self.image_size}; "
                "crops are taken from the stored image, so input_size <= image_size"
            )
        if self.std <= 0:
            raise ConfigError(f"std must be positive, got {self.std}")
        if not 0 <= self.face_margin <= 1:
            raise ConfigError(f"face_margin must be in [0, 1], got {self.face_margin}")
        object.__setattr__(self, "framing", _checked_framing(self.framing, "framing"))

    def framing_for(self, detector: str) -> Framing:
        """The crop geometry for boxes from `detector`: measured, else face_margin around the box."""
        if detector in self.framing:
            return Framing(*self.framing[detector])
        return Framing(scale=1.0 + 2.0 * self.face_margin)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown preprocessing keys {sorted(unknown)}; expected some of {sorted(known)}")
        return cls(**d)

    @classmethod
    def validated(cls, d: Any, source: str = "preprocess") -> PreprocessConfig:
        """A config from untrusted JSON (a model file): each field's type and range checked first.

        Raises ConfigError naming `source`, the field, what was found and what was expected.
        """
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object of preprocessing settings, found {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"{source}: unknown preprocessing keys {sorted(map(str, unknown))}; expected some of {sorted(known)}")
        for name in ("image_size", "input_size"):
            if name in d:
                _check_number(d[name], f"{source}.{name}", SIDE_RANGE, integer=True)
        for name, bounds in (("mean", MEAN_RANGE), ("std", STD_RANGE), ("face_margin", (0.0, 1.0))):
            if name in d:
                _check_number(d[name], f"{source}.{name}", bounds)
        try:
            return cls(**d)
        except ConfigError as exc:  # the cross-field rules of __post_init__ (input_size <= image_size)
            raise ConfigError(f"{source}: {exc}") from None


@dataclass(frozen=True)
class Framing:
    """Where a face crop lies relative to a detector box, in units of the box's longer side.

    The crop is square: side = scale * max(w, h), centred at the box centre moved by
    (dx, dy) * max(w, h) (positive = right, down).
    """

    scale: float = 1.4
    dx: float = 0.0
    dy: float = 0.0


FRAMING_SCALE_RANGE = (0.5, 3.0)  # a crop from half to three times the box
FRAMING_SHIFT_RANGE = (-0.5, 0.5)  # the crop centre stays within the box


def _checked_framing(framing: Any, where: str) -> dict[str, tuple[float, float, float]]:
    if not isinstance(framing, dict):
        raise ConfigError(f"{where}: expected an object of detector name -> [scale, dx, dy], found {type(framing).__name__}")
    checked = {}
    for name, geometry in framing.items():
        if not isinstance(name, str) or not 0 < len(name) <= 64:
            raise ConfigError(f"{where}: detector names must be strings of 1-64 characters, found {name!r}")
        if not isinstance(geometry, list | tuple) or len(geometry) != 3:
            raise ConfigError(f"{where}.{name}: expected [scale, dx, dy], found {geometry!r}")
        for value, part, bounds in zip(geometry, ("scale", "dx", "dy"), (FRAMING_SCALE_RANGE, FRAMING_SHIFT_RANGE, FRAMING_SHIFT_RANGE), strict=True):
            _check_number(value, f"{where}.{name}.{part}", bounds)
        checked[name] = tuple(float(v) for v in geometry)
    return checked


def _check_number(value: Any, where: str, bounds: tuple[float, float], *, integer: bool = False) -> None:
    lo, hi = bounds
    # bool is an int to Python; `true` for a size is a damaged file, not 1.
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not math.isfinite(value) or not lo <= value <= hi:
        kind = "an integer" if integer else "a finite number"
        raise ConfigError(f"{where}: expected {kind} in [{lo}, {hi}], found {value!r}")


# Besides UnidentifiedImageError, PIL's format plugins let these escape on malformed headers and data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, ZeroDivisionError, struct.error)


def printable_path(path: str | Path) -> str:
    """A path as messages, tables and terminals can carry it: bytes of a name that are not UTF-8
    (kept by Python as lone surrogates, which JSON, CSV, OpenCV and terminals reject) become \\xNN."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


# HEIF's ISO-BMFF brands (bytes 8-12 of the file): HEIC is the iPhone camera's format since iOS 11.
# AVIF, the same container around AV1, Pillow reads itself (11.3 and later).
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"})


def read_heif_when_needed(header: bytes, label: str) -> None:
    """Teach Pillow to open HEIF/HEIC when `header` (a file's first 12 bytes or more) is one:
    pillow-heif, the `heif` extra, registers its opener once. DataError naming the extra when it
    is missing, so a batch reports the photo and goes on."""
    if header[4:8] != b"ftyp" or header[8:12] not in _HEIF_BRANDS:
        return
    from emolens.extras import import_extra

    try:
        pillow_heif = import_extra("pillow_heif", "heif", "reading HEIF/HEIC photos (the iPhone camera's format)")
    except ConfigError as exc:
        raise DataError(f"{label}: {exc}") from None
    pillow_heif.register_heif_opener()  # idempotent: a second call changes nothing


def _open_image(source: str | Path | bytes, label: str) -> Any:
    """PIL image, header read only: the pixels are decoded by `load()` after the size check."""
    from PIL import Image

    if isinstance(source, bytes):
        if not source:
            raise DataError(f"{label}: empty data (0 bytes); expected an image file")
        read_heif_when_needed(source[:12], label)
        return Image.open(io.BytesIO(source))
    path = Path(source)
    if not path.exists():
        raise DataError(f"{label}: no such file" + (" (dangling symbolic link)" if path.is_symlink() else ""))
    if path.is_dir():
        raise DataError(f"{label}: is a folder, expected an image file")
    if not path.is_file():
        # A FIFO would block forever and a device never ends.
        raise DataError(f"{label}: not a regular file (a pipe, socket or device); expected an image file")
    if path.stat().st_size == 0:
        raise DataError(f"{label}: empty file (0 bytes); expected an image")
    with open(path, "rb") as f:
        read_heif_when_needed(f.read(12), label)
    return Image.open(path)


def _check_pixels(img: Any, label: str) -> None:
    """DataError when the header declares more pixels than PIL's limit (a decompression bomb)."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    w, h = img.size
    # Also enforced here because PIL only warns below 2x the limit, and warning filters are process-wide.
    if limit is not None and w * h > limit:
        raise DataError(f"{label}: image of {w}x{h} = {w * h} pixels exceeds the limit of {limit} pixels (a decompression bomb?); expected a smaller image")


def load_image(source: str | Path | bytes, *, name: str | None = None) -> np.ndarray:
    """Decode an image file (or its bytes) to a numpy array as stored (gray, RGB or RGBA).

    Raises DataError naming the file when it is missing, empty or not a decodable image.
    """
    from PIL import Image, UnidentifiedImageError

    label = name or (printable_path(source) if not isinstance(source, bytes) else "<bytes>")
    try:
        with warnings.catch_warnings():
            # Past MAX_IMAGE_PIXELS PIL only warns, then decodes: a 10000x10000 header costs 300 MB.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _open_image(source, label)
            _check_pixels(img, label)
            img.load()
    except DataError:
        raise
    except UnidentifiedImageError:
        # PIL's own message names an internal BytesIO object: say what matters instead.
        raise DataError(f"{label}: not a readable image (unknown format, or not an image at all)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # PIL's message gives the pixel count and its limit.
        raise DataError(f"{label}: image too large to decode safely ({exc}); expected at most {Image.MAX_IMAGE_PIXELS} pixels") from None
    except _DECODE_ERRORS as exc:
        # Malformed files surface as many exception types deep inside PIL's plugins.
        raise DataError(f"{label}: not a readable image ({exc.__class__.__name__}: {exc})") from None
    # Phone photos store their rotation in EXIF; apply it so faces are upright.
    from PIL import ImageOps

    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size and arr.max() > 0 else 1.0
        return np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8)
    if img.mode not in ("L", "RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
    return np.asarray(img)


def to_gray(image: Any, *, color_order: ColorOrder = "rgb") -> np.ndarray:
    """Any image -> (H, W) uint8 grayscale, with the ITU-R 601 luma PIL uses for JPEG 'L'.

    Accepts a path, bytes, a PIL image, or a numpy array (H, W), (H, W, 1), (H, W, 3) in
    `color_order`, or (H, W, 4); uint8, uint16 or float in [0, 1].
    """
    if isinstance(image, str | Path | bytes):
        image = load_image(image)
    elif not isinstance(image, np.ndarray):
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover - pillow is a dependency
            Image = None
        if Image is not None and isinstance(image, Image.Image):
            image = np.asarray(image.convert("L") if image.mode not in ("L", "RGB", "RGBA") else image)
        else:
            raise DataError(f"expected a path, bytes, PIL image or numpy array, got {type(image).__name__}")
    arr = image
    if arr.dtype == np.uint16:
        arr = (arr / 257.0).round().astype(np.uint8)
    elif arr.dtype in (np.float32, np.float64):
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise DataError(f"float images must hold values in [0, 1], got [{arr.min():.3g}, {arr.max():.3g}]")
        arr = (arr * 255.0).round().astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise DataError(f"unsupported image dtype {arr.dtype}; expected uint8, uint16 or float")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        gray = arr
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        rgb = arr[:, :, :3].astype(np.uint32)
        if color_order == "bgr":
            rgb = rgb[:, :, ::-1]
        # Integer form of PIL's L = R*299/1000 + G*587/1000 + B*114/1000 (rounded like PIL).
        gray = ((rgb[:, :, 0] * 19595 + rgb[:, :, 1] * 38470 + rgb[:, :, 2] * 7471 + 0x8000) >> 16).astype(np.uint8)
    else:
        raise DataError(f"unsupported image shape {arr.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")
    if gray.shape[0] < 1 or gray.shape[1] < 1:
        raise DataError(f"image has no pixels (shape {arr.shape})")
    return np.ascontiguousarray(gray)


def _resize(gray: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if gray.shape == (size, size):
        return gray
    # INTER_AREA averages when shrinking (no aliasing); linear when enlarging.
    interp = cv2.INTER_AREA if gray.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(gray, (size, size), interpolation=interp)


def square_resize(gray: np.ndarray, size: int) -> np.ndarray:
    """A face crop of any shape -> (size, size): centre square crop, then resize."""
    h, w = gray.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return _resize(gray[top : top + s, left : left + s], size)


def crop_face(
    image: np.ndarray, box: tuple[float, float, float, float], framing: Framing | float, size: int,
    *, color_order: ColorOrder = "bgr", roll: float = 0.0,
) -> np.ndarray:
    """Cut a face out of a full image the way the training crops were made.

    box is (x, y, w, h) in pixels. framing says where the square crop lies around the box
    (`Framing`, measured per detector); a plain number is a margin: the box made square around
    its centre and grown by that share of its side on each side. roll: degrees clockwise by which
    the square is cut turned (the recognizer gives the face's tilt, `Detection.roll`, less what
    upright faces show: `upright_turn`), so the crop shows the face upright, as training faces
    are; the framing's offsets turn with it. The crop is
    padded by edge replication where it leaves the image, and resized to (size, size). `image`
    is gray (H, W) or colour (H, W, 3) in `color_order`; of a colour image only the crop is made
    gray (`to_gray`: the same pixels as cutting the gray image, without converting the whole frame).
    """
    if roll:
        return _turned_crop(image, box, framing, size, color_order, roll)
    x0, y0, s = face_square(box, framing)
    H, W = image.shape[:2]
    pad_l, pad_t = max(0, -x0), max(0, -y0)
    pad_r, pad_b = max(0, x0 + s - W), max(0, y0 + s - H)
    crop = image[max(0, y0) : min(H, y0 + s), max(0, x0) : min(W, x0 + s)]
    if crop.size == 0:
        raise DataError(f"face box {box} lies outside the image of size {W}x{H}")
    if crop.ndim == 3:
        crop = to_gray(crop, color_order=color_order)
    if pad_l or pad_t or pad_r or pad_b:
        crop = np.pad(crop, ((pad_t, pad_b), (pad_l, pad_r)), mode="edge")
    return _resize(crop, size)


def _turned_crop(
    image: np.ndarray, box: tuple[float, float, float, float], framing: Framing | float, size: int, color_order: ColorOrder, roll: float,
) -> np.ndarray:
    """`crop_face` of a face tilted by `roll` degrees: the framed square turned by the tilt, cut
    at full resolution (bilinear, edges replicated), then resized like an upright crop."""
    import cv2

    x, y, w, h, framing = _box_and_framing(box, framing)
    ref, t = max(w, h), math.radians(roll)
    ux, uy, vx, vy = math.cos(t), math.sin(t), -math.sin(t), math.cos(t)  # the face's x (eyes) and y (down) axes
    # The square's centre in pixel-centre coordinates (the box's edges lie half a pixel outside them).
    cx = x + w / 2.0 + ref * (framing.dx * ux + framing.dy * vx) - 0.5
    cy = y + h / 2.0 + ref * (framing.dx * uy + framing.dy * vy) - 0.5
    side = max(1, int(round(ref * framing.scale)))
    reach = side * (abs(ux) + abs(uy)) / 2.0 + 2.0  # half the turned square's bounding box, and a margin for bilinear
    H, W = image.shape[:2]
    x0, y0 = max(0, int(math.floor(cx - reach))), max(0, int(math.floor(cy - reach)))
    region = image[y0 : min(H, int(math.ceil(cy + reach)) + 1), x0 : min(W, int(math.ceil(cx + reach)) + 1)]
    if region.size == 0:
        raise DataError(f"face box {box} lies outside the image of size {W}x{H}")
    if region.ndim == 3:
        region = to_gray(region, color_order=color_order)
    # Crop pixel (i, j) samples the region at the centre + (j - c) * x axis + (i - c) * y axis.
    c = (side - 1) / 2.0
    to_region = np.array([[ux, vx, cx - x0 - c * (ux + vx)], [uy, vy, cy - y0 - c * (uy + vy)]])
    turned = cv2.warpAffine(region, to_region, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return _resize(turned, size)


def _box_and_framing(box: tuple[float, float, float, float], framing: Framing | float) -> tuple[float, float, float, float, Framing]:
    """(x, y, w, h) as floats, checked to have an area, and the framing as a `Framing` (a plain
    number is a margin on each side)."""
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise DataError(f"face box {box} has no area")
    if not isinstance(framing, Framing):
        framing = Framing(scale=1.0 + 2.0 * float(framing))
    return x, y, w, h, framing


def face_square(box: tuple[float, float, float, float], framing: Framing | float) -> tuple[int, int, int]:
    """(x0, y0, side) in pixels of the square `crop_face` cuts around `box`."""
    x, y, w, h, framing = _box_and_framing(box, framing)
    ref = max(w, h)
    side = ref * framing.scale
    cx, cy = x + w / 2.0 + framing.dx * ref, y + h / 2.0 + framing.dy * ref
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), max(1, int(round(side)))


def exposure_gains(images: Any, level: float, max_gain: float) -> Any:
    """Per-image gains (B,) that bring each image's brightest 1% of pixel values up to `level`
    grey levels (of 255), at most `max_gain`; 1 for an image already that bright. images: (B, ...),
    numpy or torch, uint8 (0-255) or float scaled to [0, 1]. The brightest 1% is read as the
    smallest of the k = 1% brightest values: a partial sort (torch's quantile sorts every value
    and cost 60 ms per 256 faces, this 1-3 ms). The one exposure rule of the project: the
    detector's search (`exposure_gain`) and the classifier's faces (`brighten_dark_faces`)."""
    n = int(np.prod(images.shape[1:]))
    flat, k = images.reshape(images.shape[0], n), max(1, round(n / 100))
    if isinstance(images, np.ndarray):
        full = 1.0 if np.issubdtype(images.dtype, np.floating) else 255.0
        bright = np.partition(flat, n - k, axis=1)[:, n - k].astype(np.float32)
        target, floor = np.float32(level / 255.0 * full), np.float32(full / 255.0)
        return np.clip(target / np.maximum(bright, floor), 1.0, max(1.0, max_gain))
    full = 1.0 if images.dtype.is_floating_point else 255.0
    bright = flat.topk(k, dim=1, sorted=False).values.amin(1).float()
    return (level / 255.0 * full / bright.clamp_min(full / 255.0)).clamp(1.0, max(1.0, max_gain))


def exposure_gain(image: np.ndarray, level: float, max_gain: float) -> float:
    """`exposure_gains` for one uint8 image (a photo or a frame searched for faces), read from
    about 16k of its pixels."""
    if max_gain <= 1.0:
        return 1.0
    step = max(1, int((image.shape[0] * image.shape[1] / 16384) ** 0.5))
    return float(exposure_gains(image[None, ::step, ::step], level, max_gain)[0])


def brighten_dark_faces(x: Any) -> Any:
    """Faces (B, 1, S, S) scaled to [0, 1], torch or numpy, each underexposed one brightened
    (FACE_BRIGHT_LEVEL): the network then sees a face in a dark room or a dim video frame as it
    sees one at a normal exposure. A face already bright enough is returned unchanged."""
    gains = exposure_gains(x, FACE_BRIGHT_LEVEL, FACE_MAX_GAIN).reshape(-1, 1, 1, 1)
    if isinstance(x, np.ndarray):
        return np.minimum(x * gains, np.float32(1.0))
    return (x * gains).clamp_(max=1.0)


def normalize(batch: Any, cfg: PreprocessConfig) -> Any:
    """uint8 faces (B, S, S) or (B, 1, S, S), numpy or torch -> float32 tensor (B, 1, I, I).

    Underexposed faces are brightened first (`brighten_dark_faces`). A stored image larger than
    the input (S > I) is centre-cropped: random crops of the same size are the training
    augmentation, so the centre is what evaluation sees.
    """
    import torch

    x = torch.as_tensor(batch)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1:
        raise DataError(f"expected faces shaped (B, S, S) or (B, 1, S, S), got {tuple(x.shape)}")
    x = brighten_dark_faces(x.float().div_(255.0))
    if x.shape[-1] != cfg.image_size or x.shape[-2] != cfg.image_size:
        x = torch.nn.functional.interpolate(x, size=(cfg.image_size, cfg.image_size), mode="bilinear", antialias=True, align_corners=False)
    if cfg.input_size < cfg.image_size:
        off = (cfg.image_size - cfg.input_size) // 2
        x = x[:, :, off : off + cfg.input_size, off : off + cfg.input_size]
    return (x - cfg.mean) / cfg.std


def normalize_array(batch: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """`normalize` for the exported backends, as a float32 numpy array: the same numbers, and
    without importing torch when the faces are already `image_size` (a detector's crops are),
    which keeps a second or two of PyTorch start-up out of every ONNX or TFLite run."""
    x = np.asarray(batch)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise DataError(f"expected faces shaped (B, S, S) or (B, 1, S, S), got {tuple(x.shape)}")
    if x.shape[-1] != cfg.image_size or x.shape[-2] != cfg.image_size:
        return normalize(x, cfg).numpy()  # resampled by torch's antialiased bilinear, as in training
    x = brighten_dark_faces(x.astype(np.float32) / np.float32(255.0))
    if cfg.input_size < cfg.image_size:
        off = (cfg.image_size - cfg.input_size) // 2
        x = x[:, :, off : off + cfg.input_size, off : off + cfg.input_size]
    return np.ascontiguousarray((x - np.float32(cfg.mean)) / np.float32(cfg.std))


def prepare_face(image: Any, cfg: PreprocessConfig, *, color_order: ColorOrder = "rgb") -> np.ndarray:
    """A whole image that is already a face crop -> (image_size, image_size) uint8.

    This is how folder datasets are stored, and how `predict_crops` treats its input.
    """
    return square_resize(to_gray(image, color_order=color_order), cfg.image_size)
