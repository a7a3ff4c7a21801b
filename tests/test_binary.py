"""Binary payloads (docs/protocol.md, "Binary payloads"): ``bytes`` through publish, emit, ack and
server calls; Socket.IO attachments on one side, ``{"_rtgw_binary": "<base64>"}`` on SSE + POST,
byte-exact between the two, replayed after a resume, bounded by maxPayload counted decoded; on
the memory broker and on Redis, with python-socketio, httpx, rtclient (asyncio and blocking) and,
under Node, the official socket.io-client beside rtgateway.js."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import os
import pathlib
import queue
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.wire import binary
from gateway.wire.envelope import Envelope, check_data
from gateway.wire.errors import PayloadTooLarge, ValidationFailed
from gateway.wire.requests import Emit, Publish, decode_request
from rtclient import RoomEvent, SseClient
from rtclient.blocking import BlockingClient

from .drivers import SocketIODriver, SseDriver, expect_error
from .servers import REDIS_URL, ThreadedGateway, node_outcome, timeout, wait_state

LIMIT = 300_000  # the gateways' maxPayload here
FILE = 200 * 1024  # a file under it
ROOT = pathlib.Path(__file__).resolve().parents[1]
_n = itertools.count()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def marker(data: bytes) -> dict[str, str]:
    return {binary.MARKER: b64(data)}


def new_room() -> str:
    return f"bin-{next(_n)}-{uuid.uuid4().hex[:6]}"


# -- the codec and the gate, without a server -------------------------------------------------


def test_dumps_and_loads_round_trip_nested_bytes() -> None:
    value = {"a": b"\x00\xff", "list": [b"", {"deep": [b"xyz"]}], "text": "_rtgw_binary", "n": 1}
    raw = binary.dumps(value)
    assert b'{"_rtgw_binary":"AP8="}' in raw and b'{"_rtgw_binary":""}' in raw
    assert binary.loads(raw) == value and binary.loads(raw.decode()) == value
    plain = {"x": [1, "y"]}
    assert binary.loads(binary.dumps(plain)) == plain
    with pytest.raises(TypeError):
        binary.dumps({"a": bytearray(b"x")})  # only bytes are binary, as python-socketio sends them


def test_envelope_encodes_bytes_as_markers_and_clients_read_them_back() -> None:
    envelope = Envelope("/chat", "r", "file", {"body": b"\x01\x02\x03"}, "1-1", None, None, 5)
    assert b'"data":{"body":{"_rtgw_binary":"AQID"}}' in envelope.encode()
    from gateway.wire.envelope import decode_wire

    assert decode_wire(envelope.encode(), "/chat").data == {"body": b"\x01\x02\x03"}


def test_check_data_turns_markers_into_bytes_without_touching_the_given_value() -> None:
    given = {"file": {"_rtgw_binary": "AQID"}, "keep": [1, 2], "raw": b"\x09"}
    checked = check_data(given)
    assert checked == {"file": b"\x01\x02\x03", "keep": [1, 2], "raw": b"\x09"}
    assert given["file"] == {"_rtgw_binary": "AQID"}  # a copy where a marker was
    assert checked["keep"] is given["keep"]  # shared where none was
    plain = {"a": [1]}
    assert check_data(plain) is plain
    assert check_data({"_rtgw_binary": "AQID"}) == b"\x01\x02\x03"


@pytest.mark.parametrize("bad", [
    {"_rtgw_binary": "not base64!"}, {"_rtgw_binary": "A"}, {"_rtgw_binary": "AQID", "name": "x"},
    {"_rtgw_binary": 3}, [{"_rtgw_binary": None}], {"_rtgw_binary": "AQ\u00e9="},
])
def test_the_marker_key_is_reserved(bad: Any) -> None:
    with pytest.raises(ValidationFailed) as refused:
        decode_request("publish", {"room": "r", "data": bad})
    assert refused.value.detail["field"] == "data"


def test_the_gate_bounds_binaries_counted_decoded() -> None:
    body = {"room": "r", "data": [b"x" * 60, {"_rtgw_binary": b64(b"y" * 40)}]}
    assert decode_request("publish", body, max_binary=100).data == [b"x" * 60, b"y" * 40]  # type: ignore[union-attr]
    with pytest.raises(PayloadTooLarge) as over:
        decode_request("publish", body, max_binary=99)
    assert over.value.detail["maxPayload"] == 99
    emit = decode_request("emit", Emit("e", b"z" * 10).encode(), max_binary=10)
    assert emit == Emit("e", b"z" * 10)
    routed = Publish("r", data={"b": b"\x00"}).encode()  # a routed command: written with binary.dumps
    assert decode_request("publish", binary.loads(binary.dumps(routed))) == Publish("r", data={"b": b"\x00"})


def test_every_body_weighing_the_limit_fits_body_limit() -> None:
    """An SSE body is read up to ``body_limit(maxPayload)``: any body whose weight (binaries
    decoded) is within maxPayload must fit, however its binaries are cut up."""
    for n in range(400):
        for data in (b"\x00" * n, [b"\x00"] * n, [b""] * n, [b"\x00\x00"] * n, {str(i): b"\x00" for i in range(n)}):
            body = binary.dumps({"room": "r", "data": data})
            assert len(body) <= binary.body_limit(len(body) - binary.base64_overhead(data))
    # what base64 adds: 4 characters per 3 bytes or part of them, less the bytes themselves
    assert binary.base64_overhead([b"\x00", {"k": b"abcd"}, (b"",)]) == (4 - 1) + (8 - 4) + 0
    assert binary.decoded_size(b64(b"abcd")) == 4 and binary.decoded_size(b64(b"abc")) == 3


def test_the_javascript_client_spells_the_marker_as_the_gateway_does() -> None:
    source = (ROOT / "gateway" / "static" / "rtgateway-protocol.js").read_text()
    assert f'export const BINARY_MARKER = "{binary.MARKER}";' in source


# -- real gateways: memory and Redis ------------------------------------------------------------


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request: pytest.FixtureRequest, redis_prefix: str) -> Iterator[ThreadedGateway]:
    broker = "memory" if request.param == "memory" else REDIS_URL
    gw = ThreadedGateway(
        ping_interval=1.0, ping_timeout=1.0, max_payload=LIMIT, recovery_window=30.0, call_timeout=3.0,
        broker=broker, redis_prefix=redis_prefix,
    ).start()
    yield gw
    gw.stop()


async def room_event(client: SseClient, room: str) -> RoomEvent:
    """The next room event of ``room`` an rtclient client hands the application."""
    while True:
        event = await client.next_event(timeout(5))
        if isinstance(event, RoomEvent) and event.room == room:
            return event


async def messages(driver: SocketIODriver | SseDriver, room: str, count: int) -> list[dict[str, Any]]:
    """The room events named ``message`` ``driver`` got in ``room`` (not the demo's presence
    announcements), once it has at least ``count``."""
    def got() -> list[dict[str, Any]]:
        return [e for e in driver.room_events(room) if e["event"] == "message"]

    await driver.until(lambda: len(got()) >= count, what=f"{count} messages in {room}")
    return got()


async def close_all(*clients: SocketIODriver | SseDriver | SseClient) -> None:
    for client in clients:
        await client.close()


async def position(server: ThreadedGateway, room: str) -> str:
    offset: str = await server.arun(server.gateway.broker.position("/chat", room))
    return offset


@pytest.mark.parametrize("sio_transport", ["websocket", "polling"])
async def test_socketio_and_sse_clients_exchange_a_file(server: ThreadedGateway, sio_transport: str) -> None:
    room, there, back = new_room(), os.urandom(FILE), os.urandom(FILE)
    sio, raw = SocketIODriver(server.url, [sio_transport]), SseDriver(server.url)
    sse = SseClient(server.url, "/chat")
    try:
        await sio.connect("/chat"), await raw.connect("/chat"), await sse.connect()
        for c in (sio, raw, sse):
            await c.join(room)

        # Socket.IO -> SSE: bytes nested in an object and a list
        ack = await sio.publish(room, {"name": "a.bin", "body": there, "parts": [there[:3], "x"]})
        got = await room_event(sse, room)
        assert got.data == {"name": "a.bin", "body": there, "parts": [there[:3], "x"]}
        assert got.offset == ack["offset"] and got.sender == sio.sid
        [wire] = await messages(raw, room, 1)  # the documented wire form
        assert wire["data"]["body"] == marker(there) and wire["data"]["parts"][0] == marker(there[:3])

        # SSE (rtclient) -> Socket.IO: bytes as the whole payload
        ack = await sse.publish(room, back, include_self=True)
        [first] = await messages(sio, room, 1)  # not its own event: the first it gets
        assert first["data"] == back and type(first["data"]) is bytes and first["offset"] == ack["offset"]

        # SSE (the marker, by hand) -> Socket.IO and rtclient
        ack = await raw.publish(room, {"_rtgw_binary": b64(there)}, includeSelf=True)
        second = (await messages(sio, room, 2))[1]
        assert second["data"] == there and second["offset"] == ack["offset"]
        [mine, byhand] = [await room_event(sse, room) for _ in range(2)]
        assert mine.data == back and byhand.data == there
    finally:
        await close_all(sio, raw, sse)


async def test_binary_in_emit_acks_and_server_calls(server: ThreadedGateway) -> None:
    blob = os.urandom(50_000)
    sio, raw = SocketIODriver(server.url, ["websocket"]), SseDriver(server.url)
    sse = SseClient(server.url, "/chat")
    try:
        await sio.connect("/chat"), await raw.connect("/chat"), await sse.connect()
        # emit: the echo handler gets bytes and answers them
        small = blob[:10_000]  # an ack the dedup window keeps (GATEWAY_DEDUP_ENTRY_MAX_BYTES), as JSON
        assert await sio.emit("echo", {"b": small}, client_event_id="e1") == {"b": small}
        assert await sio.emit("echo", {"b": small}, client_event_id="e1") == {"b": small}  # the kept ack
        assert await sio.emit("echo", {"b": blob}) == {"b": blob}
        assert await sse.emit("echo", [blob, {"c": blob[:5]}]) == [blob, {"c": blob[:5]}]
        assert await raw.emit("echo", marker(blob)) == marker(blob)

        # server -> client call: bytes in its data and in the client's ack, each way
        sio.answer = lambda event, data: {"got": data["blob"][::-1]}
        assert sio.sid is not None and raw.sid is not None and sse.state.sid is not None
        answer = await server.arun(server.gateway.call("/chat", sio.sid, "confirm", {"blob": blob}))
        assert answer == {"got": blob[::-1]}
        seen: list[Any] = []

        def confirm(data: Any) -> Any:
            seen.append(data)
            return [data["blob"][:7]]

        sse.on_call("confirm", confirm)
        answer = await server.arun(server.gateway.call("/chat", sse.state.sid, "confirm", {"blob": blob}))
        assert answer == [blob[:7]] and seen == [{"blob": blob}]
        raw.answer = lambda event, data: data  # the marker, sent straight back
        answer = await server.arun(server.gateway.call("/chat", raw.sid, "confirm", blob))
        assert answer == blob and raw.control("call")[-1]["data"] == marker(blob)
    finally:
        await close_all(sio, raw, sse)


async def test_replay_after_resume_is_byte_exact(server: ThreadedGateway) -> None:
    room, blobs = new_room(), [os.urandom(30_000) for _ in range(3)]
    publisher, sio, raw = SocketIODriver(server.url, ["websocket"]), SocketIODriver(server.url, ["websocket"]), SseDriver(server.url)
    sse = SseClient(server.url, "/chat")
    try:
        for c in (publisher, sio, raw):
            await c.connect("/chat")
            await c.join(room)
        await sse.connect()
        await sse.join(room)
        for lost in (sio, raw, sse):
            await lost.drop()
        for sid in (sio.sid, raw.sid):
            await wait_state(lambda sid=sid: server.session_state(sid) == "detached", what="detached")  # type: ignore[misc]
        for blob in blobs:
            await publisher.publish(room, {"b": blob})
        await sio.connect("/chat", resume=True), await raw.connect("/chat", resume=True)
        assert [e["data"]["b"] for e in await messages(sio, room, 3)] == blobs
        assert [e["data"]["b"] for e in await messages(raw, room, 3)] == [marker(b) for b in blobs]
        for resumed in (raw, sio):  # the recovery frame follows the replay: it may come just after
            await resumed.until(lambda r=resumed: bool(r.control("recovery")), what="recovery")  # type: ignore[misc]
            assert resumed.control("recovery")[-1]["complete"]
        assert [(await room_event(sse, room)).data["b"] for _ in blobs] == blobs  # rtclient resumed by itself
    finally:
        await close_all(publisher, sio, raw, sse)


async def test_binaries_over_the_limit_are_refused_and_change_nothing(server: ThreadedGateway) -> None:
    room = new_room()
    sio, raw, watcher = SocketIODriver(server.url, ["websocket"]), SseDriver(server.url), SocketIODriver(server.url, ["websocket"])
    try:
        for c in (sio, raw, watcher):
            await c.connect("/chat")
            await c.join(room)
        before = await position(server, room)
        # Socket.IO: two attachments, each within Engine.IO's bound, together over maxPayload
        halves = [os.urandom(LIMIT // 2 + 1), os.urandom(LIMIT // 2)]
        refused = await expect_error("payload_too_large", sio.publish(room, halves))
        assert refused.detail["maxPayload"] == LIMIT
        await expect_error("payload_too_large", sio.emit("echo", {"a": halves}))
        # SSE: a body under body_limit that weighs more than maxPayload with its binary decoded
        answer = await raw.post("publish", {"room": room, "data": [marker(os.urandom(250_000)), "x" * 60_000]})
        assert answer.status_code == 413 and answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "payload_too_large" and answer.json()["maxPayload"] == LIMIT
        answer = await raw.post("publish", {"room": room, "data": marker(os.urandom(LIMIT + 1))})
        assert answer.status_code == 413 and answer.json()["code"] == "payload_too_large"
        assert await position(server, room) == before  # nothing logged

        # within the limit decoded, though its base64 body is longer than maxPayload: accepted
        fits = os.urandom(250_000)
        ack = await raw.publish(room, marker(fits))
        [got] = await messages(watcher, room, 1)  # the first event the room had since
        assert got["data"] == fits and got["offset"] == ack["offset"]
    finally:
        await close_all(sio, raw, watcher)


async def test_malformed_markers_get_422_and_change_nothing(server: ThreadedGateway) -> None:
    room = new_room()
    sio, raw, watcher = SocketIODriver(server.url, ["websocket"]), SseDriver(server.url), SocketIODriver(server.url, ["websocket"])
    try:
        for c in (sio, raw, watcher):
            await c.connect("/chat")
            await c.join(room)
        before = await position(server, room)
        for bad in ({"_rtgw_binary": "%%%="}, {"_rtgw_binary": "AQID", "name": "x"}, [{"_rtgw_binary": 1}]):
            answer = await raw.post("publish", {"room": room, "data": {"file": bad}})
            assert answer.status_code == 422, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            problem = answer.json()
            assert problem["code"] == "validation_error" and problem["field"] == "data" and "_rtgw_binary" in problem["detail"]
        answer = await raw.post("emit", {"event": "echo", "data": {"_rtgw_binary": "A"}})
        assert answer.status_code == 422 and answer.json()["code"] == "validation_error"
        await expect_error("validation_error", sio.publish(room, {"_rtgw_binary": "not base64"}))
        assert await position(server, room) == before
        ack = await raw.publish(room, "after")
        [got] = await messages(watcher, room, 1)  # nothing of the refused ones came first
        assert got["data"] == "after" and got["offset"] == ack["offset"]
    finally:
        await close_all(sio, raw, watcher)


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_blocking_client_sends_and_gets_bytes(server: ThreadedGateway, transport: str) -> None:
    """The threaded client, with binary room events queuing behind a listener that takes its time
    while its own binary acks come (on Socket.IO, python-socketio reads a binary packet's
    attachments as the messages after it: an ack must not land between an event's)."""
    room, blobs = new_room(), [os.urandom(2_000 + i) for i in range(30)]
    got: queue.Queue[RoomEvent] = queue.Queue()

    def listener(event: Any) -> None:
        if isinstance(event, RoomEvent):
            time.sleep(0.005)  # the application at work: events wait in line meanwhile
            got.put(event)

    client = BlockingClient(server.url, "/chat", transport=transport, request_timeout=timeout(10), on_event=listener)
    publisher = SocketIODriver(server.url, ["websocket"])
    try:
        await asyncio.to_thread(client.connect)
        await asyncio.to_thread(client.join, room)
        await publisher.connect("/chat")
        await publisher.join(room)

        async def publish_all() -> None:
            for blob in blobs:
                await publisher.publish(room, {"b": blob})

        def echo_all() -> list[Any]:
            return [client.emit("echo", {"i": i, "b": blob}) for i, blob in enumerate(blobs)]

        _, echoed = await asyncio.gather(publish_all(), asyncio.to_thread(echo_all))
        assert echoed == [{"i": i, "b": blob} for i, blob in enumerate(blobs)]
        received = [await asyncio.to_thread(got.get, True, timeout(5)) for _ in blobs]
        assert [e.data["b"] for e in received] == blobs
        await asyncio.to_thread(client.publish, room, [blobs[0], {"k": blobs[1]}])
        [back] = await messages(publisher, room, 1)
        assert back["data"] == [blobs[0], {"k": blobs[1]}]
    finally:
        await asyncio.to_thread(client.close)
        await publisher.close()


# -- Node: the official socket.io-client and rtgateway.js ------------------------------------------

NODE_SCRIPT = pathlib.Path(__file__).parent / "js" / "binary_exchange.mjs"


@pytest.mark.node
@pytest.mark.skipif(shutil.which("node") is None or not (ROOT / "node_modules" / "socket.io-client").exists(),
                    reason="needs node and `npm ci` (make setup does both)")
async def test_js_socketio_client_and_rtgateway_js_on_sse_exchange_bytes(
    server: ThreadedGateway, client_module: pathlib.Path
) -> None:
    data = os.urandom(32 * 1024)
    node = await asyncio.create_subprocess_exec(
        "node", str(NODE_SCRIPT), server.url, new_room(), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "RTGW_CLIENT": str(client_module), "BINARY_B64": b64(data),
             "NODE_PATH": str(ROOT / "node_modules")},
    )
    result = await node_outcome(node, 40)
    at_sse, at_sio, echoed = result["sse"], result["sio"], result["echoed"]

    def sha(value: bytes) -> str:
        return hashlib.sha256(value).hexdigest()

    assert at_sse["kind"] == "ArrayBuffer" and at_sse["body"] == sha(data)  # a Buffer sent on Socket.IO
    assert at_sse["offset"] == at_sse["ackOffset"]
    assert at_sio["kinds"] == ["Buffer", "Buffer", "Buffer"]  # Uint8Array, Blob, DataView sent on SSE
    assert at_sio["body"] == at_sio["blob"] == sha(data) and at_sio["view"] == sha(data[1:17])
    assert at_sio["offset"] == at_sio["ackOffset"]
    assert echoed == {"kind": "ArrayBuffer", "body": sha(data)}
