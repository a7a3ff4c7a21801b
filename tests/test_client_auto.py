"""``transport="auto"`` of the Python clients (``rtclient.AutoClient``, ``BlockingClient``'s
default) behind the comparison's proxy profiles and the real nginx blocking configuration: the
transport it ends on, nothing lost or repeated across a move made during a burst, and the time
to a first usable session against every fixed choice."""

from __future__ import annotations

import asyncio
import pathlib
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rtclient import AutoClient, RoomEvent, SocketIOClient, SseClient, TransportChanged, network_memory
from rtclient.blocking import BlockingClient
from rtclient.protocol import ClientEvent
from rtclient.reconnect import AutoPlan, NetworkMemory

from .servers import ThreadedGateway, timeout
from .test_js_auto import NETWORKS, Route

NOISE_MS = 40.0


@pytest.fixture(scope="module")
def gateway() -> Iterator[ThreadedGateway]:
    server = ThreadedGateway(address_session_burst=1000).start()
    yield server
    server.stop()


ENDS_ON = {"passthrough": "websocket", "block-websocket": "sse", "buffering": "websocket", "nginx": "sse"}


@pytest.mark.parametrize("name", list(ENDS_ON))
async def test_asyncio_auto_ends_on_the_transport_the_network_allows(
    gateway: ThreadedGateway, tmp_path: pathlib.Path, name: str
) -> None:
    route = Route(NETWORKS[name], gateway, tmp_path)
    network_memory.forget(route.url)
    client = AutoClient(route.url, "/chat", request_timeout=timeout(10))
    seen: list[str] = []
    client.on("transport", lambda e: seen.append(e.name) if isinstance(e, TransportChanged) else None)
    try:
        await client.connect()
        await client.join("ends")
        deadline = time.monotonic() + timeout(5)
        while client.transport_name != ENDS_ON[name] and time.monotonic() < deadline:  # noqa: ASYNC110 -- a bounded poll of client state
            await asyncio.sleep(0.05)
        assert (await client.publish("ends", 1))["room"] == "ends"
        history = [f"{a.transport}:{a.outcome}" for a in client.history]
        assert client.transport_name == ENDS_ON[name], history
        assert client.state.stats.reconnects == 0, history
        if name == "passthrough":
            assert seen == ["sse", "websocket"] and "websocket:moved" in history, history
        if name in ("block-websocket", "nginx"):
            assert "websocket:failed" in history and network_memory.recall(route.url) == {"websocket": "failed"}
            again = AutoClient(route.url, "/chat", request_timeout=timeout(10))  # remembered: no probe
            await again.connect()
            await again.close()
            assert [a.transport for a in again.history] == ["sse", "sse"], again.history
    finally:
        await client.close()
        route.stop()


@pytest.mark.parametrize("name", ["passthrough", "block-websocket"])
def test_blocking_auto_is_the_default_and_ends_where_the_network_allows(
    gateway: ThreadedGateway, tmp_path: pathlib.Path, name: str
) -> None:
    route = Route(NETWORKS[name], gateway, tmp_path)
    network_memory.forget(route.url)
    moved = threading.Event()
    seen: list[str] = []

    def on_event(event: ClientEvent) -> None:
        if isinstance(event, TransportChanged):
            seen.append(event.name)
            if event.name == ENDS_ON[name]:
                moved.set()

    client = BlockingClient(route.url, "/chat", on_event=on_event, request_timeout=timeout(10))
    try:
        client.connect()
        client.join("ends")
        assert moved.wait(timeout(5)), client.history
        assert client.publish("ends", 1)["room"] == "ends"
        assert client.transport_name == ENDS_ON[name]
        assert seen == (["sse", "websocket"] if name == "passthrough" else ["sse"]), client.history
    finally:
        client.close()
        route.stop()


