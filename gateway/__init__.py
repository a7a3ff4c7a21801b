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
    ForbiddenRoom,
    GatewayError,
    InvalidToken,
    MalformedJSON,
    MalformedToken,
    NotFound,
    NotJoined,
    OffsetFromFuture,
    PayloadTooLarge,
    SessionClosed,
    SessionExpired,
    Unauthorized,
    UnknownAck,
    UnknownEvent,
    UnknownNamespace,
    UnknownSession,
    ValidationFailed,
)
from .hub import Gateway
from .namespaces import Namespace
from .sessions import Session
from .settings import Settings

__all__ = [
    "AckAlreadyUsed", "AckTimeout", "BadLastEventId", "BadRequest", "BrokerUnavailable",
    "Envelope", "Forbidden", "ForbiddenRoom", "Gateway", "GatewayError", "InvalidToken",
    "MalformedJSON", "MalformedToken", "Namespace", "NotFound", "NotJoined", "OffsetFromFuture",
    "PayloadTooLarge", "Session", "SessionClosed", "SessionExpired", "Settings", "Unauthorized",
    "UnknownAck", "UnknownEvent", "UnknownNamespace", "UnknownSession", "ValidationFailed",
    "create_app",
]
