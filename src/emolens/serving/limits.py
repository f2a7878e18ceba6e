"""The server's limits, in one place: defaults shared by `create_app`, `serve` and the CLI.

Every limit protects the one process that holds the model: a body larger than
`max_upload_bytes` is refused before it is read (413), an image whose header declares more
than `max_pixels` is refused before it is decoded (413), and at most `workers` inferences run
while at most `max_queue` more wait; anything beyond that is answered 503 at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from emolens.errors import ConfigError

MiB = 1024 * 1024


@dataclass(frozen=True)
class ServerLimits:
    max_upload_bytes: int = 16 * MiB  # a phone JPEG is 2-8 MB; larger is almost surely a mistake
    max_pixels: int = 50_000_000  # a 48 MP phone photo passes; decoding it takes ~150 MB of RGB
    workers: int = 2  # inference threads; the model is shared, so memory does not grow with this
    max_queue: int = 32  # requests waiting for a worker before new ones get 503
    max_batch: int = 64  # crops per /v1/predict/crops request

    def __post_init__(self) -> None:
        for name, low in (("max_upload_bytes", 1), ("max_pixels", 1), ("workers", 1), ("max_queue", 0), ("max_batch", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"server limit {name} must be an integer >= {low}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BodyLimitMiddleware:
    """Pure ASGI middleware: refuse HTTP bodies over `max_bytes` without buffering them.

    A declared Content-Length over the limit is answered 413 before a byte is read; a chunked
    body is counted as it arrives and stopped at the limit. WebSocket traffic passes through
    (its messages are checked one by one in the stream handler).
    """

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _send_json(send, 400, f"Content-Length {declared.decode(errors='replace')!r} is not a number")
                return
            if size > self.max_bytes:
                await _send_json(send, 413, too_large_message(size, self.max_bytes))
                return

        seen = 0

        async def counting_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    from fastapi import HTTPException

                    # Raised inside the endpoint's body read, so the app's handlers answer it as JSON.
                    raise HTTPException(413, too_large_message(seen, self.max_bytes, partial=True))
            return message

        await self.app(scope, counting_receive, send)


def too_large_message(size: int, limit: int, *, partial: bool = False) -> str:
    got = f"more than {size:,}" if partial else f"{size:,}"
    return f"upload is {got} bytes; this server accepts at most {limit:,} bytes per request (GET /healthz lists the limits)"


async def _send_json(send: Any, status: int, detail: str) -> None:
    import json
    from http import HTTPStatus

    # Same body shape as every other error (see serving/errors.py).
    data = json.dumps({"detail": detail, "error": HTTPStatus(status).phrase}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
