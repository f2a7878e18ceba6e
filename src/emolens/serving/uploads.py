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
from emolens.preprocessing import load_image

# Raster formats Pillow decodes; octet-stream (or no type at all) is sniffed from the bytes.
IMAGE_TYPES = (
    "image/jpeg", "image/pjpeg", "image/png", "image/webp", "image/bmp", "image/x-ms-bmp", "image/gif",
    "image/tiff", "image/x-portable-graymap", "image/x-portable-pixmap", "image/x-portable-anymap",
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


def check_dimensions(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse an image whose header declares more than `max_pixels`, before decoding it.

    Anything Pillow cannot even open is left to `load_image`, which words the error.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{name}: image dimensions are too large to decode ({exc})") from None
    except Exception:
        return
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{name}: image is {width}x{height} = {width * height:,} pixels; this server decodes at most "
            f"{max_pixels:,} pixels, resize it first"
        )


def decode_image(upload: Upload, max_pixels: int) -> np.ndarray:
    """Bytes -> numpy image as stored (gray, RGB or RGBA); DataError when unreadable."""
    check_dimensions(upload.data, upload.name, max_pixels)
    return load_image(upload.data, name=upload.name)
