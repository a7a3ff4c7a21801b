"""The gateway's errors: one tree, one stable wire ``code`` each.

::

    GatewayError                      500 internal_error
    ├── BadRequest                    400 bad_request
    │   ├── MalformedJSON             400 malformed_json
    │   ├── ValidationFailed          422 validation_error
    │   ├── BadLastEventId            400 bad_last_event_id
    │   └── OffsetFromFuture          400 offset_from_future
    ├── PayloadTooLarge               413 payload_too_large
    ├── UnsupportedMediaType          415 unsupported_media_type
    ├── Unauthorized                  401 unauthorized
    │   ├── InvalidToken              401 invalid_token
    │   ├── MalformedToken            401 malformed_token
    │   └── TokenExpired              401 token_expired
    ├── Forbidden                     403 forbidden
    │   ├── ForbiddenRoom             403 forbidden_room
    │   ├── ForbiddenOrigin           403 forbidden_origin
    │   └── NotJoined                 403 not_joined
    ├── TooManyRooms                  409 too_many_rooms
    ├── RateLimited                   429 rate_limited
    ├── NotFound                      404 not_found
    │   ├── UnknownNamespace          404 unknown_namespace
    │   ├── UnknownSession            404 unknown_sid
    │   ├── UnknownEvent              404 unknown_event
    │   └── UnknownAck                404 unknown_ack
    ├── SessionExpired                410 session_expired
    ├── AckAlreadyUsed                409 ack_already_used
    ├── SessionClosed                 409 session_closed
    ├── AckTimeout (also TimeoutError) 504 ack_timeout
    └── BrokerUnavailable             503 broker_unavailable

HTTP renders them as ``application/problem+json`` (RFC 9457) carrying ``code``;
Socket.IO puts the same ``{"code", "message"}`` in an error ack or ``connect_error``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    """Base of every error the gateway reports to a client."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, message: str | None = None, **detail: Any) -> None:
        self.message = message or self.title
        self.detail = detail
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_wire(self) -> dict[str, Any]:
        """The ``{"code", "message", ...}`` body both transports send."""
        return {"code": self.code, "message": self.message, **self.detail}

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """An RFC 9457 problem document."""
        body: dict[str, Any] = {
            "type": f"https://rtgateway.dev/errors/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.message,
            "code": self.code,
            **self.detail,
        }
        if instance:
            body["instance"] = instance
        return body


class BadRequest(GatewayError):
    code, status, title = "bad_request", 400, "Bad request"


class MalformedJSON(BadRequest):
    code, title = "malformed_json", "Malformed JSON"


class ValidationFailed(BadRequest):
    code, status, title = "validation_error", 422, "Invalid request"


class BadLastEventId(BadRequest):
    code, title = "bad_last_event_id", "Unreadable Last-Event-ID"


class OffsetFromFuture(BadRequest):
    code, title = "offset_from_future", "Offset beyond the end of the room's log"


class PayloadTooLarge(GatewayError):
    code, status, title = "payload_too_large", 413, "Payload too large"


class UnsupportedMediaType(GatewayError):
    code, status, title = "unsupported_media_type", 415, "Request bodies must be application/json"


class Unauthorized(GatewayError):
    code, status, title = "unauthorized", 401, "Authentication required"


class InvalidToken(Unauthorized):
    code, title = "invalid_token", "Invalid token"


class MalformedToken(Unauthorized):
    code, title = "malformed_token", "Malformed token"


class TokenExpired(Unauthorized):
    code, title = "token_expired", "Token expired"


class Forbidden(GatewayError):
    code, status, title = "forbidden", 403, "Forbidden"


class ForbiddenRoom(Forbidden):
    code, title = "forbidden_room", "Joining this room is not allowed"


class ForbiddenOrigin(Forbidden):
    code, title = "forbidden_origin", "This origin may not use the gateway"


class NotJoined(Forbidden):
    code, title = "not_joined", "Publishing to a room the session has not joined"


class TooManyRooms(GatewayError):
    code, status, title = "too_many_rooms", 409, "Too many rooms for one session"


class RateLimited(GatewayError):
    """Over one of the gateway's limits (``gateway/core/limits.py``): nothing was done. Try again
    after ``retryAfter`` seconds (HTTP also says it in ``Retry-After``, in whole seconds)."""

    code, status, title = "rate_limited", 429, "Too many requests"

    @property
    def retry_after(self) -> float:
        """Seconds to wait before trying again (the wire's ``retryAfter``; 1 if it is missing)."""
        value = self.detail.get("retryAfter")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < float("inf"):
            return float(value)
        return 1.0


class NotFound(GatewayError):
    code, status, title = "not_found", 404, "Not found"


class UnknownNamespace(NotFound):
    code, title = "unknown_namespace", "Unknown namespace"


class UnknownSession(NotFound):
    """No such session, or not this caller's: a wrong or missing key gets the same answer."""

    code, title = "unknown_sid", "Unknown session id"


class UnknownEvent(NotFound):
    code, title = "unknown_event", "No handler for this event"


class UnknownAck(NotFound):
    code, title = "unknown_ack", "Unknown ack id"


class SessionExpired(GatewayError):
    code, status, title = "session_expired", 410, "Session expired"


class AckAlreadyUsed(GatewayError):
    code, status, title = "ack_already_used", 409, "Ack id already used"


class SessionClosed(GatewayError):
    code, status, title = "session_closed", 409, "Session closed"


class AckTimeout(GatewayError, TimeoutError):
    code, status, title = "ack_timeout", 504, "The client did not acknowledge in time"


class BrokerUnavailable(GatewayError):
    code, status, title = "broker_unavailable", 503, "Broker unavailable"


def error_from_wire(body: dict[str, Any]) -> GatewayError:
    """Rebuild the typed error a peer reported (clients use this on problem bodies)."""
    code = body.get("code", "")
    for cls in _ALL:
        if cls.code == code:
            extra = {k: v for k, v in body.items() if k not in _PROBLEM_KEYS}
            return cls(body.get("message") or body.get("detail"), **extra)
    return GatewayError(body.get("message") or body.get("detail") or str(body))


_PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "message", "instance"}


def _subclasses(cls: type[GatewayError]) -> list[type[GatewayError]]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


_ALL = _subclasses(GatewayError)
