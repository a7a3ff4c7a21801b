"""The official JavaScript socket.io-client v4 (Node) and an SSE client in one room."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import shutil

import pytest

from .drivers import SseDriver
from .servers import ThreadedGateway, timeout

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = pathlib.Path(__file__).parent / "js" / "sio_chat.mjs"

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
