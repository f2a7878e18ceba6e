"""Which status each error gets: one table shared by the HTTP handlers and the WebSocket stream.

The body is always `{"detail": <message>, "error": <kind>}`; an `EmolensError`'s message is
passed through unchanged, so the API says exactly what the CLI would print.
"""

from __future__ import annotations

from http import HTTPStatus

from emolens.errors import ConfigError, DataError, EmolensError, ModelError
from emolens.serving.limits import PixelsBusy
from emolens.serving.pool import Overloaded
from emolens.serving.uploads import ImageTooLarge, UnsupportedMediaType

# Most specific first: ImageTooLarge is a DataError.
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (ImageTooLarge, 413),
    (DataError, 422),
    (ConfigError, 400),
    (ModelError, 500),  # the server's model is at fault, not the request
    (EmolensError, 422),
    (UnsupportedMediaType, 415),
    (Overloaded, 503),
    (PixelsBusy, 503),  # the decoded-pixel budget stayed full
)


def describe(exc: BaseException) -> tuple[int, dict[str, str], dict[str, str]]:
    """(status, body, headers) for an error we expect; raises nothing, guesses nothing."""
    from starlette.exceptions import HTTPException

    if isinstance(exc, HTTPException):
        return exc.status_code, {"detail": str(exc.detail), "error": HTTPStatus(exc.status_code).phrase}, dict(exc.headers or {})
    for cls, status in STATUS:
        if isinstance(exc, cls):
            headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Overloaded | PixelsBusy) else {}
            return status, {"detail": str(exc), "error": type(exc).__name__}, headers
    return 500, {"detail": "internal server error", "error": type(exc).__name__}, {}


def install_handlers(app) -> None:
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    async def handle(request, exc: Exception) -> JSONResponse:
        status, body, headers = describe(exc)
        return JSONResponse(body, status_code=status, headers=headers)

    async def gone(request, exc: Exception) -> Response:
        # The client left mid-upload: nobody reads an answer, and BodyLimitMiddleware has logged
        # one line; without this handler every such client costs a 30-line traceback.
        return Response(status_code=400, headers={"Connection": "close"})

    for cls in (EmolensError, UnsupportedMediaType, Overloaded, PixelsBusy, HTTPException):
        app.add_exception_handler(cls, handle)
    app.add_exception_handler(ClientDisconnect, gone)
