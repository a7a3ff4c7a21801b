"""One long-poll for many Socket.IO long-polling connections (``/sio/multiplex``,
gateway/transports/socketio_multiplex.py), over httpx against a real gateway: Engine.IO
handshakes and POSTs of our own on ``/socket.io/``, and their packets read through shared
polls: every connection's packets come, room events in order and once each; an answer that
was lost is sent again; a wake and a newer poll end a waiting one; bad input is refused and
takes nothing; a connection named by anything but its own Engine.IO sid is not reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from gateway.metrics import read

from .servers import ThreadedGateway, timeout

PROBLEM = "application/problem+json"
SEP = "\x1e"


@pytest.fixture(scope="module")
def gw() -> Iterator[ThreadedGateway]:
    gateway = ThreadedGateway(multiplex_max_sessions=3).start()
    yield gateway
    gateway.stop()


class Polling:
    """One Engine.IO long-polling connection made with httpx, in namespace /bench."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.sid = ""
        self.n = 0  # answers of the shared poll had
        self.packets: list[str] = []  # every packet it was sent, in order

    async def open(self, connect: bool = True) -> Polling:
        """The Engine.IO handshake, then (``connect``) Socket.IO's CONNECT to /bench."""
        answer = await self.http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        assert answer.status_code == 200 and answer.text.startswith("0"), answer.text
        self.sid = orjson.loads(answer.text[1:])["sid"]
        if connect:
            await self.send("40/bench,{}")
        return self

    async def send(self, *packets: str) -> None:
        answer = await self.http.post("/socket.io/", params={"EIO": "4", "transport": "polling", "sid": self.sid},
                                      content=SEP.join(packets), headers={"Content-Type": "text/plain"})
        assert answer.text.lower() == "ok", answer.text

    async def own_poll(self) -> list[str]:
        answer = await self.http.get("/socket.io/", params={"EIO": "4", "transport": "polling", "sid": self.sid})
        assert answer.status_code == 200, answer.text
        return answer.text.split(SEP)

    def events(self, name: str) -> list[Any]:
        """The arguments of every ``name`` event it was sent."""
        head = f'42/bench,["{name}",'
        return [orjson.loads(p[len("42/bench,"):])[1:] for p in self.packets if p.startswith(head)]


def hold_id() -> str:
    return secrets.token_urlsafe(12)


async def shared(http: httpx.AsyncClient, named: dict[str, int], hold: str | None = None) -> httpx.Response:
    params = [("hold", hold or hold_id()), *(("s", f"{sid}.{n}") for sid, n in named.items())]
    return await http.get("/sio/multiplex", params=params)


async def read_until(http: httpx.AsyncClient, conns: list[Polling], done: Any, within: float = 10) -> None:
    """Shared polls for ``conns`` until ``done()``; each answer's packets are added to its connection."""
    deadline = time.monotonic() + timeout(within)
    by_sid = {c.sid: c for c in conns}
    while not done():
        assert time.monotonic() < deadline, [c.packets for c in conns]
        answer = await asyncio.wait_for(shared(http, {c.sid: c.n for c in conns}), timeout(within))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["gone"] == [], body
        for sid, payload in body["payloads"].items():
            conn = by_sid[sid]
            assert payload["n"] == conn.n + 1, (payload, conn.n)
            conn.n = payload["n"]
            conn.packets += payload["data"].split(SEP)


async def connected(http: httpx.AsyncClient, *conns: Polling) -> None:
    await read_until(http, list(conns), lambda: all(any(p.startswith("40/bench,{") for p in c.packets) for c in conns))


async def metric(http: httpx.AsyncClient, name: str) -> float:
    return sum(value for _, value in read((await http.get("/metrics")).content).get(name, []))


async def parked(http: httpx.AsyncClient, polls: int) -> None:
    """Wait (bounded) until ``polls`` shared polls wait on the gateway."""
    deadline = time.monotonic() + timeout(10)
    while await metric(http, "gateway_shared_polls") != polls:
        assert time.monotonic() < deadline, f"{polls} shared polls never waited"
        await asyncio.sleep(0.02)


async def test_one_poll_carries_every_connection_and_their_room_events_in_order(http: httpx.AsyncClient) -> None:
    reader, writer = await Polling(http).open(), await Polling(http).open()
    await connected(http, reader, writer)
    await reader.send('42/bench,1["join",{"room":"shared-poll"}]')
    await writer.send('42/bench,1["join",{"room":"shared-poll"}]')
    await read_until(http, [reader, writer], lambda: all(any(p.startswith("43/bench,1") for p in c.packets)
                                                         for c in (reader, writer)))
    count = 30
    await writer.send(*(f'42/bench,{i + 2}["publish",{{"room":"shared-poll","data":{{"i":{i}}}}}]' for i in range(count)))
    await read_until(http, [reader, writer], lambda: len(reader.events("message")) >= count)
    assert [args[0]["data"]["i"] for args in reader.events("message")] == list(range(count))  # once each, in order
    assert writer.events("message") == []  # a publisher is not sent its own


async def test_an_answer_that_was_lost_is_sent_again(http: httpx.AsyncClient) -> None:
    conn = await Polling(http).open()
    await connected(http, conn)
    again = await shared(http, {conn.sid: conn.n - 1})  # the caller says the last answer never came
    assert again.status_code == 200
    payload = again.json()["payloads"][conn.sid]
    assert payload["n"] == conn.n and payload["data"].split(SEP) == conn.packets[-len(payload["data"].split(SEP)):]


