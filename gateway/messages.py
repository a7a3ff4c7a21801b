"""Client->server requests, validated the same way whichever transport carried them."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.wire.envelope import NAME_PATTERN, RESERVED_EVENTS, check_data, check_name
from gateway.wire.errors import MalformedJSON, ValidationFailed


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @classmethod
    def parse(cls, raw: Any):  # -> Self
        """From a decoded dict, or from raw JSON bytes; raises a ``GatewayError``."""
        if isinstance(raw, (bytes, bytearray, str)):
            raw = _loads(raw)
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


# 19 digits in a row may be an integer beyond 64 bits, which orjson would silently read
# as a float: such a body is read by the stdlib, which keeps it an int for check_data
# to refuse, as the Socket.IO side (the stdlib's JSON too) does.
_LONG_NUMBER = re.compile(rb"[0-9]{19}")


def _loads(raw: bytes | bytearray | str) -> Any:
    body = raw.encode() if isinstance(raw, str) else bytes(raw)
    try:
        if _LONG_NUMBER.search(body) is None:
            return orjson.loads(body)
        return json.loads(body)
    except (orjson.JSONDecodeError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedJSON(f"body is not valid JSON: {exc}") from None


ClientEventId = Field(default=None, alias="clientEventId", min_length=1, max_length=128)
# Documented in the schema; enforced by ``check_name`` (its message names the rule and the
# reserved names, and it full-matches: no trailing newline).
_NAME = {"pattern": NAME_PATTERN, "minLength": 1, "maxLength": 128}
Room = Field(json_schema_extra=_NAME)
_DATA = {"description": "Any JSON value: finite numbers, at most 32 levels deep"}


def Data(alias: str | None = None) -> Any:
    return Field(default=None, alias=alias, json_schema_extra=_DATA)


class JoinRequest(Request):
    room: str = Room

    @field_validator("room")
    @classmethod
    def _room(cls, v: str) -> str:
        return check_name("room", v)


class LeaveRequest(JoinRequest):
    pass


class PublishRequest(Request):
    room: str = Room
    event: str = Field("message", json_schema_extra=_NAME)
    data: Any = Data()
    client_event_id: str | None = ClientEventId
    include_self: bool = Field(default=False, alias="includeSelf")

    @field_validator("room")
    @classmethod
    def _room(cls, v: str) -> str:
        return check_name("room", v)

    @field_validator("event")
    @classmethod
    def _event(cls, v: str) -> str:
        return check_name("event", v, reserved=RESERVED_EVENTS)

    @field_validator("data")
    @classmethod
    def _data(cls, v: Any) -> Any:
        return check_data(v)


class EmitRequest(Request):
    """An application event for the namespace's handler; its return value is the ack."""

    event: str = Field(json_schema_extra=_NAME)
    data: Any = Data()
    client_event_id: str | None = ClientEventId

    @field_validator("data")
    @classmethod
    def _data(cls, v: Any) -> Any:
        return check_data(v)

    @field_validator("event")
    @classmethod
    def _event(cls, v: str) -> str:
        return check_name("event", v, reserved=RESERVED_EVENTS)


class AckRequest(Request):
    ack_id: str = Field(alias="ackId", min_length=1, max_length=64)
    result: Any = Data()

    @field_validator("result")
    @classmethod
    def _result(cls, v: Any) -> Any:
        return check_data(v, "result")


class ServerPublish(Request):
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