async def _publish(url: str, room: str, total: int) -> None:
    publisher = SseClient(url, "/chat", request_timeout=timeout(10))
    await publisher.connect()
    await publisher.join(room)
    try:
        for n in range(total):
            await publisher.publish(room, n)
            await asyncio.sleep(0.004)
    finally:
        await publisher.close()


def _report(kind: str, received: list[int], total: int) -> str:
    """Counts from the first event received (the receiver joins while the burst is under way)."""
    expected = total - (received[0] if received else 0)
    return (f"{kind}: received {len(received)}, unique {len(set(received))}, "
            f"missing {expected - len(set(received))}, duplicates {len(received) - len(set(received))}")


async def test_asyncio_auto_moves_during_a_burst_losing_and_repeating_nothing(
    gateway: ThreadedGateway, tmp_path: pathlib.Path
) -> None:
    total = 300
    route = Route(NETWORKS["passthrough"], gateway, tmp_path)
    network_memory.forget(route.url)
    received: list[int] = []
    moved_at: list[int] = []
    client = AutoClient(route.url, "/chat", request_timeout=timeout(10), upgrade_delay=0.3)
    client.on("event", lambda e: received.append(e.data) if isinstance(e, RoomEvent) else None)
    client.on("transport", lambda e: moved_at.append(len(received)))
    try:
        room = "auto-burst-aio"
        publishing = asyncio.create_task(_publish(gateway.url, room, total))
        await client.connect()  # a publisher is already sending: the move comes mid-burst
        await client.join(room)
        await publishing
        deadline = time.monotonic() + timeout(10)
        while len(received) < total and time.monotonic() < deadline and received[-1:] != [total - 1]:  # noqa: ASYNC110 -- a bounded poll of client state
            await asyncio.sleep(0.05)
        print("\n" + _report("asyncio auto", received, total), "transport events at", moved_at)
        first = received[0] if received else 0
        assert received == list(range(first, total)), _report("asyncio", received, total)
        assert client.transport_name == "websocket" and client.state.stats.reconnects == 0
        assert any(0 < at < len(received) for at in moved_at[1:]), f"no move during the burst: {moved_at}"
    finally:
        await client.close()
        route.stop()


async def test_blocking_auto_moves_during_a_burst_losing_and_repeating_nothing(
    gateway: ThreadedGateway, tmp_path: pathlib.Path
) -> None:
    total = 300
    route = Route(NETWORKS["passthrough"], gateway, tmp_path)
    network_memory.forget(route.url)
    received: list[int] = []
    moved_at: list[int] = []

    def on_event(event: ClientEvent) -> None:
        if isinstance(event, RoomEvent):
            received.append(event.data)
        elif isinstance(event, TransportChanged):
            moved_at.append(len(received))

    client = BlockingClient(route.url, "/chat", on_event=on_event, request_timeout=timeout(10), upgrade_delay=0.3)
    room = "auto-burst-blocking"
    try:
        publishing = asyncio.create_task(_publish(gateway.url, room, total))
        await asyncio.to_thread(client.connect)
        await asyncio.to_thread(client.join, room)
        await publishing
        deadline = time.monotonic() + timeout(10)
        while received[-1:] != [total - 1] and time.monotonic() < deadline:  # noqa: ASYNC110 -- a bounded poll of client state
            await asyncio.sleep(0.05)
        print("\n" + _report("blocking auto", received, total), "transport events at", moved_at)
        first = received[0] if received else 0
        assert received == list(range(first, total)), _report("blocking", received, total)
        assert client.transport_name == "websocket" and client.state.stats.reconnects == 0
        assert any(0 < at < len(received) for at in moved_at[1:]), f"no move during the burst: {moved_at}"
    finally:
        await asyncio.to_thread(client.close)
        route.stop()


async def _first_session_ms(url: str, transport: str) -> float:
    network_memory.forget(url)
    client: Any
    if transport == "auto":
        client = AutoClient(url, "/chat", request_timeout=timeout(10))
    elif transport == "sse":
        client = SseClient(url, "/chat", request_timeout=timeout(10))
    else:
        client = SocketIOClient(url, "/chat", request_timeout=timeout(10),
                                transports=None if transport == "socketio" else [transport])
    start = time.perf_counter()
    try:
        await client.connect()
        return (time.perf_counter() - start) * 1000
    finally:
        await client.close()


