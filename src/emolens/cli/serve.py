"""`emolens serve`: the HTTP API and the webcam page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emolens.cli.app import app
from emolens.pipeline.defaults import PIPELINE
from emolens.serving.limits import ServerLimits

_D = ServerLimits()


@app.command()
def serve(
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Model file (.safetensors) or run folder; default: the shipped model.")] = None,
    host: Annotated[str, typer.Option(help="Address to bind. Keep 127.0.0.1 unless other machines must reach it (there is no authentication).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Inference threads sharing the one loaded model; about one per 1-2 CPU cores.")] = _D.workers,
    max_queue: Annotated[int, typer.Option(help="Requests that may wait for a worker; beyond that the server answers 503 with Retry-After.")] = _D.max_queue,
    max_upload_bytes: Annotated[int, typer.Option(help="Largest request body accepted (413 beyond).")] = _D.max_upload_bytes,
    max_pixels: Annotated[int, typer.Option(help="Largest image (width x height) decoded (413 beyond).")] = _D.max_pixels,
    max_batch: Annotated[int, typer.Option(help="Most crops in one /v1/predict/crops request.")] = _D.max_batch,
    max_crop_pixels: Annotated[int, typer.Option(help="Largest face crop (width x height) on /v1/predict/crops (413 beyond).")] = _D.max_crop_pixels,
    pixel_budget: Annotated[int, typer.Option(help="Decoded pixels in memory at once, all requests together; others wait, then 503.")] = _D.pixel_budget,
    max_side: Annotated[int, typer.Option(help="Photos are shrunk to this longer side before face detection; boxes come back in the photo's pixels.")] = _D.max_side,
    min_face_size: Annotated[int, typer.Option(help="Smallest face side searched, in pixels of the photo as detected; lower finds smaller faces, slower.")] = _D.min_face_size,
    read_timeout: Annotated[float, typer.Option(help="Seconds for a request's headers, and again for its body (408 beyond); raise it for slow networks.")] = _D.read_timeout,
    max_connections: Annotated[int, typer.Option(help="Open HTTP connections at once (503 beyond).")] = _D.max_connections,
    max_streams: Annotated[int, typer.Option(help="Open /v1/stream WebSockets at once.")] = _D.max_streams,
    allow_host: Annotated[list[str] | None, typer.Option(help="Another Host name to answer to (repeat; '*' any). Default: localhost, 127.0.0.1, ::1 and --host.")] = None,
    allow_origin: Annotated[list[str] | None, typer.Option(help="Another site whose pages may call the API, e.g. https://app.example.org (repeat; '*' any).")] = None,
    detector: Annotated[str, typer.Option(help="Face detector (emolens detectors lists them); options may follow, e.g. centerface,work_px=16.")] = PIPELINE.detector,
    backend: Annotated[str, typer.Option(help="Inference backend: torch, onnx or auto.")] = PIPELINE.server_backend,
    log_level: Annotated[str, typer.Option(help="uvicorn log level: critical, error, warning, info, debug.")] = "info",
) -> None:
    """Serve the JSON API (/v1/predict, /v1/predict/crops, /v1/stream, /v1/model, /healthz) and the webcam page at /."""
    from emolens.extras import require_extra

    require_extra("serve", "emolens serve")  # the plain install has no FastAPI or uvicorn
    from emolens.serving import serve as run_server

    run_server(
        model, host=host, port=port, workers=workers, max_queue=max_queue, max_upload_bytes=max_upload_bytes,
        max_pixels=max_pixels, max_batch=max_batch, max_crop_pixels=max_crop_pixels, pixel_budget=pixel_budget,
        max_side=max_side, min_face_size=min_face_size, read_timeout=read_timeout, max_connections=max_connections, max_streams=max_streams,
        allow_hosts=tuple(allow_host or ()), allow_origins=tuple(allow_origin or ()), detector=detector, backend=backend,
        log_level=log_level,
    )
