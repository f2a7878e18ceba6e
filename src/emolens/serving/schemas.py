"""Response bodies, declared so that the OpenAPI schema at /openapi.json documents the API.

Faces are `ImageResult.summary()` entries returned as they are: the fields below are the ones
clients rely on, and any others the pipeline adds pass through (extra="allow").
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Box(BaseModel):
    x: int
    y: int
    w: int
    h: int


class Face(BaseModel):
    model_config = ConfigDict(extra="allow")

    box: Box = Field(description="the face in pixels of the sent image (a crop's box is the whole crop)")
    label: str = Field(description="the most likely emotion")
    scores: dict[str, float] = Field(description="probability of each emotion, in the model's label order; sums to 1")
    tilt: float | None = Field(
        None, description="the face's in-plane tilt in degrees, positive when turned clockwise as seen; null from a detector without landmarks",
    )
    landmarks: dict[str, list[float]] | None = Field(
        None, description="right_eye, left_eye (the person's) and mouth centres as [x, y] pixels; null from a detector without landmarks",
    )


class ModelRef(BaseModel):
    name: str
    version: str


class Timings(BaseModel):
    model_config = ConfigDict(extra="allow")

    queue_ms: float = Field(description="waiting for a free inference worker")
    decode_ms: float = Field(description="decoding the upload(s)")
    lock_ms: float | None = Field(None, description="waiting for the face detector, which one thread uses at a time")
    predict_ms: float = Field(description="face detection and emotion recognition")
    total_ms: float = Field(description="from the first byte handled to the response built")


class ImageSize(BaseModel):
    width: int
    height: int


class Tag(BaseModel):
    face: int = Field(description="index of the face in `faces`")
    box: Box = Field(description="where its label goes, in pixels of the sent image: as annotated images place it, over no other face or label")
    text: str = Field(description="the label as written there")


class PredictResponse(BaseModel):
    faces: list[Face] = Field(description="one entry per face found, largest first; empty when none")
    tags: list[Tag] = Field(default_factory=list, description="where to draw each face's label (what the web page draws)")
    image: ImageSize
    model: ModelRef
    timings: Timings


class CropResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    index: int = Field(description="position of the crop in the request")
    filename: str
    box: Box | None = None
    label: str | None = None
    scores: dict[str, float] | None = None
    error: str | None = Field(None, description="why this crop was skipped; the others are still answered")


class CropsResponse(BaseModel):
    crops: list[CropResult] = Field(description="one entry per crop sent, in order")
    model: ModelRef
    timings: Timings


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    version: str
    labels: list[str]
    input_size: Any = Field(None, description="side of the square face crop the network sees")
    metrics: dict[str, Any] = Field(default_factory=dict, description="figures from the model card")


class PoolStats(BaseModel):
    workers: int
    max_queue: int
    running: int
    queued: int
    completed: int
    rejected: int


class Health(BaseModel):
    status: str
    version: str = Field(description="emolens version")
    model: ModelRef
    pool: PoolStats
    limits: dict[str, int | float] = Field(description="the server's limits, as in emolens.serving.ServerLimits")


class ErrorBody(BaseModel):
    detail: str = Field(description="what was wrong and how to fix it")
    error: str = Field(description="error class, e.g. DataError")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "malformed request (e.g. broken multipart)"},
    413: {"model": ErrorBody, "description": "upload larger than max_upload_bytes, or image larger than max_pixels"},
    415: {"model": ErrorBody, "description": "content type is not an image"},
    422: {"model": ErrorBody, "description": "empty, truncated or undecodable image"},
    503: {"model": ErrorBody, "description": "all workers busy and the queue full; retry after the Retry-After header"},
}
