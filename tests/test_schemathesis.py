"""Schemathesis against the live gateway's /openapi.json (issue 12): every operation, examples
generated from the schema (and against it), each answer checked by Schemathesis's own checks —
no 500, and status codes, media types, headers and bodies as the schema documents them.

A live session is put in every request on /sse/sessions/{sid}/...: its sid in the path, its
key in X-Session-Key, so the routes are reached rather than all answering unknown_sid. The
event stream (GET /sse/connect) is asked for in mode=poll, so that each answer ends.
Bounded: a few dozen examples per operation.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from gateway.app import create_app
from gateway.settings import Settings

from .servers import ThreadedGateway, timeout

# Schemathesis gives its per-operation tests one node id (renamed as each runs), which
# pytest-xdist folds into one test, hiding failures: this file runs in the serial part.
pytestmark = pytest.mark.serial

API_TOKEN = "schemathesis-api-token-0123456789"
SETTINGS = {"ping_interval": 1.0, "ping_timeout": 1.0, "api_token": API_TOKEN, "session_publish_rate": 0, "address_session_rate": 0}
# The operations are known when the tests are collected, from the app itself; the live
# gateway's /openapi.json is checked to be this very document (``live``). (Schemathesis's
# lazy loading from a fixture, schemathesis.pytest.from_fixture, fails under pytest 9.)
SPEC = create_app(Settings(**SETTINGS), demo=True).fastapi.openapi()
schema = schemathesis.openapi.from_dict(SPEC)


@dataclass
class Live:
    """A gateway with an open SSE session in room "lobby"."""

    server: ThreadedGateway
    sid: str
    key: str

    def prepare(self, case: schemathesis.Case) -> None:
        """Put the live session (and the API token) where the schema asks for them."""
        headers = dict(case.headers or {})
        if case.path_parameters and "sid" in case.path_parameters:
            case.path_parameters["sid"] = self.sid
            headers["X-Session-Key"] = self.key
        if case.path == "/api/publish":
            headers["Authorization"] = f"Bearer {API_TOKEN}"
        if case.path == "/sse/connect" and (case.query or {}).get("mode", "stream") == "stream":
            # A stream answers for as long as it is open; a poll ends after its first batch.
            # (Any other value is left alone: a generated invalid mode must be refused.)
            case.query = {**(case.query or {}), "mode": "poll"}
        case.headers = headers


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    server = ThreadedGateway(**SETTINGS).start()
    assert httpx.get(f"{server.url}/openapi.json").json() == SPEC
    opened = threading.Event()
    info: dict[str, Any] = {}
    stop = threading.Event()

    def stream() -> None:  # the session's event stream, read (and dropped) until the end
        with httpx.Client(base_url=server.url, timeout=None) as http, \
                http.stream("GET", "/sse/connect", params={"namespace": "/chat"}) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and not opened.is_set():
                    info.update(httpx.Response(200, content=line[6:]).json())
                    opened.set()
                if stop.is_set():
                    return

    reader = threading.Thread(target=stream, daemon=True)
    reader.start()
    assert opened.wait(timeout(10)), "no open frame"
    session = Live(server, info["sid"], info["key"])
    joined = httpx.post(f"{server.url}/sse/sessions/{session.sid}/join", json={"room": "lobby"},
                        headers={"X-Session-Key": session.key})
    assert joined.status_code == 200, joined.text
    yield session
    stop.set()
    server.stop()
    reader.join(timeout(5))


@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case, live: Live) -> None:
    live.prepare(case)
    # Every check of the answers (no 500, documented statuses, media types, bodies and headers).
    # Not the two that judge the schema's precision about requests: rules that span fields or
    # need the gateway's state (a cursor naming another session than ?sid=, reserved event
    # names, 33 levels of JSON) are not JSON Schema and get documented 400/422 problems; and
    # extra query parameters are accepted on purpose (they reach the namespace's middleware).
    case.call_and_validate(
        base_url=live.server.url, timeout=timeout(10),
        excluded_checks=[positive_data_acceptance, negative_data_rejection],
    )


def test_a_client_file_name_too_long_for_the_filesystem_is_not_found(live: Live) -> None:
    """Found by Schemathesis: a name over 255 bytes made the file lookup raise (ENAMETOOLONG), a 500."""
    for name in ("a" * 256, "\u1e70\u033a" * 100):
        response = httpx.get(f"{live.server.url}/client/{name}")
        assert response.status_code == 404, response.text
