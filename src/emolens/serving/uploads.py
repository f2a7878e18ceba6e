"""Getting an image out of a request: content-type checks, multipart or raw body, safe decoding.

Decoding goes through `emolens.preprocessing.load_image`, so the API accepts exactly what the
rest of emolens reads, and refuses with the same `DataError` message. Before decoding, the
image header is read to refuse huge dimensions without allocating the pixels.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from emolens.errors import DataError
from emolens.preprocessing import load_image, read_heif_when_needed

# Raster formats Pillow decodes; octet-stream (or no type at all) is sniffed from the bytes.
IMAGE_TYPES = (
    "image/jpeg", "image/pjpeg", "image/png", "image/webp", "image/bmp", "image/x-ms-bmp", "image/gif",
    "image/tiff", "image/x-portable-graymap", "image/x-portable-pixmap", "image/x-portable-anymap",
    "image/avif", "image/heic", "image/heif",  # HEIC/HEIF with the heif extra (else a 422 naming it)
)
RAW_TYPES = (*IMAGE_TYPES, "application/octet-stream")
FILE_FIELD = "file"
CROPS_FIELD = "files"


class UnsupportedMediaType(Exception):
    """The request's (or a part's) content type cannot hold an image this server decodes."""


class ImageTooLarge(DataError):
    """The image's header declares more pixels than the server decodes."""


@dataclass(frozen=True)
class Upload:
    data: bytes
    name: str  # the part's filename, or "upload" for a raw body: it names the item in errors


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _check_part_type(content_type: str | None, name: str) -> None:
    mime = media_type(content_type)
    if mime and mime not in RAW_TYPES:
        raise UnsupportedMediaType(f"{name}: content type {mime!r} is not an image; expected one of {', '.join(RAW_TYPES)}")


def _curl_hint() -> str:
    return "send the image as the raw body with its type (curl --data-binary @face.jpg -H 'Content-Type: image/jpeg') or as a multipart part named 'file' (curl -F file=@face.jpg)"


async def _form(request: Any, max_files: int) -> Any:
    # Starlette answers a malformed multipart body 400 with its own message.
    return await request.form(max_files=max_files, max_fields=16)


async def read_image_upload(request: Any) -> Upload:
    """The one image of a /v1/predict request, raw body or multipart part 'file'."""
    mime = media_type(request.headers.get("content-type"))
    if mime == "multipart/form-data":
        form = await _form(request, max_files=1)
        part = form.get(FILE_FIELD)
        if part is None or isinstance(part, str):
            fields = ", ".join(repr(k) for k in form) or "none"
            raise DataError(f"multipart body has no file part named {FILE_FIELD!r} (parts: {fields}); {_curl_hint()}")
        name = part.filename or FILE_FIELD
        _check_part_type(part.content_type, name)
        return Upload(await part.read(), name)
    if mime and mime not in RAW_TYPES:
        raise UnsupportedMediaType(f"content type {mime!r} is not an image; {_curl_hint()}")
    return Upload(await request.body(), "upload")


async def read_crop_uploads(request: Any, max_batch: int) -> list[Upload]:
    """The face crops of a /v1/predict/crops request: multipart parts named 'files'."""
    mime = media_type(request.headers.get("content-type"))
    if mime != "multipart/form-data":
        raise UnsupportedMediaType(
            f"content type {mime or 'none'!r}: crops are sent as multipart/form-data with one part "
            f"named {CROPS_FIELD!r} per crop (curl -F files=@a.jpg -F files=@b.jpg)"
        )
    form = await _form(request, max_files=max_batch + 1)
    parts = [p for p in form.getlist(CROPS_FIELD) if not isinstance(p, str)]
    if not parts:
        fields = ", ".join(repr(k) for k in form) or "none"
        raise DataError(f"multipart body has no file parts named {CROPS_FIELD!r} (parts: {fields}); send one part per face crop")
    if len(parts) > max_batch:
        raise DataError(f"got more than {max_batch} crops in one request; this server takes at most {max_batch}, split the batch")
    uploads = []
    for i, part in enumerate(parts):
        name = part.filename or f"{CROPS_FIELD}[{i}]"
        _check_part_type(part.content_type, name)
        uploads.append(Upload(await part.read(), name))
    return uploads