async def test_asyncio_auto_first_usable_session_is_as_quick_as_the_best_fixed_choice(
    gateway: ThreadedGateway, tmp_path: pathlib.Path
) -> None:
    """ms from connect() to the open session, median of 3, per route: auto within the best
    fixed choice + one round trip + NOISE_MS (behind buffering, fixed SSE waits out its
    buffer_timeout: measured once)."""
    fixed = ["sse", "websocket", "polling"]
    rows = []
    await _first_session_ms(gateway.url, "websocket")  # imports and first-use costs out of the way
    for name in ("passthrough", "block-websocket", "buffering", "nginx"):
        route = Route(NETWORKS[name], gateway, tmp_path / name)
        try:
            rtt = route.rtt_ms()
            times: dict[str, float] = {}
            for transport in ["auto", *fixed]:
                runs = 1 if (transport == "sse" and name == "buffering") else 3
                samples = []
                for _ in range(runs):
                    try:
                        samples.append(await _first_session_ms(route.url, transport))
                    except Exception:
                        samples.append(float("inf"))  # refused behind this route
                times[transport] = statistics.median(samples)
        finally:
            route.stop()
        rows.append((name, rtt, times, min(fixed, key=lambda t: times[t])))
    lines = ["| route | RTT ms | auto | sse | websocket | polling | best fixed |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {n} | {rtt:.2f} | " + " | ".join(f"{t[k]:.1f}" for k in ["auto", *fixed]) + f" | {best} |"
              for n, rtt, t, best in rows]
    table = "\n".join(lines)
    print("\n" + table)
    for name, rtt, times, best in rows:
        allowed = times[best] + rtt + NOISE_MS * timeout(1)
        assert times["auto"] <= allowed, f"{name}: auto {times['auto']:.1f} ms > {allowed:.1f} ms\n{table}"


# -- the plan, sans-I/O ---------------------------------------------------------------------


def test_plan_remembers_a_refused_websocket_only_once_another_transport_got_through() -> None:
    memory = NetworkMemory()
    plan = AutoPlan("http://gw", remember=60, memory=memory)
    assert plan.next() == "sse" and plan.probe_beside("sse")
    plan.failed("websocket", ConnectionError("refused"))  # nothing else got through yet
    assert memory.recall("http://gw") == {}
    plan.opened("sse")
    assert memory.recall("http://gw") == {"websocket": "failed"}
    assert not AutoPlan("http://gw", memory=memory).probe_beside("sse")
    assert memory.recall("http://gw", now=time.monotonic() + 61) == {}  # forgotten after a while


def test_plan_goes_to_polling_after_sse_fails_for_the_network_and_back_on_websocket() -> None:
    plan = AutoPlan("http://gw", memory=NetworkMemory())
    plan.failed("sse", ConnectionError("reset"))
    assert plan.next() == "sse"
    plan.failed("sse", ConnectionError("reset"))
    assert plan.next() == "polling"
    plan.opened("polling")
    assert plan.memory.recall("http://gw") == {"sse": "failed"}
    plan.opened("websocket")
    assert plan.next() == "websocket"  # a reconnect goes straight back to what carried it
    plan.buffered()
    assert not plan.probe_beside("sse-poll")


def test_plan_at_engine_open() -> None:
    assert AutoPlan.at_engine_open(sse_opened=True, sse_answered=True, waited=False) == "move"
    assert AutoPlan.at_engine_open(sse_opened=False, sse_answered=True, waited=False) == "take over"
    assert AutoPlan.at_engine_open(sse_opened=False, sse_answered=False, waited=False) == "wait"
    assert AutoPlan.at_engine_open(sse_opened=False, sse_answered=False, waited=True) == "take over"
