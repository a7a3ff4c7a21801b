"""SSE poll mode (`mode=poll`, behind proxies that buffer responses) and presence: a session
between two polls has not left its rooms. Announced, each gap between polls (as long as the
next poll waits for one of the browser's six connections) ended every other member's poll with
a presence.leave, and their next polls with a presence.join: ten tabs behind a buffering proxy
re-polled ~3 times a second each while idle. Closed, the session leaves at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from gateway.metrics import read

from .servers import ThreadedGateway, timeout, wait_state

GAP = 0.6  # s between two polls of a session: three presence_event_windows


@pytest.fixture(scope="module")
def gw() -> Iterator[ThreadedGateway]:
    # Polls held 1 s when nothing comes, so that a session polls a few times in a test.
    gateway = ThreadedGateway(ping_interval=1.0, ping_timeout=20.0).start()
    yield gateway
    gateway.stop()


@pytest.fixture
async def http(gw: ThreadedGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gw.url, timeout=timeout(10)) as client:
        yield client


class Poller:
    """One session of /chat (presence events on) in poll mode, polled by hand."""

    def __init__(self, http: httpx.AsyncClient, name: str) -> None:
        self.http, self.name = http, name
        self.cursor: str | None = None
        self.sid = self.key = ""

    async def poll(self) -> list[tuple[str, Any]]:
        """One poll (the first opens the session): the events it brought."""
        headers = {"Last-Event-ID": self.cursor} if self.cursor else {}
        r = await self.http.get("/sse/connect", params={"namespace": "/chat", "name": self.name, "mode": "poll"},
                                headers=headers)
        assert r.status_code == 200, r.text
        events, event = [], "message"
        for line in r.text.splitlines():
            if line.startswith("id: "):
                self.cursor = line[4:]
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = orjson.loads(line[6:])
                events.append((event, data))
                if event == "open":
                    self.sid, self.key = data["sid"], data["key"]
            elif not line:
                event = "message"
        return events

    async def post(self, what: str, body: dict[str, Any]) -> Any:
        r = await self.http.post(f"/sse/sessions/{self.sid}/{what}", json=body, headers={"X-Session-Key": self.key})
        assert r.status_code == 200, r.text
        return r.json()


def names(answer: dict[str, Any]) -> set[str]:
    return {m["claims"]["name"] for m in answer["result"]["members"]}


def leaves(gw: ThreadedGateway) -> float:
    """Presence exits on the node."""
    samples = read(gw.gateway.metrics.render())
    return sum(v for labels, v in samples.get("gateway_presence_changes_total", []) if labels.get("change") == "leave")


async def test_a_session_between_polls_stays_present_and_leaves_when_closed(
    gw: ThreadedGateway, http: httpx.AsyncClient
) -> None:
    room = "poll-presence"
    a, b = Poller(http, "a"), Poller(http, "b")
    for p in (a, b):
        await p.poll()  # the handshake: answered at once
        await p.post("join", {"room": room})
    seen: list[tuple[str, Any]] = []  # what b's polls brought

    async def keep_polling() -> None:
        while True:
            seen.extend(await b.poll())

    polling = asyncio.create_task(keep_polling())
    try:
        await a.poll()  # live: a and b in presence (b since its first poll after the join)
        deadline = asyncio.get_running_loop().time() + timeout(5)
        while names(await b.post("presence", {"room": room})) != {"a", "b"}:
            assert asyncio.get_running_loop().time() < deadline, await b.post("presence", {"room": room})
            await asyncio.sleep(0.05)
        before = leaves(gw)
        for _ in range(3):  # a polls, then is away GAP before its next poll (the scenario, not a wait)
            await a.poll()
            assert names(await b.post("presence", {"room": room})) == {"a", "b"}
            await asyncio.sleep(GAP)
        assert leaves(gw) == before, "a session between two polls was taken out of presence"
        assert not [e for e, _ in seen if e == "presence.leave"], seen
        # Closed (DELETE) between polls: out at once, and announced.
        assert (await http.delete(f"/sse/sessions/{a.sid}", headers={"X-Session-Key": a.key})).status_code == 204
        await wait_state(lambda: any(e == "presence.leave" for e, _ in seen), 5, f"no presence.leave: {seen}")
        left = [d for e, d in seen if e == "presence.leave"]
        assert [m["claims"]["name"] for m in left[0]["data"]["members"]] == ["a"], left
        assert names(await b.post("presence", {"room": room})) == {"b"}
    finally:
        polling.cancel()
