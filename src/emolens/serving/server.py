"""`serve`: load the model once and run the app with uvicorn (what `emolens serve` calls)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from emolens.errors import ConfigError
from emolens.serving.limits import ServerLimits

log = logging.getLogger("emolens.serving")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    model: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    allow_hosts: Iterable[str] = (),
    allow_origins: Iterable[str] = (),
    detector: str | None = None,
    backend: str | None = None,
    log_level: str = "info",
    **limits: Any,
) -> None:
    """Serve `model` (a .safetensors file, a run folder, or None for the default) until Ctrl-C.

    One process, one model in memory, `workers` inference threads, each with its own face
    detector; `limits` are fields of `ServerLimits` by name (workers, max_queue, read_timeout,
    ...). detector and backend default to `PIPELINE.detector` and `PIPELINE.server_backend`. CPU threads are decided
    once here, by `emolens.runtime.devices.configure_threads(workers=...)`. Binding anything other than
    a loopback address exposes an unauthenticated API to the network, so it is logged loudly.
    The server answers to the loopback names and `host`, plus `allow_hosts`; pages from other
    sites than its own may call it only when listed in `allow_origins`.
    """
    import uvicorn

    from emolens.runtime.devices import configure_threads
    from emolens.serving.app import create_app

    if not 0 < port < 65536:
        raise ConfigError(f"port must be in 1..65535, got {port}")
    from emolens.serving.security import default_hosts

    bounds = ServerLimits.of(**limits)  # fail before loading the model
    configure_threads(workers=bounds.workers)  # before any model or session exists
    recognizer = serving_recognizer(model, detector, backend, bounds)
    hosts = (*default_hosts(host), *allow_hosts)
    app = create_app(recognizer, limits=bounds, allowed_hosts=hosts, allowed_origins=tuple(allow_origins))
    if not is_loopback(host):
        log.warning("emolens serve: listening on %s, reachable from other machines; the API has no authentication", host)
    uvicorn.run(app, host=host, port=port, log_level=log_level, **uvicorn_options(bounds))


def serving_recognizer(model: Any = None, detector: str | None = None, backend: str | None = None, limits: ServerLimits | None = None) -> Any:
    """The recognizer `serve` (and `create_app` without one) runs: the pipeline's defaults, with
    the server's smallest face (`ServerLimits.min_face_size`), which every worker's own
    detector copies."""
    from emolens.pipeline import EmotionRecognizer
    from emolens.pipeline.defaults import PIPELINE

    limits = limits or ServerLimits()
    return EmotionRecognizer(
        model=model, detector=detector or PIPELINE.detector, backend=backend or PIPELINE.server_backend,
        min_face_size=limits.min_face_size,
    )


def uvicorn_options(limits: ServerLimits) -> dict[str, Any]:
    """uvicorn settings that enforce `limits` at the socket: what `serve` runs with (tests too).

    - `limit_concurrency`: at most `max_connections` open connections; beyond, uvicorn answers 503.
    - the HTTP protocol closes a connection whose request headers have not all arrived within
      `read_timeout` (uvicorn itself waits for ever; the body's deadline is BodyLimitMiddleware's).
    - WebSocket messages: at most `max_upload_bytes` (plus a margin, so the handler can answer a
      slightly larger frame 413 politely; uvicorn closes the connection on anything bigger), one
      message buffered per connection, no per-message compression (JPEG does not compress, and
      a compressed frame could inflate to the limit from a few bytes).
    """
    from uvicorn.config import WS_PROTOCOLS

    # The sans-I/O implementation stops reading the socket after each message until the handler
    # asks for the next, so one connection buffers one frame; the older one queues ws_max_queue.
    ws = "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "websockets"
    return {
        "http": guarded_http_protocol(limits.read_timeout),
        "ws": ws,
        "ws_max_size": limits.max_upload_bytes + 65536,
        "ws_max_queue": 1,
        "ws_per_message_deflate": False,
        "limit_concurrency": limits.max_connections,
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 5,
    }


def guarded_http_protocol(header_timeout: float) -> type:
    """uvicorn's h11 protocol, closing connections whose request headers trickle in too slowly.

    uvicorn's keep-alive timer only runs while a connection is silent, and every byte resets
    it, so a client sending one header byte a second held its connection for hours (50 such
    clients were all still connected after 40 s). Here a timer starts when the connection
    opens and after each response, and the connection is closed unless a whole request head
    has arrived when it fires.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _head_timer: Any = None

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(header_timeout, self._head_late)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_late(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                client = f"{self.client[0]}:{self.client[1]}" if self.client else "client"
                log.info("%s: request headers not complete after %g s; connection closed", client, header_timeout)
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # a request head arrived (or the connection failed)
                self._disarm()

        def on_response_complete(self) -> None:
            if not self.transport.is_closing():
                self._arm()  # before super(): it may parse a pipelined request, which disarms
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol
