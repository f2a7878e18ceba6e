"""`emolens serve`: the HTTP API and the webcam page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emolens.cli.app import app
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
    detector: Annotated[str, typer.Option(help="Face detector.")] = "haar",
    backend: Annotated[str, typer.Option(help="Inference backend: torch or onnx.")] = "torch",
    log_level: Annotated[str, typer.Option(help="uvicorn log level: critical, error, warning, info, debug.")] = "info",
) -> None:
    """Serve the JSON API (/v1/predict, /v1/predict/crops, /v1/stream, /v1/model, /healthz) and the webcam page at /."""
    from emolens.serving import serve as run_server

    run_server(
        model, host=host, port=port, workers=workers, max_queue=max_queue, max_upload_bytes=max_upload_bytes,
        max_pixels=max_pixels, max_batch=max_batch, detector=detector, backend=backend, log_level=log_level,
    )
