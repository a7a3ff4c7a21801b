"""rtgateway: one real-time core, served over Socket.IO and SSE + POST.

The package at a glance:

- ``gateway.wire``        the wire format (envelope, names, offsets and cursors, frames and
                          requests, the error tree); no server library inside, shared with ``rtclient``;
- ``gateway.core``        the transport-neutral core (hub, sessions, namespaces, rooms, acks,
                          the delivery log, limits);
- ``gateway.brokers``     how nodes share rooms, logs and sessions (memory, Redis);
- ``gateway.transports``  thin adapters from wire packets to core calls (SSE + POST, Socket.IO);
- ``gateway.app``         the FastAPI application that mounts them (``gateway.main:app``).

Names below are imported on first use, so ``import gateway.wire`` (what the clients do)
loads no server library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "AckAlreadyUsed": "gateway.wire.errors",
    "AckTimeout": "gateway.wire.errors",
    "BadLastEventId": "gateway.wire.errors",
    "BadRequest": "gateway.wire.errors",
    "BrokerUnavailable": "gateway.wire.errors",
    "Envelope": "gateway.wire.envelope",
    "Forbidden": "gateway.wire.errors",
    "ForbiddenOrigin": "gateway.wire.errors",
    "ForbiddenRoom": "gateway.wire.errors",
    "Gateway": "gateway.core.hub",
    "GatewayError": "gateway.wire.errors",
    "InvalidToken": "gateway.wire.errors",
    "JwtAuth": "gateway.core.jwt_auth",
    "MalformedJSON": "gateway.wire.errors",
    "MalformedToken": "gateway.wire.errors",
    "Namespace": "gateway.core.namespaces",
    "NotFound": "gateway.wire.errors",
    "NotJoined": "gateway.wire.errors",
    "OffsetFromFuture": "gateway.wire.errors",
    "PayloadTooLarge": "gateway.wire.errors",
    "RateLimited": "gateway.wire.errors",
    "Session": "gateway.core.sessions",
    "SessionClosed": "gateway.wire.errors",
    "SessionExpired": "gateway.wire.errors",
    "Settings": "gateway.settings",
    "TokenExpired": "gateway.wire.errors",
    "TooManyRooms": "gateway.wire.errors",
    "Unauthorized": "gateway.wire.errors",
    "UnknownAck": "gateway.wire.errors",
    "UnknownEvent": "gateway.wire.errors",
    "UnknownNamespace": "gateway.wire.errors",
    "UnknownSession": "gateway.wire.errors",
    "UnsupportedMediaType": "gateway.wire.errors",
    "ValidationFailed": "gateway.wire.errors",
    "create_app": "gateway.app",
}

__all__ = [
    "AckAlreadyUsed",
    "AckTimeout",
    "BadLastEventId",
    "BadRequest",
    "BrokerUnavailable",
    "Envelope",
    "Forbidden",
    "ForbiddenOrigin",
    "ForbiddenRoom",
    "Gateway",
    "GatewayError",
    "InvalidToken",
    "JwtAuth",
    "MalformedJSON",
    "MalformedToken",
    "Namespace",
    "NotFound",
    "NotJoined",
    "OffsetFromFuture",
    "PayloadTooLarge",
    "RateLimited",
    "Session",
    "SessionClosed",
    "SessionExpired",
    "Settings",
    "TokenExpired",
    "TooManyRooms",
    "Unauthorized",
    "UnknownAck",
    "UnknownEvent",
    "UnknownNamespace",
    "UnknownSession",
    "UnsupportedMediaType",
    "ValidationFailed",
    "create_app",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


if TYPE_CHECKING:
    from gateway.app import create_app
    from gateway.core.hub import Gateway
    from gateway.core.jwt_auth import JwtAuth
    from gateway.core.namespaces import Namespace
    from gateway.core.sessions import Session
    from gateway.settings import Settings
    from gateway.wire.envelope import Envelope
    from gateway.wire.errors import (
        AckAlreadyUsed,
        AckTimeout,
        BadLastEventId,
        BadRequest,
        BrokerUnavailable,
        Forbidden,
        ForbiddenOrigin,
        ForbiddenRoom,
        GatewayError,
        InvalidToken,
        MalformedJSON,
        MalformedToken,
        NotFound,
        NotJoined,
        OffsetFromFuture,
        PayloadTooLarge,
        RateLimited,
        SessionClosed,
        SessionExpired,
        TokenExpired,
        TooManyRooms,
        Unauthorized,
        UnknownAck,
        UnknownEvent,
        UnknownNamespace,
        UnknownSession,
        UnsupportedMediaType,
        ValidationFailed,
    )
