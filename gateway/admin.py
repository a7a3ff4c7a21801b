"""The operator view: a live page at ``/admin/ui`` over ``GET /admin/api/overview``.

Both need ``GATEWAY_ADMIN_TOKEN``: the page is served only when it is set (403 problem
otherwise) and asks for it; the JSON answers only ``Authorization: Bearer <token>``
(``gateway/bearer.py``: 403 ``forbidden`` when off, 401 ``unauthorized`` / ``invalid_token``).

While the view is on, each node takes a snapshot of its own figures every
``admin_snapshot_period`` (``gateway/overview.py``: read from its ``/metrics``
exposition) and keeps it in the broker for ``SNAPSHOT_LIFETIME`` periods; the overview
merges every node's that is still there (cluster-wide on Redis, this node on memory).
A snapshot costs one exposition, its parse and a pass over the node's rooms, once per
period: measured ~1 ms at 1,000 sessions and ~20 ms at 50,000 (half of it the session
count every ``/metrics`` scrape makes), on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse

from gateway import client_files
from gateway.bearer import BearerToken
from gateway.core.hub import Gateway
from gateway.overview import LiveSessions, NodeSnapshot, merge, take
from gateway.problems import documented
from gateway.wire.errors import GatewayError

log = logging.getLogger("gateway.admin")

PAGE = client_files.STATIC / "admin.html"
# A snapshot outlives two missed periods: a busy node is not taken for a dead one.
SNAPSHOT_LIFETIME = 3
# The page holds a credential: it runs only its own files, and never inside a frame.
PAGE_HEADERS = {
    **client_files.HEADERS,
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class OperatorView:
    """The view of one node: its snapshot publisher and its routes.

    The ``gateway_live_sessions`` and ``gateway_rooms`` gauges it reads are registered
    on the node's metrics whether the view is on or not: ``/metrics`` is the same either way.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.token = BearerToken(gateway.settings.admin_token, "GATEWAY_ADMIN_TOKEN", "the operator view")
        gateway.metrics.registry.register(LiveSessions(gateway))
        self._started_at = time.time()
        self._task: asyncio.Task[None] | None = None
        self._latest: NodeSnapshot | None = None  # this node's last snapshot

    def start(self) -> None:
        """Begin publishing snapshots (only while the view is on)."""
        if self.token.enabled and self._task is None:
            self._task = asyncio.create_task(self._publish_forever(), name="operator-view")

    async def stop(self) -> None:
        """Stop publishing; the last snapshot expires by itself."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})  # never raises: the caller's own cancellation stays its own

    async def _publish_forever(self) -> None:
        period = self.gateway.settings.admin_snapshot_period
        while True:
            self._latest = latest = take(self.gateway, self._started_at, self._latest)
            try:
                await self.gateway.broker.put_snapshot(latest.encode(), SNAPSHOT_LIFETIME * period)
            except GatewayError as exc:
                # The broker logged the cause and /readyz reports it; the next period tries again.
                log.debug("operator view: snapshot not kept: %s", exc)
            await asyncio.sleep(period)

    async def _authorize(self, request: Request) -> None:
        self.token.check(request)

    def router(self) -> APIRouter:
        api = APIRouter(tags=["operations"])

        @api.get("/admin/ui", include_in_schema=False)
        async def page() -> FileResponse:
            self.token.check_enabled()
            return FileResponse(PAGE, media_type="text/html", headers=PAGE_HEADERS)

        @api.get(
            "/admin/api/overview",
            summary="Every node's sessions, rooms, rates, drops and rejections (Bearer GATEWAY_ADMIN_TOKEN)",
            dependencies=[Depends(self._authorize)],
            responses={200: {"description": "The overview (README, Operator view)",
                             "content": {"application/json": {"schema": {"type": "object"}}}},
                       **documented(401, 403)},
        )
        async def overview() -> JSONResponse:
            try:
                others, partial = await self.gateway.broker.snapshots(), False
            except GatewayError:
                # Redis away: this node's own figures are what the operator most needs now.
                others, partial = [], True
            body = merge(others, self._latest)
            body["node"] = self.gateway.broker.node
            body["partial"] = partial  # true: the other nodes could not be read
            body["period"] = self.gateway.settings.admin_snapshot_period
            return JSONResponse(body, headers={"Cache-Control": "no-store"})

        return api
