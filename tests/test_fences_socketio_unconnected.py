"""``gateway.fences.socketio_unconnected``: an event for a namespace its connection is not
connected to gets an error ack (``session_closed``) and is counted, where python-socketio alone
drops it with a log line. Real gateway, raw Engine.IO long-polling over httpx; if python-socketio
stops routing events through ``_handle_event``, no ack comes and these tests fail.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest

from gateway.metrics import read

from .servers import ThreadedGateway
from .test_sio_multiplex import Polling


@pytest.fixture(scope="module")
def gw() -> Iterator[ThreadedGateway]:
    gateway = ThreadedGateway().start()
    yield gateway
    gateway.stop()


def not_connected(gw: ThreadedGateway) -> float:
    samples = read(gw.gateway.metrics.render()).get("gateway_dropped_total", [])
    return sum(value for labels, value in samples if labels.get("reason") == "not_connected")


async def test_an_event_before_connecting_gets_an_error_ack(gw: ThreadedGateway, http: httpx.AsyncClient) -> None:
    conn = await Polling(http).open(connect=False)
    before = not_connected(gw)
    await conn.send('42/bench,["echo","no ack asked"]', '42/bench,7["publish",{"room":"r","data":1}]')
    [ack] = await conn.own_poll()
    assert ack.startswith("43/bench,7["), ack
    [answer] = orjson.loads(ack[len("43/bench,7"):])
    assert answer["ok"] is False and answer["error"]["code"] == "session_closed", answer
    assert not_connected(gw) == before + 2  # both counted, only the one that asked is answered


async def test_an_event_after_the_namespace_was_disconnected_gets_an_error_ack(http: httpx.AsyncClient) -> None:
    conn = await Polling(http).open()
    got = await conn.own_poll()
    assert any(p.startswith("40/bench,{") for p in got), got
    await conn.send("41/bench,")  # the client leaves the namespace; the Engine.IO connection stays
    await conn.send('42/bench,3["echo","late"]')
    packets: list[str] = []
    for _ in range(3):  # the ack, or a ping first at worst
        packets += await conn.own_poll()
        if any(p.startswith("43/bench,3") for p in packets):
            break
    [answer] = orjson.loads(next(p for p in packets if p.startswith("43/bench,3"))[len("43/bench,3"):])
    assert answer["error"]["code"] == "session_closed", answer
