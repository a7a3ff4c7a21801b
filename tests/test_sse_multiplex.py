"""One SSE stream for many sessions (``/sse/multiplex``, gateway/transports/sse_multiplex.py),
over httpx against a real gateway: attaching takes the session's key (the carrier's alone
grants nothing), frames are tagged per session, each session resumes from its own cursor
after its carrier is cut, and the limits hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import EventSource

from gateway.wire.offsets import parse_cursor

from .drivers import SseDriver
from .servers import SubprocessGateway, ThreadedGateway, timeout, wait_state

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def gw() -> Iterator[ThreadedGateway]:
    gateway = ThreadedGateway(multiplex_max_sessions=3, recovery_window=30.0).start()
    yield gateway
    gateway.stop()


class Carrier:
    """A carrier read with httpx: its own frames, and each session's frames by sid."""

    def __init__(self, url: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=timeout(10))
        self.frames: list[tuple[str, Any]] = []  # (SSE event, data), in order
        self.id = self.key = ""
        self._changed = asyncio.Event()
        self._stream: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> Carrier:
        self._stream = self.http.stream("GET", "/sse/multiplex")
        response = await self._stream.__aenter__()
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        self._reader = asyncio.create_task(self._read(response))
        await self.until(lambda: bool(self.own("carrier")), "the carrier frame")
        hello = self.own("carrier")[0]
        self.id, self.key = hello["carrier"], hello["key"]
        return self

    async def _read(self, response: httpx.Response) -> None:
        with contextlib.suppress(httpx.HTTPError):
            async for sse in EventSource(response).aiter_sse():
                assert not sse.id, "a carrier has no id: lines of its own"
                self.frames.append((sse.event, orjson.loads(sse.data)))
                self._changed.set()
        self.frames.append(("__end__", None))
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        async def watch() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(watch(), timeout(5))
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; got {self.frames[-8:]}") from None

    def own(self, event: str) -> list[Any]:
        """The carrier's own frames named ``event`` (carrier, detached, close)."""
        return [d for e, d in self.frames if e == event]

    def of(self, sid: str) -> list[dict[str, Any]]:
        """The frames of session ``sid``: ``{"sid", "event", "id"?, "data"}`` each."""
        return [d for e, d in self.frames if e == "message" and d["sid"] == sid]

    def named(self, sid: str, event: str) -> list[Any]:
        return [f["data"] for f in self.of(sid) if f["event"] == event]

    def cursor(self, sid: str) -> str:
        return [f["id"] for f in self.of(sid) if "id" in f][-1]

    async def attach(self, *, headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
                     carrier_key: str | None = None, carrier_id: str | None = None) -> httpx.Response:
        head = {"X-Carrier-Key": self.key if carrier_key is None else carrier_key, **(headers or {})}
        query = {"namespace": "/chat", **(params or {})}
        return await self.http.post(f"/sse/multiplex/{carrier_id or self.id}/attach", params=query, headers=head)

    async def attached(self, **kwargs: Any) -> tuple[str, str]:
        """Attach (new or resumed), await the session's open frame: its sid and key."""
        response = await self.attach(**kwargs)
        assert response.status_code == 200, response.text
        sid = response.json()["result"]["sid"]
        await self.until(lambda: bool(self.named(sid, "open")), f"{sid}'s open")
        return sid, self.named(sid, "open")[-1]["key"]

    async def detach(self, sid: str, key: str | None, carrier_key: str | None = None) -> httpx.Response:
        head = {"X-Carrier-Key": self.key if carrier_key is None else carrier_key}
        if key is not None:
            head["X-Session-Key"] = key
        return await self.http.post(f"/sse/multiplex/{self.id}/detach", params={"sid": sid}, headers=head)

    async def cut(self) -> None:
        """Drop the connection, as a network failure (or a closed tab) would."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self._stream is not None:
            with contextlib.suppress(Exception):
                await self._stream.__aexit__(None, None, None)
        self._stream = self._reader = None

    async def close(self) -> None:
        await self.cut()
        await self.http.aclose()


@pytest.fixture
async def carriers(gw: ThreadedGateway) -> AsyncIterator[Callable[[], Any]]:
    made: list[Carrier] = []

    async def make() -> Carrier:
        carrier = Carrier(gw.url)
        made.append(carrier)
        return await carrier.open()

    yield make
    for carrier in made:
        await carrier.close()


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


async def post(http: httpx.AsyncClient, sid: str, key: str, op: str, body: dict[str, Any]) -> Any:
    response = await http.post(f"/sse/sessions/{sid}/{op}", json=body, headers={"X-Session-Key": key})
    assert response.status_code == 200, response.text
    return response.json()["result"]


async def test_frames_are_tagged_per_session(carriers: Callable[[], Any], gw: ThreadedGateway) -> None:
    carrier: Carrier = await carriers()
    a, a_key = await carrier.attached()
    b, b_key = await carrier.attached(params={"name": "Bea"})
    assert a != b
    for sid, key in ((a, a_key), (b, b_key)):
        await post(carrier.http, sid, key, "join", {"room": "mux-tags"})
    publisher = SseDriver(gw.url)
    await publisher.connect("/chat")
    try:
        await publisher.join("mux-tags")
        acks = [await publisher.publish("mux-tags", {"n": n}) for n in range(3)]
        for sid, key in ((a, a_key), (b, b_key)):
            await carrier.until(lambda sid=sid: len(carrier.named(sid, "message")) == 3, f"{sid}'s events")
            events = carrier.named(sid, "message")
            assert [e["offset"] for e in events] == [ack["offset"] for ack in acks]
            assert [e["data"] for e in events] == [{"n": n} for n in range(3)]
            # Each frame carries its own session's cursor, with that session's key.
            cursor_sid, cursor_key, positions = parse_cursor(carrier.cursor(sid), 100)
            assert (cursor_sid, cursor_key, positions["mux-tags"]) == (sid, key, acks[-1]["offset"])
        assert (await post(carrier.http, b, b_key, "emit", {"event": "whoami"}))["name"] == "Bea"
        # /chat announces joins (volatile presence events): they move no cursor, so carry no id,
        # and every id there is stays a cursor the gateway reads back.
        for sid in (a, b):
            for frame in carrier.of(sid):
                assert "id" not in frame or parse_cursor(frame["id"], 100)[0] == sid
                assert "id" not in frame or not frame["event"].startswith("presence."), frame
    finally:
        await publisher.close()
    assert gw.session_state(a) == gw.session_state(b) == "connected"


async def test_attaching_needs_the_sessions_key_and_a_wrong_key_changes_nothing(
    carriers: Callable[[], Any], gw: ThreadedGateway
) -> None:
    owner = SseDriver(gw.url)
    await owner.connect("/chat")
    try:
        await owner.join("mux-keys")
        carrier: Carrier = await carriers()
        cursor = owner.last_event_id
        assert cursor is not None
        forged = f"{owner.sid}:not-its-key;{cursor.partition(';')[2]}"
        problem(await carrier.attach(headers={"Last-Event-ID": forged}), 404, "unknown_sid")
        problem(await carrier.attach(params={"sid": owner.sid or ""}), 404, "unknown_sid")  # no key at all
        # The carrier's key is checked first, whatever the session's key.
        problem(await carrier.attach(headers={"Last-Event-ID": cursor}, carrier_key="wrong"), 404, "not_found")
        problem(await carrier.attach(headers={"Last-Event-ID": cursor}, carrier_id="no-such-carrier"), 404, "not_found")
        # Nothing changed: the session is still on its own stream, which still gets its events.
        assert gw.session_state(owner.sid or "") == "connected"
        assert not carrier.of(owner.sid or "") and not carrier.own("detached")
        await owner.publish("mux-keys", "still mine", includeSelf=True)
        await owner.wait_room_events("mux-keys", 1)
        assert not owner.control("close")
    finally:
        await owner.close()


async def test_a_session_detached_with_both_keys_resumes_from_its_cursor(
    carriers: Callable[[], Any], gw: ThreadedGateway
) -> None:
    carrier: Carrier = await carriers()
    sid, key = await carrier.attached()
    await post(carrier.http, sid, key, "join", {"room": "mux-detach"})
    await carrier.until(lambda: bool(carrier.named(sid, "joined")), "joined")
    # The carrier's key alone (or with a wrong session key) cannot take a session off.
    problem(await carrier.detach(sid, None), 404, "unknown_sid")
    problem(await carrier.detach(sid, "a-wrong-key"), 404, "unknown_sid")
    problem(await carrier.detach(sid, key, carrier_key="wrong"), 404, "not_found")
    assert gw.session_state(sid) == "connected" and not carrier.own("detached")
    assert (await carrier.detach(sid, key)).status_code == 204
    await carrier.until(lambda: bool(carrier.own("detached")), "detached")
    assert carrier.own("detached") == [{"sid": sid, "reason": "detached"}]
    await wait_state(lambda: gw.session_state(sid) == "detached", what="the session detached, recoverable")
    cursor = carrier.cursor(sid)
    publisher = SseDriver(gw.url)
    await publisher.connect("/chat")
    try:
        await publisher.join("mux-detach")
        missed = (await publisher.publish("mux-detach", "while detached"))["offset"]
        assert not carrier.named(sid, "message")
        assert (await carrier.attached(headers={"Last-Event-ID": cursor}))[0] == sid
        await carrier.until(lambda: bool(carrier.named(sid, "recovery")), "recovery")
        assert [e["offset"] for e in carrier.named(sid, "message")] == [missed]
    finally:
        await publisher.close()


async def test_each_session_resumes_from_its_own_cursor_after_the_carrier_is_cut(
    carriers: Callable[[], Any], gw: ThreadedGateway
) -> None:
    first: Carrier = await carriers()
    a, a_key = await first.attached()
    b, b_key = await first.attached()
    for sid, key in ((a, a_key), (b, b_key)):
        await post(first.http, sid, key, "join", {"room": "mux-resume"})
    publisher = SseDriver(gw.url)
    await publisher.connect("/chat")
    try:
        await publisher.join("mux-resume")
        before = [(await publisher.publish("mux-resume", n))["offset"] for n in range(2)]
        await first.until(lambda: all(len(first.named(s, "message")) == 2 for s in (a, b)), "the first two")
        # a last heard the first event only (its cursor then), b both: each resumes from its own.
        a_cursor = next(f["id"] for f in first.of(a) if f["event"] == "message")
        b_cursor = first.cursor(b)
        await first.cut()
        await wait_state(lambda: gw.session_state(a) == gw.session_state(b) == "detached", what="both detached")
        after = [(await publisher.publish("mux-resume", n))["offset"] for n in range(2, 4)]
        second: Carrier = await carriers()
        assert (await second.attached(headers={"Last-Event-ID": a_cursor}))[0] == a
        assert (await second.attached(headers={"Last-Event-ID": b_cursor}))[0] == b
        for sid, missed in ((a, [before[1], *after]), (b, after)):
            await second.until(lambda sid=sid: bool(second.named(sid, "recovery")), f"{sid}'s recovery")
            assert [e["offset"] for e in second.named(sid, "message")] == missed
            assert second.named(sid, "recovery") == [{"recovered": True, "complete": True, "replayed": len(missed), "gaps": []}]
            # /chat announces presence (volatile, never replayed): not part of the resume
            events = [f["event"] for f in second.of(sid) if not f["event"].startswith("presence.")]
            assert events == ["open", *["message"] * len(missed), "recovery"], events
        assert second.named(a, "open")[0]["rooms"] == ["mux-resume"]
    finally:
        await publisher.close()


async def test_a_session_is_on_one_carrier_at_a_time(carriers: Callable[[], Any], gw: ThreadedGateway) -> None:
    first: Carrier = await carriers()
    second: Carrier = await carriers()
    sid, _ = await first.attached()
    cursor = first.cursor(sid)
    # Twice on the same carrier: refused, and the session stays where it is.
    problem(await first.attach(headers={"Last-Event-ID": cursor}), 422, "validation_error")
    assert len(first.named(sid, "open")) == 1 and not first.own("detached")
    # On another carrier: moved, and the first one is told, as any replaced connection.
    assert (await second.attached(headers={"Last-Event-ID": cursor}))[0] == sid
    await first.until(lambda: bool(first.own("detached")), "detached from the first carrier")
    assert first.named(sid, "close") == [{"reason": "replaced", "reconnect": False}]
    assert first.own("detached") == [{"sid": sid, "reason": "replaced"}]
    assert gw.session_state(sid) == "connected"


async def test_a_carrier_carries_a_bounded_number_of_sessions(carriers: Callable[[], Any]) -> None:
    carrier: Carrier = await carriers()
    sessions = [await carrier.attached() for _ in range(3)]  # the module's limit
    body = problem(await carrier.attach(), 429, "rate_limited")
    assert body["limit"] == "carrier_sessions" and body["retryAfter"] > 0
    # A place freed is a place again.
    sid, key = sessions[0]
    assert (await carrier.detach(sid, key)).status_code == 204
    await carrier.attached()


async def test_closing_a_session_takes_it_off_its_carrier(carriers: Callable[[], Any], gw: ThreadedGateway) -> None:
    carrier: Carrier = await carriers()
    sid, key = await carrier.attached()
    response = await carrier.http.delete(f"/sse/sessions/{sid}", headers={"X-Session-Key": key})
    assert response.status_code == 204
    await carrier.until(lambda: bool(carrier.own("detached")), "detached")
    assert carrier.own("detached") == [{"sid": sid, "reason": "client closed"}]
    assert gw.session_state(sid) is None
    other, _ = await carrier.attached()  # the carrier goes on
    assert gw.session_state(other) == "connected"


async def test_sigterm_tells_the_carrier_to_come_back() -> None:
    gateway = SubprocessGateway().start()
    carrier = await Carrier(gateway.url).open()
    try:
        await carrier.attached()
        stopped = asyncio.get_running_loop().run_in_executor(None, gateway.terminate)
        await carrier.until(lambda: bool(carrier.own("__end__")), "the end of the stream")
        assert carrier.own("close") == [{"reason": "shutdown", "reconnect": True}]
        assert await stopped in (0, -signal.SIGTERM)
    finally:
        await carrier.close()
        if gateway.proc is not None and gateway.proc.poll() is None:
            gateway.kill()
