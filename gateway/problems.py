"""How errors look over HTTP: RFC 9457 problem documents, and their place in the OpenAPI schema.

The error tree itself is ``errors.py``; this module only says, for the schema, which
statuses a route can answer and what their bodies look like, so generated clients and
fuzzers (Schemathesis in the suite) know the real contract.
"""

from __future__ import annotations

from typing import Any

MEDIA_TYPE = "application/problem+json"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "the stable error code (docs/protocol.md#errors)"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}

_WHY = {
    400: "Unreadable request (malformed JSON, Last-Event-ID, offsets)",
    401: "Credential missing, malformed, wrong or expired",
    403: "Refused: origin, namespace middleware, room authorization, not joined, API disabled",
    404: "No such namespace, session (or wrong key), event handler, ack or file",
    409: "Conflict: ack already used, session closed, too many rooms",
    410: "The session expired (said only to its key's holder)",
    413: "Body over maxPayload",
    415: "Body not sent as application/json",
    422: "A field is missing, wrong-typed, or breaks a name or payload rule",
    429: "Over a rate or connection limit: retry after Retry-After seconds",
    500: "An application handler failed",
    503: "The broker cannot log or fan out, or the node holding the session is gone",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry of a route that may answer these problem statuses."""
    return {
        status: {"description": _WHY[status], "content": {MEDIA_TYPE: {"schema": SCHEMA}},
                 **({"headers": _RETRY_AFTER} if status == 429 else {})}
        for status in statuses
    }


_RETRY_AFTER = {"Retry-After": {
    "description": "Seconds to wait before trying again (whole seconds; the body's retryAfter has milliseconds)",
    "schema": {"type": "integer", "minimum": 1},
}}


def plain_optional_parameters(spec: dict[str, Any]) -> dict[str, Any]:
    """Document an optional query or header parameter as what it is on the wire: a string
    that may be absent. (FastAPI writes ``str | None`` as "string or null"; HTTP has no
    null, and a fuzzer would send the text "null".) Changes ``spec`` in place."""
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                variants = schema.get("anyOf")
                if parameter.get("required") or not variants or {"type": "null"} not in variants:
                    continue
                kept = [v for v in variants if v != {"type": "null"}]
                if len(kept) == 1:
                    del schema["anyOf"]
                    schema.update(kept[0])
    return spec
