"""A running proxy: listening socket, upstream client session, counters and control endpoints.

``GET /__proxy/stats`` and ``POST /__proxy/reset`` are answered by the proxy itself and
never forwarded or counted; every other path goes to the upstream.
"""

from __future__ import annotations

from types import TracebackType
from typing import Final

import aiohttp
from aiohttp import web

from .classify import TransportClass
from .connections import TrackingServer
from .profiles import Profile
from .relay import Forwarder
from .stats import RESET_PATH, STATS_PATH, CutReason, Stats

CONTROL_PREFIX: Final = "/__proxy/"
# Upstream connections: no pool limit (aiohttp's default of 100 would queue the 101st SSE
# stream), no cookie jar (one client's cookies must not leak into another's requests), bodies
# passed as-is (no decompression), no read timeout (long-polls and streams are meant to wait).
UPSTREAM_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=10)
# Long-lived streams would hold a graceful stop for aiohttp's default 60 s.
SHUTDOWN_TIMEOUT: Final = 1.0


class Proxy:
    """``async with Proxy(profile, "http://127.0.0.1:8000") as proxy: ... proxy.url``."""

    def __init__(self, profile: Profile, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.profile = profile
        self.upstream = upstream
        self.host = host
        self.port = port
        self.stats = Stats(profile.name)
        self._session: aiohttp.ClientSession | None = None
        self._server: TrackingServer | None = None
        self._runner: web.ServerRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
            timeout=UPSTREAM_TIMEOUT,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        )
        forwarder = Forwarder(self.upstream, self._session, self.profile, self.stats)
        server: TrackingServer

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            if request.path.startswith(CONTROL_PREFIX):
                return self._control(request)
            return await forwarder.handle(request, server.activity(request))

        server = self._server = TrackingServer(
            handle, cutoffs=self.profile.cutoffs(), on_cut=self._count_cut,
            handler_cancellation=True, access_log=None,
        )
        self._runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> Proxy:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _count_cut(self, transport_class: TransportClass, reason: CutReason) -> None:
        self.stats[transport_class].count_cut(reason)

    def _control(self, request: web.BaseRequest) -> web.Response:
        if request.path == STATS_PATH and request.method == "GET":
            connections = self._server.open_connections if self._server is not None else 0
            return web.json_response(self.stats.to_json(connections))
        if request.path == RESET_PATH and request.method == "POST":
            self.stats.reset()
            return web.json_response({"ok": True})
        return web.json_response(
            {"error": f"the proxy answers GET {STATS_PATH} and POST {RESET_PATH}"}, status=404
        )

