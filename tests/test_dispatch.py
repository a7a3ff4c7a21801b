"""One dispatch: every request, routed between two nodes on Redis, arrives typed and is checked again.

An SSE session is held by node A; its POSTs go to node B, which routes them (as
``request.encode()``) to A, where ``decode_request`` reads them back and
``Gateway.handle`` runs them: the answers and the frames on A's stream are those of a
request made on A itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gateway.brokers.base import Command
from gateway.wire.errors import UnknownEvent, ValidationFailed

from .drivers import SseDriver, expect_error
from .servers import REDIS_URL, ThreadedGateway, timeout


@pytest.fixture(scope="module")
def nodes(redis_prefix: str) -> Iterator[tuple[ThreadedGateway, ThreadedGateway]]:
    settings: dict[str, Any] = {
        "broker": REDIS_URL, "redis_prefix": f"{redis_prefix}-dispatch", "ping_interval": 1.0, "ping_timeout": 1.0,
    }
    a, b = ThreadedGateway(**settings).start(), ThreadedGateway(**settings).start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
async def pair(nodes: tuple[ThreadedGateway, ThreadedGateway]) -> AsyncIterator[tuple[SseDriver, SseDriver]]:
    """The session's stream on node A, and a poster of its requests on node B."""
    a, b = nodes
    stream, poster = SseDriver(a.url), SseDriver(b.url)
    await stream.connect("/chat")
    poster.sid, poster.key = stream.sid, stream.key
    yield stream, poster
    await poster.http.aclose()
    await stream.close()


async def test_every_request_routed_to_the_node_holding_the_session(
    nodes: tuple[ThreadedGateway, ThreadedGateway], pair: tuple[SseDriver, SseDriver]
) -> None:
    a, b = nodes
    stream, poster = pair
    assert stream.sid is not None
    assert stream.sid in a.gateway.sessions and stream.sid not in b.gateway.sessions

    joined = await poster.join("dispatch-room")
    assert set(joined) == {"room", "offset"}
    await stream.until(lambda: any(f["room"] == "dispatch-room" for f in stream.control("joined")), what="joined")

    published = await poster.publish("dispatch-room", {"n": 1}, includeSelf=True, clientEventId="c-1")
    [event] = await stream.wait_room_events("dispatch-room", 1)
    assert (event["data"], event["offset"], event["clientEventId"]) == ({"n": 1}, published["offset"], "c-1")

    assert await poster.emit("echo", [1, {"x": None}]) == [1, {"x": None}]
    await expect_error("unknown_event", poster.emit("no-such-handler"))

    assert a.loop is not None  # the call runs on A; its ack comes through B
    pending = asyncio.run_coroutine_threadsafe(
        a.gateway.call("/chat", stream.sid, "ping", {"q": 1}, timeout=timeout(5)), a.loop
    )
    await stream.until(lambda: bool(stream.control("call")), what="call")
    [asked] = stream.control("call")
    acked = await poster.ack(asked["ackId"], {"pong": True})
    assert acked.status_code == 204, acked.text
    assert await asyncio.wrap_future(pending) == {"pong": True}

    assert await poster.leave("dispatch-room") == {"room": "dispatch-room"}
    await stream.until(lambda: bool(stream.control("left")), what="left")

    closed = await poster.http.delete(f"/sse/sessions/{stream.sid}", headers=poster.key_header())
    assert closed.status_code == 204, closed.text
    await stream.until(lambda: stream.frames[-1][0] == "__end__", what="the stream to end")
    assert a.session_state(stream.sid) is None


async def test_invalid_bodies_are_refused_before_routing(pair: tuple[SseDriver, SseDriver]) -> None:
    _, poster = pair
    bad = await poster.post("publish", {"room": "r", "event": "open", "surprise": 1})
    assert bad.status_code == 422 and {e["field"] for e in bad.json()["errors"]} == {"surprise"}
    await expect_error("validation_error", poster.join("no spaces"))
    await expect_error("malformed_json", poster.request("join", b"{nope"))


async def test_a_routed_command_is_decoded_again_by_the_node_that_runs_it(
    nodes: tuple[ThreadedGateway, ThreadedGateway], pair: tuple[SseDriver, SseDriver]
) -> None:
    """What arrives from another node is a request like any other: the receiving node checks it."""
    a, b = nodes
    stream, _ = pair
    assert stream.sid is not None
    node_a = a.gateway.broker.node
    with pytest.raises(ValidationFailed):
        await b.arun(b.gateway.broker.route(node_a, Command("join", stream.sid, {"room": "a b"}), timeout(5)))
    with pytest.raises(UnknownEvent):
        await b.arun(b.gateway.broker.route(node_a, Command("explode", stream.sid, {}), timeout(5)))
    answer = await b.arun(b.gateway.broker.route(node_a, Command("join", stream.sid, {"room": "routed"}), timeout(5)))
    await stream.until(lambda: bool(stream.control("joined")), what="joined")
    assert answer == stream.control("joined")[-1] == {"room": "routed", "offset": answer["offset"]}


async def test_an_emitter_publish_reaches_a_client_of_a_gateway_on_redis(
    nodes: tuple[ThreadedGateway, ThreadedGateway], pair: tuple[SseDriver, SseDriver]
) -> None:
    """The Emitter runs the broker's own script with the broker's own keys (``publish_call``)."""
    from gateway.brokers.emitter import Emitter

    a, _ = nodes
    stream, _ = pair
    joined = await stream.join("emitted")
    emitter = Emitter(REDIS_URL, prefix=a.settings.redis_prefix)
    try:
        offset = await asyncio.to_thread(emitter.publish, "/chat", "emitted", "news", {"n": 7})
    finally:
        emitter.close()
    [event] = await stream.wait_room_events("emitted", 1)
    assert (event["event"], event["data"], event["offset"], event["sender"]) == ("news", {"n": 7}, offset, None)
    logged = await a.arun(a.gateway.broker.replay("/chat", "emitted", joined["offset"]))
    assert [e.offset for e in logged.events] == [offset] and logged.complete
