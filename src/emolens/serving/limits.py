"""The server's limits, in one place: defaults shared by `create_app`, `serve` and the CLI.

Every limit protects the one process that holds the model: a body larger than
`max_upload_bytes` is refused before it is read (413), an image whose header declares more
than `max_pixels` is refused before it is decoded (413), decoded pixels are reserved from one
process-wide budget, and at most `workers` inferences run while at most `max_queue` more wait;
anything beyond that is answered 503 at once. A request must arrive within `read_timeout`
seconds (headers, then body: 408 and closed beyond), and a WebSocket client that stops reading
its replies for that long is disconnected.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from emolens.errors import ConfigError

MiB = 1024 * 1024
log = logging.getLogger("emolens.serving")


@dataclass(frozen=True)
class ServerLimits:
    max_upload_bytes: int = 16 * MiB  # a phone JPEG is 2-8 MB; larger is almost surely a mistake
    max_pixels: int = 50_000_000  # per request: a 48 MP phone photo passes; decoding it takes ~150 MB of RGB
    workers: int = 2  # inference threads; the model is shared, so memory does not grow with this
    max_queue: int = 32  # requests waiting for a worker before new ones get 503
    max_batch: int = 64  # crops per /v1/predict/crops request
    max_crop_pixels: int = 2048 * 2048  # one face crop; bigger is a whole photo sent to the wrong endpoint
    pixel_budget: int = 100_000_000  # decoded pixels in flight in the whole process (~300 MB of RGB), all workers together
    max_side: int = 2048  # photos are downscaled to this longer side before detection (boxes mapped back)
    # Smallest face side searched, in pixels of the photo as detected. The search costs about
    # (photo side / this)^2, so with max_side it bounds each request's detection. CenterFace's
    # two passes find faces near this minimum less surely than one search (at 48, 316 against
    # 325 of the 353 WIDER FACE faces of 64 px and up, photos at 640 px), so it is 32, below the
    # faces wanted: 326 of the 353 and 561 against 525 of the 630 of 40 px and up, in 0.68x the
    # time of one search at 48 (`benchmarks/load.py --recall ... --detector ...`; docs/serving.md).
    min_face_size: int = 32
    read_timeout: float = 30.0  # seconds for a request's headers, and again for its body; slow senders get 408
    max_connections: int = 100  # open HTTP connections (uvicorn's limit_concurrency); 503 beyond
    max_streams: int = 16  # open /v1/stream WebSockets; refused (1013, try again later) beyond

    def __post_init__(self) -> None:
        lows = {"max_queue": 0, "min_face_size": 8}
        for f in fields(self):
            value, low = getattr(self, f.name), lows.get(f.name, 1)
            if f.type in ("float", float):  # seconds: any positive number
                if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                    raise ConfigError(f"server limit {f.name} must be a number of seconds > 0, got {value!r}")
            elif not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"server limit {f.name} must be an integer >= {low}, got {value!r}")
        if self.max_pixels > self.pixel_budget:
            raise ConfigError(
                f"server limit max_pixels ({self.max_pixels:,}) is over pixel_budget ({self.pixel_budget:,}): no request that "
                "big could ever be decoded; raise pixel_budget or lower max_pixels"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, limits: ServerLimits | None = None, **overrides: Any) -> ServerLimits:
        """`limits` (default: the defaults above) with some fields changed, e.g. `of(max_batch=8)`:
        how `create_app` and `serve` take their limits, so the defaults live here only."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            from difflib import get_close_matches

            hints = [f"{k!r} (did you mean {m[0]!r}?)" if (m := get_close_matches(k, known, n=1)) else repr(k) for k in unknown]
            raise ConfigError(f"unknown server limits {', '.join(hints)}; expected some of {', '.join(sorted(known))}")
        return replace(limits or cls(), **overrides)


class PixelsBusy(Exception):
    """The process-wide decoded-pixel budget stayed full for too long (answered 503 like Overloaded)."""

    retry_after = 2


class PixelBudget:
    """A process-wide count of decoded pixels: every decode reserves its pixels first.

    Workers bound how many requests decode at once, but not how big each is; the budget bounds
    the sum, so `workers` x `max_pixels` can never all be in memory together unless it fits.
    A reservation waits up to `wait_s` for others to finish, then gives up (503).
    """

    def __init__(self, total: int, wait_s: float = 10.0):
        self.total = total
        self.wait_s = wait_s
        self.used = 0
        self.peak = 0
        self._cond = threading.Condition()

    def reserve(self, pixels: int, what: str) -> _Reservation:
        from emolens.serving.uploads import ImageTooLarge

        if pixels > self.total:
            raise ImageTooLarge(f"{what}: {pixels:,} decoded pixels in one request; this server decodes at most {self.total:,} at once")
        with self._cond:
            if not self._cond.wait_for(lambda: self.used + pixels <= self.total, timeout=self.wait_s):
                raise PixelsBusy(
                    f"server busy: {self.used:,} of {self.total:,} pixels are being decoded by other requests and "
                    f"{what} needs {pixels:,}; retry in {PixelsBusy.retry_after} s"
                )
            self.used += pixels
            self.peak = max(self.peak, self.used)
        return _Reservation(self, pixels)

    def release(self, pixels: int) -> None:
        with self._cond:
            self.used -= pixels
            idle = self.used == 0
            self._cond.notify_all()
        if idle and pixels >= 1_000_000:
            _give_back_memory()


class _Reservation:
    def __init__(self, budget: PixelBudget, pixels: int):
        self.budget, self.pixels = budget, pixels

    def __enter__(self) -> _Reservation:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.budget.release(self.pixels)


def _give_back_memory() -> None:
    # Pillow and numpy free a big image in chunks under glibc's mmap threshold, which stay in the
    # heap afterwards: the process kept ~250 MB after eight 7000x7000 crops. malloc_trim returns them.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class BodyLimitMiddleware:
    """Pure ASGI middleware: refuse HTTP bodies over `max_bytes` or slower than `read_timeout`.

    A declared Content-Length over the limit is answered 413 before a byte is read; a chunked
    body is counted as it arrives and stopped at the limit. The whole body must arrive within
    `read_timeout` seconds of the request's headers, or the answer is 408 and the connection is
    closed (a client trickling a byte a second would otherwise hold it for ever). WebSocket
    traffic passes through (its messages are checked one by one in the stream handler).
    """

    def __init__(self, app: Any, max_bytes: int, read_timeout: float = ServerLimits.read_timeout):
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout

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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout
        done = False

        async def guarded_receive() -> dict:
            nonlocal seen, done
            from fastapi import HTTPException

            if done:  # body complete: later receives only wait for a disconnect, no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                log.info("%s: request body not complete after %g s (%s bytes received); answered 408", _client(scope), self.read_timeout, f"{seen:,}")
                # Raised inside the endpoint's body read, so the app's handlers answer it as JSON;
                # Connection: close, or the client could keep the socket by trickling more bytes.
                raise HTTPException(
                    408, f"request body not received within {self.read_timeout:g} s ({seen:,} bytes arrived); send it faster "
                    "or start the server with a larger --read-timeout", headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                done = not message.get("more_body", False)
                if seen > self.max_bytes:
                    raise HTTPException(413, too_large_message(seen, self.max_bytes, partial=True), headers={"Connection": "close"})
            elif message["type"] == "http.disconnect" and not done:
                log.info("%s: client disconnected after %s bytes of the body of %s %s", _client(scope), f"{seen:,}", scope["method"], scope["path"])
            return message

        await self.app(scope, guarded_receive, send)


def _client(scope: dict) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "client"


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
