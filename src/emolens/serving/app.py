"""`create_app`: the FastAPI application, built around one recognizer loaded once.

    from emolens.serving import create_app
    app = create_app(EmotionRecognizer("runs/exp/best.safetensors"), workers=2)

The recognizer is injected (tests pass their own); without one, the shipped default model
is loaded. Everything heavy happens here, once, before the first request.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from emolens.serving.limits import BodyLimitMiddleware, ServerLimits

STATIC_DIR = Path(str(resources.files("emolens.serving") / "static"))

# The page is our own HTML/JS/CSS: nothing may come from elsewhere, and camera frames only go
# back to this server (blob: for the captured frames, ws: for the stream).
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
    "connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)



def _public_model_info(recognizer: Any) -> dict[str, Any]:
    """What /v1/model tells clients: the recognizer's model info as JSON, its file by name only, the
    colour of each label and of the text on it (the page draws in the colours of images and videos)."""
    from emolens.pipeline.colors import colors_for, inks_for
    from emolens.serving.jobs import jsonable

    info = jsonable(dict(recognizer.model_info()))
    if isinstance(info.get("source"), str):
        # The file name identifies the model; the server's folders are nobody's business.
        info["source"] = Path(info["source"]).name
    info["colors"] = colors_for(info.get("labels", ()))
    info["inks"] = inks_for(info.get("labels", ()))
    return info


def create_app(
    recognizer: Any = None,
    *,
    limits: ServerLimits | None = None,
    allowed_hosts: Iterable[str] | None = None,
    allowed_origins: Iterable[str] = (),
    detector: Any = None,
    **limit_overrides: Any,
) -> Any:
    """The emolens HTTP app: JSON API under /v1, health at /healthz, the webcam page at /.

    `recognizer` needs `predict(image) -> ImageResult`, `predict_crops(images) -> list[FaceResult]`
    and `model_info() -> dict`, like `emolens.pipeline.EmotionRecognizer`; None loads the default
    model. `limits` (a `ServerLimits`, default its defaults), with any of its fields given by name
    (`create_app(rec, max_batch=8)`), bound the work. `allowed_hosts`
    (default: localhost, 127.0.0.1, ::1) are the Host names served; `allowed_origins` the other
    sites whose pages may call the API (its own page always may); see `emolens.serving.security`.
    Each worker thread searches faces with its own detector (`emolens.serving.workers`): by
    default a twin of the recognizer's; `detector` may name another (`create_detector` spec)
    or be a function returning a new FaceDetector.
    """
    from fastapi import FastAPI

    from emolens import __version__
    from emolens.serving.jobs import Runner
    from emolens.serving.pool import InferencePool
    from emolens.serving.security import LOCAL_HOSTS

    limits = ServerLimits.of(limits, **limit_overrides)
    if recognizer is None:
        from emolens.serving.server import serving_recognizer

        recognizer = serving_recognizer(limits=limits)
    model_info = _public_model_info(recognizer)
    pool = InferencePool(limits.workers, limits.max_queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool.start()
        yield
        pool.close()

    app = FastAPI(
        title="emolens",
        version=__version__,
        description="Recognise the emotions of the faces in images. The schema of every endpoint is at /openapi.json.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load their scripts from a CDN, which offline machines cannot reach
        redoc_url=None,
    )
    app.state.recognizer = recognizer
    app.state.runner = Runner(recognizer, limits, detector)
    app.state.streams = 0  # open /v1/stream connections, bounded by limits.max_streams
    app.state.model_info = model_info
    app.state.pool = pool
    app.state.limits = limits
    _assemble(app, limits, LOCAL_HOSTS if allowed_hosts is None else allowed_hosts, allowed_origins)
    return app


def _assemble(app: Any, limits: ServerLimits, allowed_hosts: Iterable[str], allowed_origins: Iterable[str]) -> None:
    """The app's guards, error handlers, API routes and page."""
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles

    from emolens.serving import routes, stream
    from emolens.serving.errors import install_handlers
    from emolens.serving.security import OriginGuardMiddleware, SecurityHeadersMiddleware

    # Outermost last: headers on every answer, then Host/Origin, then the body's size and time.
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_upload_bytes, read_timeout=limits.read_timeout)
    app.add_middleware(OriginGuardMiddleware, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins)
    app.add_middleware(SecurityHeadersMiddleware)
    install_handlers(app)
    app.include_router(routes.router)
    app.include_router(stream.router)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
