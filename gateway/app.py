"""Assemble a gateway into one ASGI application: FastAPI routes, SSE + POST, Socket.IO."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.types import ASGIApp

from gateway import client_files
from gateway.admin import OperatorView
from gateway.bearer import BearerToken
from gateway.core.hub import Gateway
from gateway.fences.exit_signals import exit_signals_heard
from gateway.logs import configure, redact_access_log
from gateway.messages import ServerPublish
from gateway.origins import OriginGuard
from gateway.problems import MEDIA_TYPE as PROBLEM
from gateway.problems import documented, plain_optional_parameters
from gateway.settings import Settings
from gateway.transports import sse, sse_multiplex
from gateway.transports.socketio_multiplex import PollMultiplexer
from gateway.transports.socketio_server import SocketIOTransport
from gateway.wire.errors import (
    BrokerUnavailable,
    GatewayError,
    RateLimited,
    ValidationFailed,
)


def problem(exc: GatewayError, request: Request) -> JSONResponse:
    response = JSONResponse(exc.to_problem(request.url.path), status_code=exc.status, media_type=PROBLEM)
    if isinstance(exc, RateLimited):
        # Whole seconds (RFC 9110), rounded up; the body's retryAfter has the milliseconds.
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return response


class GatewayApp(sse.EventStreamHost):
    """What ``create_app`` returns: an ASGI app, with its FastAPI app and its hub.

    The event-stream host is the outermost layer, so this is one: a stream then runs under
    uvicorn's frames only, not also under the origin check's and Socket.IO's, whose
    suspended frames it would hold for its whole life (~0.9 KB per idle stream, measured).
    """

    def __init__(self, app: ASGIApp, fastapi: FastAPI, gateway: Gateway) -> None:
        super().__init__(
            OriginGuard(app, gateway.settings.cors_origins, lambda code: gateway.metrics.rejected.labels(code).inc())
        )
        self.fastapi = fastapi
        self.gateway = gateway


def create_app(
    settings: Settings | None = None,
    declare: Callable[[Gateway], None] | None = None,
    *,
    demo: bool = False,
) -> GatewayApp:
    """Build the gateway's ASGI app. ``declare`` adds the application's namespaces;
    ``demo=True`` adds the built-in demo chat and its page at ``/`` (``gateway.main:app``).

    Socket.IO answers ``/socket.io/``, FastAPI (``.fastapi``) everything else, lifespan
    included. The garbage collector is left as it is (``python -m gateway`` tunes it);
    while the lifespan runs, an exit-signal handler is chained in front of the server's
    (``fences/exit_signals.py``).
    """
    settings = settings or Settings()
    configure(settings.log_level, settings.log_json)
    redact_access_log()
    gateway = Gateway(settings)
    if demo:
        from gateway import demo as demo_app

        demo_app.install(gateway)
    if declare is not None:
        declare(gateway)
    operator_view = OperatorView(gateway)  # /admin/ui, with GATEWAY_ADMIN_TOKEN

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        operator_view.start()
        shutdown = anyio.Event()

        async def stop_when_told() -> None:
            await shutdown.wait()
            await operator_view.stop()
            multiplexed.stop()  # carriers are no session's: the hub's stop does not reach them
            await gateway.stop()

        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_when_told)
            # uvicorn runs the lifespan shutdown only after every connection has closed,
            # which long-lived streams never do by themselves: on the server's exit
            # signal they are told to reconnect elsewhere, and end.
            with exit_signals_heard(shutdown.set):
                try:
                    yield
                finally:
                    shutdown.set()
        await socketio_transport.close()

    api = FastAPI(
        title="rtgateway",
        version="0.1.0",
        summary="Socket.IO and SSE + POST over one core. Wire format: docs/protocol.md",
        lifespan=lifespan,
    )
    api.state.gateway = gateway
    openapi = api.openapi

    def plain_openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = plain_optional_parameters(openapi())
        return api.openapi_schema

    api.openapi = plain_openapi  # type: ignore[method-assign]
    # Who may call at all is OriginGuard's decision (below); this adds the CORS headers
    # the allowed ones need. Never credentials: the gateway uses no cookies.
    api.add_middleware(
        CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Last-Event-ID", sse.KEY_HEADER, sse_multiplex.CARRIER_KEY_HEADER],
        expose_headers=["Retry-After"], allow_credentials=False,
    )

    @api.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        gateway.metrics.rejected.labels(exc.code).inc()
        return problem(exc, request)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": ".".join(map(str, e["loc"])), "problem": e["msg"]} for e in exc.errors()]
        return problem(ValidationFailed("; ".join(f"{e['field']}: {e['problem']}" for e in errors), errors=errors), request)

    @api.get("/healthz", tags=["operations"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", tags=["operations"], summary="The gateway can log and fan out events",
             responses=documented(503))
    async def readyz(request: Request) -> JSONResponse:
        if gateway.ready:
            return JSONResponse({"status": "ready", "broker": gateway.settings.broker.split("://")[0]})
        return problem(BrokerUnavailable("the broker is not reachable"), request)

    @api.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Exposition format 0.0.4"}})
    async def metrics() -> Response:
        return Response(gateway.metrics_text(), media_type="text/plain; version=0.0.4")

    @api.post(
        "/api/publish",
        tags=["server API"],
        summary="Publish a room event from the application's backend (Bearer GATEWAY_API_TOKEN)",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": ServerPublish.model_json_schema()}}}},
        responses=documented(400, 401, 403, 404, 413, 415, 422, 429, 503),
    )
    async def server_publish(request: Request) -> JSONResponse:
        api_token.check(request)
        sse.require_json(request)
        body = ServerPublish.parse(await request.body())
        offset = await gateway.emit(body.namespace, body.event, body.data, to=body.room)
        return JSONResponse({"ok": True, "result": {"room": body.room or "*", "offset": offset}})

    api.include_router(sse.router(gateway))
    multiplexed = sse_multiplex.MultiplexTransport(gateway)  # the tabs of a browser on one stream
    api.include_router(multiplexed.router())
    api.include_router(operator_view.router())
    if demo:
        api.include_router(demo_app.router(gateway))

    # The JavaScript client (gateway/static, socket.io-client from node_modules).
    @api.get("/client/{name}", tags=["browser"], summary="rtgateway.js, the demo page's files, socket.io-client",
             response_class=FileResponse, responses={
                 200: {"content": {m: {"schema": {"type": "string"}} for m in ("text/javascript", "text/css", "text/html", "application/json")},
                       "description": "The file"},
                 **documented(404, 422)})
    async def client_file(name: str) -> FileResponse:
        path, media_type = client_files.client_file(name)
        return FileResponse(path, media_type=media_type, headers=client_files.HEADERS)

    api_token = BearerToken(settings.api_token, "GATEWAY_API_TOKEN", "the server API")
    socketio_transport = SocketIOTransport(gateway)
    api.include_router(PollMultiplexer(gateway, socketio_transport).router())  # the tabs' one long-poll
    return GatewayApp(socketio_transport.asgi_app(api), api, gateway)
