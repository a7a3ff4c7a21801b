"""rtgateway: one real-time core, served over Socket.IO and SSE + POST."""

from __future__ import annotations

from .app import create_app
from .envelope import Envelope
from .errors import (
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
from .hub import Gateway
from .jwt_auth import JwtAuth
from .namespaces import Namespace
from .sessions import Session
from .settings import Settings

__all__ = [
    "AckAlreadyUsed", "AckTimeout", "BadLastEventId", "BadRequest", "BrokerUnavailable",
    "Envelope", "Forbidden", "ForbiddenOrigin", "ForbiddenRoom", "Gateway", "GatewayError",
    "InvalidToken", "JwtAuth", "MalformedJSON", "MalformedToken", "Namespace", "NotFound",
    "NotJoined", "OffsetFromFuture", "PayloadTooLarge", "RateLimited", "Session", "SessionClosed",
    "SessionExpired", "Settings", "TokenExpired", "TooManyRooms", "Unauthorized", "UnknownAck",
    "UnknownEvent", "UnknownNamespace", "UnknownSession", "UnsupportedMediaType",
    "ValidationFailed", "create_app",
]
