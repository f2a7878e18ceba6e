"""The HTTP endpoints. Each handler reads the upload in the event loop, then hands decoding and
inference to the bounded pool, so a slow model never blocks health checks or other uploads.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from emolens import __version__
from emolens.serving.schemas import ERROR_RESPONSES, CropsResponse, Health, ModelInfo, PredictResponse
from emolens.serving.uploads import CROPS_FIELD, FILE_FIELD, IMAGE_TYPES, read_crop_uploads, read_image_upload

router = APIRouter()

_BINARY = {"type": "string", "format": "binary"}
# The bodies are read by hand (to check size and type before parsing), so they are declared here.
IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": "One image: the raw file with its image type, or a multipart form with a part named 'file'.",
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": [FILE_FIELD], "properties": {FILE_FIELD: _BINARY}}},
            **{t: {"schema": _BINARY} for t in ("image/jpeg", "image/png", "image/webp", "application/octet-stream")},
        },
    }
}
CROPS_BODY = {
    "requestBody": {
        "required": True,
        "description": f"Face crops, one multipart part named '{CROPS_FIELD}' each; types {', '.join(IMAGE_TYPES[:4])}, ...",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": [CROPS_FIELD], "properties": {CROPS_FIELD: {"type": "array", "items": _BINARY}}}
            }
        },
    }
}


def _model_ref(request: Request) -> dict[str, str]:
    info = request.app.state.model_info
    return {"name": str(info.get("name", "")), "version": str(info.get("version", ""))}


def _finish(out: dict[str, Any], t0: float, wait_s: float) -> dict[str, Any]:
    out["timings"] = {"queue_ms": round(wait_s * 1000, 3), **out["timings"], "total_ms": round((time.perf_counter() - t0) * 1000, 3)}
    return out


@router.get("/healthz", response_model=Health, tags=["service"], summary="Liveness, load and limits")
async def healthz(request: Request) -> dict[str, Any]:
    state = request.app.state
    return {"status": "ok", "version": __version__, "model": _model_ref(request), "pool": state.pool.stats(), "limits": state.limits.to_dict()}


@router.get("/v1/model", response_model=ModelInfo, tags=["model"], summary="The served model: labels, input size, metrics")
async def model_info(request: Request) -> dict[str, Any]:
    return request.app.state.model_info


@router.post(
    "/v1/predict", response_model=PredictResponse, tags=["predict"], openapi_extra=IMAGE_BODY, responses=ERROR_RESPONSES,
    summary="Find the faces in a photo and recognise each one's emotion",
)
async def predict(request: Request) -> dict[str, Any]:
    t0 = time.perf_counter()
    state = request.app.state
    upload = await read_image_upload(request)
    out, wait_s = await state.pool.run(state.runner.predict_image, upload)
    out["model"] = _model_ref(request)
    return _finish(out, t0, wait_s)


@router.post(
    "/v1/predict/crops", response_model=CropsResponse, tags=["predict"], openapi_extra=CROPS_BODY, responses=ERROR_RESPONSES,
    summary="Recognise the emotion of already-cropped faces (each found again in its crop and framed as photos' faces; read whole where none is found)",
)
async def predict_crops(request: Request) -> dict[str, Any]:
    t0 = time.perf_counter()
    state = request.app.state
    uploads = await read_crop_uploads(request, state.limits.max_batch)
    out, wait_s = await state.pool.run(state.runner.predict_crops, uploads)
    out["model"] = _model_ref(request)
    return _finish(out, t0, wait_s)