async def test_an_answer_kept_for_a_resend_counts_as_held_output_until_the_next_poll(
    gw: ThreadedGateway, http: httpx.AsyncClient
) -> None:
    sio = gw.gateway.transports["socketio"]
    before = sio.resend_bytes  # type: ignore[attr-defined]
    conn = await Polling(http).open()
    await connected(http, conn)
    kept = sio.resend_bytes - before  # type: ignore[attr-defined]
    assert kept > 0  # the answer that carried the CONNECT, kept in case it was lost
    hold = hold_id()
    waiting = asyncio.ensure_future(shared(http, {conn.sid: conn.n}, hold))  # it arrived
    await parked(http, 1)
    assert sio.resend_bytes == before  # type: ignore[attr-defined]
    assert (await http.post("/sio/multiplex/wake", params={"hold": hold})).status_code == 204
    answer = await asyncio.wait_for(waiting, timeout(10))
    assert answer.json() == {"payloads": {}, "gone": []}
    again = await shared(http, {conn.sid: conn.n - 1})  # too late to ask for it again
    assert again.json()["gone"] == [conn.sid]


async def test_a_wake_and_a_newer_poll_end_a_waiting_one(http: httpx.AsyncClient) -> None:
    conn = await Polling(http).open()
    await connected(http, conn)
    first_hold = hold_id()
    first = asyncio.ensure_future(shared(http, {conn.sid: conn.n}, first_hold))
    await parked(http, 1)
    assert await metric(http, "gateway_shared_poll_connections") == 1
    same = await shared(http, {conn.sid: conn.n}, first_hold)  # one poll per hold id
    assert same.status_code == 422 and same.json()["code"] == "validation_error"
    second_hold = hold_id()
    second = asyncio.ensure_future(shared(http, {conn.sid: conn.n}, second_hold))  # takes the connection over
    answer = await asyncio.wait_for(first, timeout(10))
    assert answer.json() == {"payloads": {}, "gone": []}
    await parked(http, 1)
    woken = await http.post("/sio/multiplex/wake", params={"hold": second_hold})
    assert woken.status_code == 204
    assert (await asyncio.wait_for(second, timeout(10))).json() == {"payloads": {}, "gone": []}
    # Nothing was taken meanwhile: a packet sent now is the next answer's.
    await conn.send('42/bench,1["echo","still here"]')
    await read_until(http, [conn], lambda: any(p.startswith("43/bench,1") for p in conn.packets))


async def test_a_poll_whose_client_left_ends_and_loses_nothing(gw: ThreadedGateway, http: httpx.AsyncClient) -> None:
    conn = await Polling(http).open()
    await connected(http, conn)
    async with httpx.AsyncClient(base_url=gw.url, timeout=timeout(40)) as other:
        waiting = asyncio.ensure_future(shared(other, {conn.sid: conn.n}))
        await parked(http, 1)
        waiting.cancel()  # the client goes: its connection is closed
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    await parked(http, 0)
    await conn.send('42/bench,1["echo","after"]')
    await read_until(http, [conn], lambda: any(p.startswith("43/bench,1") for p in conn.packets))


# CONN: the test's connection, named beside the bad part (a refused poll must not take its packets).
@pytest.mark.parametrize("params", [
    [("hold", "short"), ("s", "CONN.0")],
    [("hold", "a-valid-hold-id")],
    [("hold", "a-valid-hold-id"), ("s", "CONN.0"), ("s", "no-count")],
    [("hold", "a-valid-hold-id"), ("s", "CONN.0"), ("s", "abc.-1")],
    [("hold", "a-valid-hold-id"), ("s", "CONN.0"), *(("s", f"sid{i}.0") for i in range(3))],  # over the limit of 3
], ids=["short-hold", "no-connection", "no-count", "negative-count", "too-many"])
async def test_bad_polls_are_refused_and_take_nothing(http: httpx.AsyncClient, params: list[tuple[str, str]]) -> None:
    conn = await Polling(http).open()
    answer = await http.get("/sio/multiplex", params=[(k, v.replace("CONN", conn.sid)) for k, v in params])
    assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM, answer.text
    assert answer.json()["code"] == "validation_error"
    assert any(p.startswith("40/bench,{") for p in await conn.own_poll())  # its packets are still there


async def test_waking_an_unknown_poll_is_not_found(http: httpx.AsyncClient) -> None:
    answer = await http.post("/sio/multiplex/wake", params={"hold": hold_id()})
    assert answer.status_code == 404 and answer.headers["content-type"] == PROBLEM
    assert answer.json()["code"] == "not_found"


async def test_only_the_engineio_sid_reaches_a_connection(http: httpx.AsyncClient) -> None:
    """Its public Socket.IO id (what rooms show), an unknown sid, or its own with a count it was
    never given: each is gone, and the connection's packets stay for its own poll."""
    conn = await Polling(http).open()
    await conn.send('42/bench,1["echo","x"]')
    mine = await conn.own_poll()
    public = orjson.loads(next(p for p in mine if p.startswith("40/bench,"))[len("40/bench,"):])["sid"]
    await conn.send('42/bench,2["echo","y"]')
    for named in ({public: 0}, {"nosuchconnection0000": 0}, {conn.sid: 5}):
        answer = await shared(http, named)
        assert answer.json() == {"payloads": {}, "gone": list(named)}, answer.text
    deadline = time.monotonic() + timeout(10)
    got: list[str] = []
    while not any(p.startswith("43/bench,2") for p in got):
        assert time.monotonic() < deadline, got
        got += await conn.own_poll()


async def test_a_closed_connection_is_gone(http: httpx.AsyncClient) -> None:
    conn = await Polling(http).open()
    await connected(http, conn)
    await conn.send("1")  # Engine.IO close
    answer = await shared(http, {conn.sid: conn.n})
    assert answer.json()["gone"] == [conn.sid], answer.text
