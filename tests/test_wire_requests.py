"""``gateway.wire.requests``: the one gate of client requests, and the OpenAPI document that describes it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import orjson
import pytest

from gateway.app import create_app
from gateway.settings import Settings
from gateway.transports.sse import ROUTES
from gateway.wire.errors import MalformedJSON, UnknownEvent, ValidationFailed
from gateway.wire.requests import (
    REQUESTS,
    Ack,
    Close,
    Emit,
    Join,
    Leave,
    Presence,
    Publish,
    Request,
    decode_request,
    wire_fields,
)

EXAMPLES: list[Request] = [
    Join("lobby"), Leave("lobby"), Publish("lobby"),
    Publish("r", "typing", {"a": [1, 2.5, None, True]}, "c-1", True),
    Emit("echo", [1]), Emit("sum", None, "x" * 128), Ack("7", {"ok": 1}), Ack("7"), Close(),
    Publish("r", volatile=True), Emit("tick", 1, volatile=True), Presence("lobby"), Presence("lobby", "abc"),
]


@pytest.mark.parametrize("request_", EXAMPLES, ids=repr)
def test_encode_then_decode_is_the_same_request(request_: Request) -> None:
    assert decode_request(request_.OP, request_.encode()) == request_
    assert decode_request(request_.OP, orjson.dumps(request_.encode())) == request_


def test_the_body_is_camel_case_as_documented() -> None:
    assert Publish("r", client_event_id="c", include_self=True).encode() == {
        "room": "r", "event": "message", "data": None, "clientEventId": "c", "includeSelf": True,
        "volatile": False,
    }
    assert Presence("r", "c").encode() == {"room": "r", "cursor": "c"}
    assert Ack("1", 2).encode() == {"ackId": "1", "result": 2}
    assert Close().encode() == {}
    assert set(REQUESTS) == {"join", "leave", "publish", "emit", "ack", "presence", "close"}


def test_defaults_and_aliases() -> None:
    req = decode_request("publish", b'{"room":"r","clientEventId":"c1","includeSelf":true}')
    assert req == Publish("r", "message", None, "c1", True)
    assert decode_request("emit", {"event": "e", "clientEventId": None}) == Emit("e")
    for empty in (None, b"", {}):
        assert decode_request("close", empty) == Close()


def _refused(op: str, raw: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as err:
        decode_request(op, raw)
    assert err.value.code == "validation_error"
    return err.value


def test_structural_problems_are_listed_together() -> None:
    err = _refused("publish", {"room": 5, "includeSelf": "yes", "surprise": True, "clientEventId": ""})
    assert {e["field"] for e in err.detail["errors"]} == {"room", "includeSelf", "surprise", "clientEventId"}
    assert all(set(e) == {"field", "problem"} for e in err.detail["errors"])
    assert _refused("join", {}).detail["errors"] == [{"field": "room", "problem": "Field required"}]
    assert _refused("ack", {"ackId": "x" * 65}).detail["errors"][0]["field"] == "ackId"
    assert _refused("join", [1]).detail["errors"][0]["field"] == "body"
    assert _refused("close", {"why": 1}).detail["errors"][0]["field"] == "why"


@pytest.mark.parametrize(
    ("op", "body", "field"),
    [
        ("join", {"room": "a b"}, "room"),
        ("join", {"room": "x\n"}, "room"),
        ("leave", {"room": "x" * 129}, "room"),
        ("publish", {"room": "r", "event": "recovery"}, "event"),
        ("emit", {"event": "newListener"}, "event"),
        ("publish", {"room": "r", "data": float("nan")}, "data"),
        ("emit", {"event": "e", "data": 2**64}, "data"),
        ("ack", {"ackId": "1", "result": {1: 2}}, "result"),
    ],
)
def test_names_and_payloads_are_refused_with_their_field(op: str, body: dict[str, Any], field: str) -> None:
    assert _refused(op, body).detail["field"] == field


def test_json_rules() -> None:
    with pytest.raises(MalformedJSON):
        decode_request("join", b"{nope")
    with pytest.raises(MalformedJSON):
        decode_request("join", b"")
    with pytest.raises(MalformedJSON):
        decode_request("join", b'{"room": "r", "x": NaN}')  # orjson refuses NaN outright
    # 19 digits or more are read exactly (the stdlib), so a 65-bit integer is refused, not rounded.
    assert _refused("publish", b'{"room":"r","data":36893488147419103232}').detail["field"] == "data"
    assert decode_request("publish", b'{"room":"r","data":1234567890123456789}').data == 1234567890123456789  # type: ignore[union-attr]
    with pytest.raises(UnknownEvent):
        decode_request("explode", {})


def test_requests_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Join("a").room = "b"  # type: ignore[misc]


def test_the_openapi_document_lists_each_request_s_fields() -> None:
    """The pydantic models of ``gateway.messages`` only describe the bodies: they cannot drift from the wire."""
    spec = create_app(Settings()).fastapi.openapi()
    documented = 0
    for route in ROUTES:
        operation = spec["paths"]["/sse" + route.path][route.method.lower()]
        cls = route.request
        required = {
            f.metadata["wire"] for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        if route.schema is None:
            assert "requestBody" not in operation and not wire_fields(cls)
            continue
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert set(schema["properties"]) == set(wire_fields(cls)), cls
        assert set(schema.get("required", [])) == required, cls
        assert schema["additionalProperties"] is False
        documented += 1
    assert documented == 6 and {r.request.OP for r in ROUTES} == set(REQUESTS)


def test_the_wire_package_loads_no_server_library() -> None:
    code = (
        "import sys, gateway.wire.requests\n"
        "heavy = {'fastapi', 'pydantic', 'starlette', 'redis', 'socketio', 'uvicorn'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
