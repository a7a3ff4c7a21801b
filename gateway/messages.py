"""Request bodies as pydantic models, for FastAPI's OpenAPI document.

A client request (join, leave, publish, emit, ack, presence) is validated by one gate only,
``gateway.wire.requests.decode_request``, whatever carried it: the models below only
describe its body in the document (``tests/test_wire_requests.py`` checks that they
list the same fields). ``ServerPublish`` (``/api/publish``) is no client request and
is validated here.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.config import JsonDict

from gateway.wire.envelope import NAME_PATTERN, RESERVED_EVENTS, check_data, check_name
from gateway.wire.errors import ValidationFailed
from gateway.wire.requests import loads


class Schema(BaseModel):
    """A request body as the OpenAPI document describes it; not a validator (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Body(Schema):
    """A body that is not a client request (``/api/publish``, the demo's login): validated here."""

    @classmethod
    def parse(cls, raw: Any) -> Self:
        """From a decoded dict, or from raw JSON bytes; raises a ``GatewayError``."""
        if isinstance(raw, (bytes, bytearray, str)):
            raw = loads(raw)
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            errors = [
                {"field": ".".join(map(str, e["loc"])) or "body", "problem": e["msg"]}
                for e in exc.errors(include_url=False)
            ]
            raise ValidationFailed(
                "; ".join(f"{e['field']}: {e['problem']}" for e in errors), errors=errors
            ) from None


ClientEventId = Field(default=None, alias="clientEventId", min_length=1, max_length=128)
Volatile = Field(default=False, description="Not logged, no offset, not deduplicated; dropped for a "
                 "connection not ready for it (docs/protocol.md, Volatile events)")
# Documented in the schema; enforced by ``check_name`` (its message names the rule and the
# reserved names, and it full-matches: no trailing newline).
_NAME: JsonDict = {"pattern": NAME_PATTERN, "minLength": 1, "maxLength": 128}
Room = Field(json_schema_extra=_NAME)
_DATA: JsonDict = {"description": "Any JSON value: finite numbers, at most 32 levels deep; a binary anywhere "
                   'in it as {"_rtgw_binary": "<base64>"} (docs/protocol.md, Binary payloads)'}


def Data(alias: str | None = None) -> Any:
    return Field(default=None, alias=alias, json_schema_extra=_DATA)


class JoinRequest(Schema):
    room: str = Room


class LeaveRequest(JoinRequest):
    pass


class PublishRequest(Schema):
    room: str = Room
    event: str = Field("message", json_schema_extra=_NAME)
    data: Any = Data()
    client_event_id: str | None = ClientEventId
    include_self: bool = Field(default=False, alias="includeSelf")
    volatile: bool = Volatile


class EmitRequest(Schema):
    """An application event for the namespace's handler; its return value is the ack."""

    event: str = Field(json_schema_extra=_NAME)
    data: Any = Data()
    client_event_id: str | None = ClientEventId
    volatile: bool = Volatile


class PresenceRequest(Schema):
    """A room's members, a page at a time: ``cursor`` is the previous page's ``next``."""

    room: str = Room
    cursor: str | None = Field(default=None, json_schema_extra=_NAME)


class AckRequest(Schema):
    ack_id: str = Field(alias="ackId", min_length=1, max_length=64)
    result: Any = Data()


class ServerPublish(Body):
    """``POST /api/publish``: a room event from the application's backend."""

    namespace: str = Field("/", max_length=128)
    room: str | None = Field(None, json_schema_extra=_NAME)  # a room, a sid, or None for the whole namespace
    event: str = Field(json_schema_extra=_NAME)
    data: Any = Data()

    @field_validator("event")
    @classmethod
    def _event(cls, v: str) -> str:
        return check_name("event", v, reserved=RESERVED_EVENTS)

    @field_validator("room")
    @classmethod
    def _room(cls, v: str | None) -> str | None:
        return None if v is None else check_name("room", v)

    @field_validator("data")
    @classmethod
    def _data(cls, v: Any) -> Any:
        return check_data(v)