def open_header(upload: Upload, max_pixels: int, what: str = "image") -> Any:
    """The upload as a lazy Pillow image (only the header read), or None when Pillow cannot open it.

    Refuses (ImageTooLarge) a header declaring more than `max_pixels`, before any decoding.
    Anything Pillow cannot even open is left to `load_image`, which words the error.
    """
    from PIL import Image

    read_heif_when_needed(upload.data[:12], upload.name)  # an iPhone's HEIC: its header read too, when the extra is there
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(upload.data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{upload.name}: image dimensions are too large to decode ({exc})") from None
    except Exception:
        return None
    width, height = img.size
    if width * height > max_pixels:
        img.close()
        raise ImageTooLarge(
            f"{upload.name}: {what} is {width}x{height} = {width * height:,} pixels; this server decodes at most "
            f"{max_pixels:,} pixels per {what}, resize it first"
        )
    return img


def check_dimensions(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse an image whose header declares more than `max_pixels`, before decoding it."""
    img = open_header(Upload(data, name), max_pixels)
    if img is not None:
        img.close()


def decode_image(upload: Upload, max_pixels: int) -> np.ndarray:
    """Bytes -> numpy image as stored (gray, RGB or RGBA); DataError when unreadable."""
    check_dimensions(upload.data, upload.name, max_pixels)
    return load_image(upload.data, name=upload.name)


@dataclass
class DecodePlan:
    """What decoding one photo will cost, known from its header alone."""

    upload: Upload
    img: Any  # the lazy Pillow image, or None when Pillow cannot open it (load_image words the error)
    pixels: int  # pixels the decoder will allocate: after JPEG draft, before the final downscale
    size: tuple[int, int] = (0, 0)  # (width, height) the header declares


def plan_decode(upload: Upload, max_pixels: int, max_side: int) -> DecodePlan:
    """Read the header; for a JPEG larger than `max_side`, ask the decoder for a reduced size.

    JPEG decoders can produce 1/2, 1/4 or 1/8 scale directly (Pillow's draft), so a 49 MP photo
    costs a quarter or less of its pixels; other formats decode in full and are shrunk after.
    """
    img = open_header(upload, max_pixels)
    if img is None:
        return DecodePlan(upload, None, 0)
    width, height = size = img.size
    if max(width, height) > max_side and img.format == "JPEG":
        r = max_side / max(width, height)
        img.draft(None, (max(1, int(width * r)), max(1, int(height * r))))  # a reduction that keeps >= max_side
    return DecodePlan(upload, img, img.size[0] * img.size[1], size)


def decode_bounded(plan: DecodePlan, max_side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode a planned photo, at most `max_side` on its longer side, and give its full upright size.

    Returns (image, (width, height)): the image as stored (gray, RGB or RGBA), and the size of
    the original photo after its EXIF rotation, to map boxes found in the image back onto it.
    A photo that needs no reduction is read by `load_image`, exactly as the rest of emolens reads it.
    """
    from PIL import Image, ImageOps

    img, name = plan.img, plan.upload.name
    if img is None:
        return load_image(plan.upload.data, name=name), (0, 0)  # raises the DataError
    full = _full_size(img, plan.size)
    if max(full) <= max_side:
        img.close()
        image = load_image(plan.upload.data, name=name)
        return image, (image.shape[1], image.shape[0])
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{name}: not a readable image ({exc.__class__.__name__}: {exc})") from None
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        img.close()  # rare high-bit-depth photos: the common loader scales their range
        img = Image.fromarray(load_image(plan.upload.data, name=name))
    elif img.mode not in ("L", "RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
    img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(img), full


def _full_size(img: Any, size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the original photo as shown: header size, swapped by EXIF rotation."""
    width, height = size
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)
