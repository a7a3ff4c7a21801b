"""The SSE stream's own machinery: eager writes, the shared pinger, the stall watchdog, the host.

Real uvicorn on 127.0.0.1, real sockets; ``run_eagerly`` is tested on its own with asyncio futures.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx

from gateway.fences.asyncio_eager import run_eagerly

from .servers import ThreadedGateway, timeout, wait_state

Outcome = tuple[Any, BaseException | None]


def _recorder() -> tuple[list[Outcome], Any]:
    seen: list[Outcome] = []
    return seen, lambda result, error: seen.append((result, error))


async def test_a_coroutine_that_need_not_wait_finishes_inside_the_call() -> None:
    async def quick() -> int:
        return 7

    seen, done = _recorder()
    run_eagerly(quick(), done)
    assert seen == [(7, None)]  # no loop turn needed


async def test_a_coroutine_that_waits_goes_on_when_its_future_is_done() -> None:
    gate = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def slow() -> str:
        steps.append("before")
        value = await gate
        await asyncio.sleep(0)  # a bare yield too
        steps.append("after")
        return value

    seen, done = _recorder()
    run_eagerly(slow(), done)
    assert steps == ["before"] and seen == []
    finished = asyncio.Event()
    run_eagerly(_set_after(gate, "v"), lambda *_: finished.set())
    await asyncio.wait_for(finished.wait(), timeout(2))
    for _ in range(10):
        if seen:
            break
        await asyncio.sleep(0)
    assert steps == ["before", "after"] and seen == [("v", None)]


async def _set_after(future: asyncio.Future[str], value: str) -> None:
    future.set_result(value)


async def test_an_error_reaches_done_instead_of_escaping() -> None:
    async def broken() -> None:
        raise ConnectionResetError("gone")

    seen, done = _recorder()
    run_eagerly(broken(), done)
    assert len(seen) == 1 and isinstance(seen[0][1], ConnectionResetError)


# -- real streams ----------------------------------------------------------------


async def _read_until(chunks: AsyncIterator[bytes], needle: bytes, count: int, wait: float) -> bytes:
    """Read the stream until ``needle`` occurred ``count`` times (or fail after ``wait`` s)."""
    got = b""

    async def read() -> None:
        nonlocal got
        async for chunk in chunks:
            got += chunk
            if got.count(needle) >= count:
                return

    await asyncio.wait_for(read(), timeout(wait))
    return got


async def test_a_quiet_stream_is_pinged_every_ping_interval() -> None:
    gw = ThreadedGateway(ping_interval=0.3, ping_timeout=1.0).start()
    try:
        async with httpx.AsyncClient(base_url=gw.url) as http:
            async with http.stream("GET", "/sse/connect", params={"namespace": "/chat"}) as response:
                got = await _read_until(response.aiter_raw(), b": ping\n\n", 3, wait=5)
        assert got.startswith(b"id: ") and b"event: open" in got
    finally:
        gw.stop()


async def test_the_stream_head_goes_through_the_middleware() -> None:
    """CORS headers on the event stream: only its body bypasses the middleware stack."""
    gw = ThreadedGateway(cors_origins=["https://app.example"]).start()
    try:
        async with httpx.AsyncClient(base_url=gw.url) as http, http.stream(
            "GET", "/sse/connect", params={"namespace": "/chat"}, headers={"Origin": "https://app.example"}
        ) as response:
            assert response.headers["access-control-allow-origin"] == "https://app.example"
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "content-length" not in response.headers
            await _read_until(response.aiter_raw(), b"event: open", 1, wait=5)
    finally:
        gw.stop()


async def test_the_fastapi_app_alone_streams_too() -> None:
    """Without EventStreamHost in front (someone mounting ``app.fastapi``), the route streams itself."""
    gw = ThreadedGateway()
    gw.server.config.app = gw.app.fastapi
    gw.start()
    try:
        async with httpx.AsyncClient(base_url=gw.url) as http:
            async with http.stream("GET", "/sse/connect", params={"namespace": "/chat"}) as response:
                chunks = response.aiter_raw()
                got = await _read_until(chunks, b"event: open", 1, wait=5)
                sid, key = got.split(b"\n", 1)[0][4:].split(b";", 1)[0].decode().split(":")
                joined = await http.post(f"/sse/sessions/{sid}/join", json={"room": "r"}, headers={"X-Session-Key": key})
                assert joined.status_code == 200
                await _read_until(chunks, b"event: joined", 1, wait=5)
        # the client closed the stream: its session is detached, not held
        await wait_state(lambda: gw.session_state(sid) == "detached", 5, "session detached")
    finally:
        gw.stop()


async def test_a_stream_whose_socket_stays_full_is_cut_after_ping_timeout() -> None:
    """A client that stops reading: its write waits, later frames queue (below the bound);
    the pinger cuts it once the write has waited pingTimeout, counts it, and the session
    stays resumable."""
    gw = ThreadedGateway(ping_interval=0.2, ping_timeout=0.6, session_queue_size=100_000).start()
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", gw.port))
        sock.sendall(b"GET /sse/connect?namespace=/chat HTTP/1.1\r\nHost: t\r\n\r\n")
        head = b""
        while b"event: open" not in head:
            head += await asyncio.to_thread(sock.recv, 4096)
        sid = head.split(b"\r\n\r\n", 1)[1].split(b"id: ", 1)[1].split(b":", 1)[0].decode()
        payload = "x" * 60_000
        for i in range(100):  # bounded: a few MB, far beyond both socket buffers
            gw.run(gw.gateway.emit("/chat", "big", {"i": i, "pad": payload}, to=sid))
        await wait_state(lambda: gw.session_state(sid) == "detached", 10, "the stalled stream cut")
        dropped = gw.gateway.metrics.dropped.labels("slow_consumer")._value.get()
        assert dropped >= 1
        sock.close()
    finally:
        gw.stop()
