"""One gate for everything that enters a log: what one client sends cannot break the others.

Each test is an observation from the abuse report of issue 12, now refused.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import httpx
import pytest
import websockets

from gateway.app import create_app
from gateway.settings import Settings
from gateway.wire.errors import ValidationFailed

from .drivers import expect_error, make_driver
from .servers import ThreadedGateway, timeout


def room() -> str:
    return f"val-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("event", ["newListener", "removeListener", "disconnecting", "connect_error", "close", "left"])
async def test_names_that_break_clients_are_reserved(clients, transport, event, server):
    r = room()
    c = clients(transport)
    await c.connect("/chat")
    joined = await c.join(r)
    await expect_error("validation_error", c.publish(r, "x", event=event))
    await expect_error("validation_error", c.request("publish", {"room": r, "event": event}))
    with pytest.raises(ValidationFailed):
        await server.arun(server.gateway.emit("/chat", event, None, to=r))
    logged = await server.arun(server.gateway.broker.replay("/chat", r, joined["offset"]))
    assert logged.events == []  # nothing entered the log


@pytest.mark.parametrize("body", [{"event": "close\n"}, {"room": "invite-42\n"}, {"room": "a\r\nb"}, {"event": "x\u2028"}])
async def test_a_trailing_newline_is_not_a_name(clients, transport, body):
    c = clients(transport)
    await c.connect("/chat")
    await expect_error("validation_error", c.request("publish", {"room": "val-room", **body}))
    if "room" in body:
        await expect_error("validation_error", c.join(body["room"]))


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


async def test_deep_json_is_refused_before_the_log_and_resume_still_works(clients, transport, server):
    r = room()
    a, b = clients(transport), clients("sse-post")
    await a.connect("/chat"), await b.connect("/chat")
    joined = await a.join(r)
    await b.join(r)
    await b.drop()
    await expect_error("validation_error", a.publish(r, _nested(300)))
    await expect_error("validation_error", a.emit("echo", _nested(40)))
    await a.publish(r, _nested(20))  # within the stated limit (32)
    logged = await server.arun(server.gateway.broker.replay("/chat", r, joined["offset"]))
    assert len(logged.events) == 1
    info = await b.connect("/chat", resume=True)  # the room's log poisons no resume
    assert r in info["rooms"]
    await b.wait_room_events(r, 1)


async def test_numbers_must_be_finite(server):
    """Socket.IO's JSON (the stdlib's) reads NaN and Infinity; raw HTTP bodies can carry them too."""
    sio = make_driver("socketio-websocket", server.url)
    await sio.connect("/chat")
    r = room()
    await sio.join(r)
    await expect_error("validation_error", sio.publish(r, float("nan")))
    await expect_error("validation_error", sio.emit("echo", {"x": float("inf")}))
    await expect_error("validation_error", sio.emit("sum", [1e308, 1e308]))  # the demo's handler overflows
    await sio.close()
    sse = make_driver("sse-post", server.url)
    await sse.connect("/chat")
    await sse.join(r)
    for raw in (b'{"room": "%s", "data": NaN}' % r.encode(), b'{"room": "%s", "data": 1e999}' % r.encode()):
        answer = await sse.post("publish", raw)
        assert answer.status_code in (400, 422), answer.text
    await sse.close()


async def test_a_handler_result_that_cannot_be_sent_is_an_error_not_a_broken_client() -> None:
    def declare(gw: Any) -> None:
        ns = gw.namespace("/app")

        @ns.on("bad")
        async def bad(session: Any, data: Any) -> Any:
            return {"value": float("inf")}

        @ns.on("good")
        async def good(session: Any, data: Any) -> Any:
            return data

    gw = ThreadedGateway.__new__(ThreadedGateway)
    ThreadedGateway.__init__(gw, ping_interval=1.0)
    gw.app = create_app(gw.settings, declare=declare)
    gw.gateway = gw.app.gateway
    gw.server.config.app = gw.app
    gw.start()
    try:
        for transport in ("socketio-websocket", "sse-post"):
            c = make_driver(transport, gw.url)
            await c.connect("/app")
            await expect_error("internal_error", c.emit("bad"))
            assert await c.emit("good", [1, 2]) == [1, 2]  # the connection survived
            await c.close()
    finally:
        gw.stop()


async def test_sse_data_escapes_unicode_line_separators(server):
    r = room()
    reader, writer = make_driver("sse-post", server.url), make_driver("sse-post", server.url)
    await reader.connect("/chat"), await writer.connect("/chat")
    await reader.join(r), await writer.join(r)
    async with httpx.AsyncClient(base_url=server.url) as http:
        async with http.stream("GET", "/sse/connect", params={"namespace": "/chat"},
                               headers={"Last-Event-ID": reader.last_event_id}) as raw:
            text = "one\u2028two\u2029three\x85four"
            await writer.publish(r, text)
            body = b""
            async for chunk in raw.aiter_raw():
                body += chunk
                if b"four" in body:
                    break
    line = next(x for x in body.split(b"\n") if b"four" in x)
    assert line.startswith(b"data: ") and b"\\u2028" in line and b"\\u2029" in line and b"\\u0085" in line
    assert "\u2028".encode() not in body and "\x85".encode() not in body


async def test_a_huge_last_event_id_is_refused_before_it_is_parsed(server):
    cursor = "A" * 22 + ":" + "B" * 22 + ";" + ",".join(f"room{i}=1-0" for i in range(600_000))
    async with httpx.AsyncClient(base_url=server.url, timeout=timeout(10)) as http:
        answer = await http.get("/sse/connect", params={"namespace": "/chat"}, headers={"Last-Event-ID": cursor})
    assert answer.status_code in (400, 431), answer.text[:200]  # refused by the gateway, or by the server before it
    if answer.status_code == 400:
        assert answer.json()["code"] == "bad_last_event_id"
    sio = make_driver("socketio-websocket", server.url)
    offsets = {f"room{i}": "1-0" for i in range(5_000)}
    await expect_error("bad_last_event_id", sio.connect("/chat", {"sid": "A" * 22, "key": "B" * 22, "offsets": offsets}))


async def test_a_large_auth_payload_is_refused(server):
    for transport in ("socketio-websocket", "sse-post"):
        c = make_driver(transport, server.url)
        big = {"name": "x" * 20_000}
        if transport == "sse-post":
            attempt = c.connect("/chat", params=big)
        else:
            attempt = c.connect("/chat", big)
        await expect_error("validation_error", attempt)
        if transport == "sse-post":
            await c.http.aclose()


async def test_garbage_packets_are_counted_not_logged_one_by_one(server):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = server.gateway.transports["socketio"].server.eio.logger  # this gateway's own
    logger.addHandler(handler)
    before = server.gateway.metrics.library_errors.labels("engineio")._value.get()
    try:
        uri = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        async with websockets.connect(uri) as ws:
            await ws.recv()
            await ws.send("40/chat,")
            await ws.recv()

            async def answer_pings() -> None:  # or Engine.IO closes us after pingTimeout
                async for message in ws:
                    if message == "2":
                        await ws.send("3")

            ponger = asyncio.create_task(answer_pings())
            for _ in range(300):
                await ws.send('42/chat,["publish",{broken')
            # counted while the connection is still open (closing it would drop what is queued)
            deadline = asyncio.get_running_loop().time() + timeout(10)
            while server.gateway.metrics.library_errors.labels("engineio")._value.get() < before + 300:
                assert asyncio.get_running_loop().time() < deadline, "malformed packets not counted"
                await asyncio.sleep(0.05)
            ponger.cancel()
    finally:
        logger.removeHandler(handler)
    assert len(records) <= 2 and all(r.exc_info is None for r in records)


async def test_an_unknown_namespace_is_not_echoed_back_at_length(server):
    c = make_driver("socketio-websocket", server.url)
    exc = await expect_error("unknown_namespace", c.connect("/" + "x" * 50_000))
    assert len(str(exc)) < 200 and len(str(exc.detail)) < 200


def test_the_documented_limit_is_the_enforced_one() -> None:
    from gateway.wire.envelope import MAX_DEPTH, check_data

    check_data(_nested(MAX_DEPTH - 1))
    with pytest.raises(ValidationFailed):
        check_data(_nested(MAX_DEPTH + 1))
    assert Settings().max_auth_bytes > 0
