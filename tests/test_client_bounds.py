"""Every rtclient call returns or raises within its bound and honours cancellation, on every
transport (SSE + POST, Socket.IO WebSocket, Socket.IO long-polling) and in both drivers
(asyncio, blocking), against a peer that stopped answering: a loopback server that accepts and
never says a word, and a real gateway SIGSTOPped mid-session (its sockets stay open, nothing
is read or written). Bounds are short here (``request_timeout`` 1.5 s) to keep the file quick."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from rtclient import ConnectionLost, SocketIOClient, SseClient
from rtclient._bounds import CLOSE_BOUND
from rtclient.blocking import BlockingClient

from .servers import SubprocessGateway, timeout

TRANSPORTS = ["sse", "websocket", "polling"]
REQUEST_TIMEOUT = 1.5
# What a loaded machine adds to a bound before the call is seen to return.
SLACK = timeout(1.0)
# A cancelled call must give the caller its cancellation this fast.
PROMPT = timeout(1.0)
# drop/close: a few CLOSE_BOUND steps at most (see rtclient._bounds).
LET_GO = 3 * CLOSE_BOUND + SLACK
# The gateway's ping settings: a silent stream is dead after 2 s.
PING = {"GATEWAY_PING_INTERVAL": "1", "GATEWAY_PING_TIMEOUT": "1"}

AioClient = SseClient | SocketIOClient


def aio_client(transport: str, url: str) -> AioClient:
    if transport == "sse":
        return SseClient(url, "/chat", mode="stream", request_timeout=REQUEST_TIMEOUT)
    return SocketIOClient(url, "/chat", transports=[transport], request_timeout=REQUEST_TIMEOUT)


def blocking_client(transport: str, url: str) -> BlockingClient:
    return BlockingClient(url, "/chat", transport=transport, mode="stream", request_timeout=REQUEST_TIMEOUT)


async def took(call: Awaitable[Any]) -> tuple[float, BaseException | None]:
    """How long ``call`` took and what it raised (None if it returned)."""
    started = time.monotonic()
    try:
        await call
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


def took_blocking(call: Callable[[], Any]) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        call()
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


@pytest.fixture
def gateway() -> Iterator[SubprocessGateway]:
    """A gateway of its own, to SIGSTOP; continued and killed afterwards whatever happened."""
    gw = SubprocessGateway(env=PING).start()
    yield gw
    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGCONT)
    gw.kill()


def stop(gw: SubprocessGateway) -> None:
    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGSTOP)


def resume(gw: SubprocessGateway) -> None:
    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGCONT)


# -- asyncio ------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connect_to_a_silent_peer_is_bounded_and_cancellable(silent_peer: str, transport: str) -> None:
    client = aio_client(transport, silent_peer)
    # Cancelled mid-way (the caller's own timeout): the caller gets it at once.
    seconds, error = await took(asyncio.wait_for(client.connect(), 0.3))
    assert isinstance(error, TimeoutError) and seconds < 0.3 + PROMPT, (seconds, error)
    # Left to its own bound: one attempt's (connect_timeout defaults to at most request_timeout).
    seconds, error = await took(client.connect())
    assert isinstance(error, ConnectionLost), error
    assert seconds < client.attempt_timeout + SLACK, seconds
    seconds, error = await took(client.close())
    assert error is None and seconds < LET_GO, (seconds, error)


async def test_connect_timeout_is_the_attempt_bound(silent_peer: str) -> None:
    """``connect_timeout`` bounds an attempt on its own, whatever ``request_timeout`` is."""
    client = SocketIOClient(silent_peer, "/chat", transports=["websocket"], request_timeout=30, connect_timeout=0.5)
    seconds, error = await took(client.connect())
    assert isinstance(error, ConnectionLost) and seconds < 0.5 + SLACK, (seconds, error)
    await client.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_call_is_bounded_against_a_stopped_gateway(gateway: SubprocessGateway, transport: str) -> None:
    client = aio_client(transport, gateway.url)
    try:
        await client.connect()
        await client.join("bounded")
        await client.join("gone")
        stop(gateway)
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "join": lambda: client.join("other"),
            "leave": lambda: client.leave("gone"),
            "publish": lambda: client.publish("bounded", 1),
            "emit": lambda: client.emit("echo", 1),
        }
        for name, call in calls.items():
            # (i) the caller gives up: its cancellation reaches it at once.
            seconds, error = await took(asyncio.wait_for(call(), 0.2))
            assert isinstance(error, TimeoutError) and seconds < 0.2 + PROMPT, (name, seconds, error)
            # (ii) left to itself: raises within request_timeout.
            seconds, error = await took(call())
            assert isinstance(error, TimeoutError), (name, error)
            assert seconds < REQUEST_TIMEOUT + SLACK, (name, seconds)
        seconds, error = await took(asyncio.wait_for(client.drop(), 0.01))
        assert seconds < 0.01 + PROMPT, (seconds, error)
        seconds, error = await took(client.drop())
        assert error is None and seconds < LET_GO, (seconds, error)
        # The supervisor's reconnect attempts to the stopped gateway are bounded too: once it is
        # back, the session is resumed and a publish goes through.
        resume(gateway)
        deadline = time.monotonic() + timeout(15)
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                ack = await client.publish("bounded", 2)
                assert "offset" in ack
                break
        else:
            raise AssertionError(f"{transport}: no publish went through after the gateway came back")
        stop(gateway)
        # A close cancelled mid-way gives the caller its cancellation; a second close finishes.
        seconds, error = await took(asyncio.wait_for(client.close(), 0.05))
        assert seconds < 0.05 + PROMPT, (seconds, error)
        seconds, error = await took(client.close())
        assert error is None and seconds < LET_GO, (seconds, error)
        assert client.ended is not None and client.ended.reason == "closed"
    finally:
        resume(gateway)
        await asyncio.wait_for(client.close(), LET_GO)


# -- blocking (threads) -------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_blocking_connect_to_a_silent_peer_is_bounded(silent_peer: str, transport: str) -> None:
    client = blocking_client(transport, silent_peer)
    seconds, error = took_blocking(client.connect)
    assert isinstance(error, ConnectionLost), error
    # Socket.IO: python-engineio's handshake, then the namespace's wait, each one attempt's bound.
    assert seconds < 2 * client.attempt_timeout + SLACK, seconds
    seconds, error = took_blocking(client.close)
    assert error is None and seconds < LET_GO, (seconds, error)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_blocking_calls_are_bounded_against_a_stopped_gateway(gateway: SubprocessGateway, transport: str) -> None:
    client = blocking_client(transport, gateway.url)
    try:
        client.connect()
        client.join("bounded")
        client.join("gone")
        stop(gateway)
        calls: dict[str, Callable[[], Any]] = {
            "join": lambda: client.join("other"),
            "leave": lambda: client.leave("gone"),
            "publish": lambda: client.publish("bounded", 1),
            "emit": lambda: client.emit("echo", 1),
        }
        for name, call in calls.items():
            seconds, error = took_blocking(call)
            assert isinstance(error, TimeoutError), (name, error)
            assert seconds < REQUEST_TIMEOUT + SLACK, (name, seconds)
        seconds, error = took_blocking(client.drop)
        assert error is None and seconds < LET_GO, (seconds, error)
        resume(gateway)
        deadline = time.monotonic() + timeout(15)
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                assert "offset" in client.publish("bounded", 2)
                break
        else:
            raise AssertionError(f"{transport}: no publish went through after the gateway came back")
        stop(gateway)
        seconds, error = took_blocking(client.close)
        assert error is None and seconds < LET_GO, (seconds, error)
        assert client.ended is not None and client.ended.reason == "closed"
    finally:
        resume(gateway)
        client.close()
