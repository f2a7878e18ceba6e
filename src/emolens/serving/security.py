"""Who may talk to the server: the Host names it answers to, the Origins it accepts, and the
headers that keep its pages out of other sites' frames.

A server on 127.0.0.1 is still reachable from any web page the user opens: the page can post
forms to it, open WebSockets to it, or (DNS rebinding) point its own domain at 127.0.0.1 and
read the answers. So every request (HTTP and the WebSocket handshake) is checked:

- `Host` must name this server: by default `localhost`, `127.0.0.1`, `::1` and the bound
  address; `--allow-host` adds names (`*` any, `*.example.org` a domain). Else 400.
- `Origin`, when a browser sends one, must be this server itself (same scheme, host and port as
  the request) or listed with `--allow-origin` (`*` any). Else 403, or a refused handshake.
  Requests without an Origin (curl, scripts) pass: they are not a page acting for the user.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("emolens.serving")

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
FRAME_CSP = (b"content-security-policy", b"frame-ancestors 'none'")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def default_hosts(bound: str | None = None) -> tuple[str, ...]:
    """The loopback names, plus the address the server is bound to when it is a specific one."""
    extra = () if bound in (None, "", "0.0.0.0", "::") else (bound.strip("[]").lower(),)
    return tuple(dict.fromkeys((*LOCAL_HOSTS, *extra)))


def split_host(value: str) -> tuple[str, int | None]:
    """'Host' header -> (lower-case name, port or None); '[::1]:8000' -> ('::1', 8000)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:
        name, port = value, ""
    return name, int(port) if port.isdigit() else None


def host_allowed(name: str, allowed: Iterable[str]) -> bool:
    for pattern in allowed:
        if pattern == "*" or name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


def _origin_key(scheme: str, name: str, port: int | None) -> tuple[str, str, int | None]:
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return scheme, name, port if port is not None else _DEFAULT_PORTS.get(scheme)


class OriginGuardMiddleware:
    """Pure ASGI middleware: refuse foreign Host headers (400) and cross-site Origins (403)."""

    def __init__(self, app: Any, allowed_hosts: Iterable[str] = LOCAL_HOSTS, allowed_origins: Iterable[str] = ()):
        self.app = app
        self.allowed_hosts = tuple(h.strip("[]").lower() for h in allowed_hosts)
        self.allowed_origins = tuple(o.rstrip("/").lower() for o in allowed_origins)

    def check(self, scope: dict) -> tuple[int, str] | None:
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        name, port = split_host(host)
        if not host_allowed(name, self.allowed_hosts):
            return 400, (
                f"Host {host!r} is not a name of this server (allowed: {', '.join(self.allowed_hosts)}); "
                "start it with --allow-host NAME to answer to another name"
            )
        origin = headers.get(b"origin")
        if origin is None:
            return None
        text = origin.decode("latin-1").strip().rstrip("/").lower()
        if "*" in self.allowed_origins or text in self.allowed_origins:
            return None
        parts = urlsplit(text)
        try:
            theirs = _origin_key(parts.scheme, parts.hostname or "", parts.port)
        except ValueError:  # a port that is not a number
            theirs = None
        if theirs == _origin_key(scope.get("scheme", "http"), name, port):
            return None
        return 403, (
            f"requests from the page at {text!r} are refused: only this server's own page may call it; "
            "start it with --allow-origin ORIGIN to let another site in"
        )

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.check(scope)
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, detail = refused
        log.info("%s %s refused (%d): %s", scope["type"], scope.get("path"), status, detail)
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            # Closing before accepting refuses the handshake: uvicorn answers it 403.
            await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
            return
        await _send_json(send, status, detail)


class SecurityHeadersMiddleware:
    """Add nosniff, frame denial and a frame-ancestors CSP (unless the response has its own CSP)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                if FRAME_CSP[0] not in names:
                    headers.append(FRAME_CSP)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _send_json(send: Any, status: int, detail: str) -> None:
    import json
    from http import HTTPStatus

    data = json.dumps({"detail": detail, "error": HTTPStatus(status).phrase}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), (b"connection", b"close"),
               *SECURITY_HEADERS, FRAME_CSP]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
