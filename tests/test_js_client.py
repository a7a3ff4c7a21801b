"""JavaScript under Node against a real gateway: the official socket.io-client v4 and an SSE
client in one room, and rtgateway.js (the browser client) keeping its session: resuming with
its private key, stopping when the session is resumed elsewhere, renewing an expired token."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from .drivers import SseDriver
from .servers import ThreadedGateway, node_outcome, timeout

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = pathlib.Path(__file__).parent / "js" / "sio_chat.mjs"
SESSION_SCRIPT = pathlib.Path(__file__).parent / "js" / "client_session.mjs"
JWT_SECRET = "js-client-test-secret-0123456789abcdef"  # HS256, >= 32 characters
KEY = r"^[A-Za-z0-9_-]{22}$"

pytestmark = pytest.mark.node
if shutil.which("node") is None or not (ROOT / "node_modules" / "socket.io-client").exists():
    pytestmark = [pytest.mark.node, pytest.mark.skip(reason="needs node and `npm ci` (make setup does both)")]


async def read_json(stream: asyncio.StreamReader) -> dict:
    line = await asyncio.wait_for(stream.readline(), timeout(15))
    assert line, "node exited early"
    return json.loads(line)


async def test_js_client_and_sse_client_chat(server: ThreadedGateway):
    room = "js-room"
    sse = SseDriver(server.url)
    await sse.connect("/chat")
    await sse.join(room)
    node = await asyncio.create_subprocess_exec(
        "node", str(SCRIPT), server.url, room, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_PATH": str(ROOT / "node_modules")},
    )
    try:
        assert node.stdout is not None
        ready = await read_json(node.stdout)
        assert ready.get("ready") and ready["joined"]["ok"], ready
        ack = await sse.publish(room, "from-sse")
        received = (await read_json(node.stdout))["received"]
        assert received["data"] == "from-sse" and received["offset"] == ack["offset"]
        assert received["sender"] == sse.sid
        answer = await read_json(node.stdout)
        assert answer["ack"]["ok"] and answer["transport"] == "websocket"  # upgraded from polling
        [back] = await sse.wait_room_events(room, 1)
        assert back["data"] == "from-js" and back["sender"] == ready["sid"]
        assert back["offset"] == answer["ack"]["result"]["offset"] and back["clientEventId"] == "js-1"
        assert await asyncio.wait_for(node.wait(), timeout(10)) == 0
    finally:
        if node.returncode is None:
            node.kill()
        await sse.close()


# -- rtgateway.js under Node ------------------------------------------------------------


@pytest.fixture(scope="module")
def jwt_server() -> Iterator[ThreadedGateway]:
    gateway = ThreadedGateway(ping_interval=1.0, ping_timeout=1.0, jwt_secret=JWT_SECRET).start()
    yield gateway
    gateway.stop()


async def run_scenario(client_module: pathlib.Path, scenario: str, url: str, transport: str) -> dict[str, Any]:
    node = await asyncio.create_subprocess_exec(
        "node", str(SESSION_SCRIPT), scenario, url, transport, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "RTGW_CLIENT": str(client_module), "JWT_SECRET": JWT_SECRET},
    )
    return await node_outcome(node, 40)


TRANSPORTS = ["sse", "socketio"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_js_client_resumes_with_its_key(server: ThreadedGateway, client_module: pathlib.Path, transport: str) -> None:
    """A drop, the room moves on while the client is away, then the resume: the same session
    (so the key was accepted), every missed message once and in order, then live ones."""
    result = await run_scenario(client_module, "resume", server.url, transport)
    before, after = result["before"], result["after"]
    assert before["sid"] != before["key"]
    for ids in (before, after):
        assert all(isinstance(v, str) and len(v) == 22 for v in ids.values()), ids
    assert after == before  # resumed, not a new session
    assert result["recovery"]["recovered"] and result["recovery"]["complete"], result["recovery"]
    assert result["recovery"]["replayed"] >= 3
    assert result["got"] == ["missed-1", "missed-2", "missed-3", "live"]
    assert result["stats"]["gaps"] == 0 and result["stats"]["malformed"] == 0
    assert result["state"] == "open"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_js_client_replaced_elsewhere_stops(server: ThreadedGateway, client_module: pathlib.Path, transport: str) -> None:
    """Another connection resumes the session with its key: this client gets close
    {replaced, reconnect: false}, ends with the error `replaced`, and never dials again."""
    result = await run_scenario(client_module, "replaced", server.url, transport)
    assert result["otherSid"] == result["sid"]
    assert f"js-replaced-{transport}" in result["otherRooms"]
    assert [e["code"] for e in result["errors"]] == ["replaced"], result["errors"]
    assert result["states"][-1] == "closed" and "reconnecting" not in result["states"]
    assert result["reconnects"] == [] and result["reconnectCount"] == 0
    assert result["refused"] == "client_closed"
    joined = result["joined"]
    assert joined["ok"] and joined["result"]["room"] == f"js-replaced-{transport}-2", joined  # the new owner is untouched


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_js_client_token_function_renews_after_expiry(
    jwt_server: ThreadedGateway, client_module: pathlib.Path, transport: str
) -> None:
    """A JWT that expires while connected: close {token_expired, reconnect: true}, the token
    function is called again, and the fresh token resumes the same session."""
    result = await run_scenario(client_module, "token", jwt_server.url, transport)
    assert result["reasons"][0] == "token_expired", result["reasons"]
    assert result["calls"] >= 2
    assert result["after"] == result["before"]
    assert result["recovery"]["recovered"], result["recovery"]
    assert result["state"] == "open"
