"""Which browser origins may use the gateway: one check, for both transports, HTTP and WebSocket.

A browser names the page that makes a request in ``Origin``. The gateway's own origin
(the request's ``Host``) is always allowed, others only when listed in
``GATEWAY_CORS_ORIGINS``; anything else is refused before routing: HTTP with a 403
``forbidden_origin`` problem, a WebSocket upgrade with 403. Clients that are not
browsers send no ``Origin`` and are not concerned (they are not a CSRF vector).
CORS response headers stay the job of the two transports (Starlette's CORS middleware,
python-socketio); this layer decides who gets an answer at all.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.wire.errors import ForbiddenOrigin


class OriginGuard:
    """ASGI middleware refusing requests from origins that are neither ours nor allowed."""

    def __init__(self, app: ASGIApp, allowed: list[str], on_refused: Callable[[str], None]) -> None:
        self.app = app
        self.any = "*" in allowed
        self.allowed = frozenset(origin.lower() for origin in allowed)
        self.on_refused = on_refused

    def permits(self, origin: str, host: str | None) -> bool:
        origin = origin.lower()
        if self.any or origin in self.allowed:
            return True
        parts = urlsplit(origin)
        # Same origin: the page came from this host (scheme aside: a TLS-terminating
        # proxy in front makes the scheme we see differ from the browser's).
        return host is not None and parts.scheme in ("http", "https") and parts.netloc == host.lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.any:
            return await self.app(scope, receive, send)
        origin = host = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
        if origin is None or self.permits(origin, host):
            return await self.app(scope, receive, send)
        error = ForbiddenOrigin(
            f"origin {origin!r} is not allowed; list it in GATEWAY_CORS_ORIGINS", origin=origin
        )
        self.on_refused(error.code)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
            return
        body = orjson.dumps(error.to_problem(scope.get("path")))
        await send({
            "type": "http.response.start", "status": error.status,
            "headers": [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())],
        })
        await send({"type": "http.response.body", "body": body})
