"""Fuzzing (issue 12): any room or event name and any JSON payload a client may send is either
refused with a coded error, or reaches every kind of reader as exactly one well-formed event
carrying the same data — a raw event-stream reader (the bytes parsed here by the WHATWG rules),
rtclient over SSE and over Socket.IO, and the official socket.io-client under Node.

Published over SSE + POST (a raw JSON body: NaN and Infinity literals, big integers) and over
Socket.IO (python-socketio's JSON, which writes NaN and Infinity). Which publishes the gateway
must refuse is stated here from docs/protocol.md (names, reserved names, depth, finite numbers,
64-bit integers), so a gateway that refuses too much or too little fails too.

Bounded: one gateway, the readers connected once and reused; each example joins its room,
publishes, publishes a sentinel behind it (the same room, so it arrives after), waits until
every reader has the sentinel, checks what came before it, and leaves.
"""

from __future__ import annotations

import asyncio
import codecs
import itertools
import json
import math
import os
import pathlib
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import socketio
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from gateway.wire.offsets import parse_cursor
from rtclient import SocketIOClient, SseClient
from rtclient.protocol import RESERVED_EVENTS, RoomEvent

from .servers import ThreadedGateway, timeout

ROOT = pathlib.Path(__file__).resolve().parents[1]
NODE = shutil.which("node") is not None and (ROOT / "node_modules" / "socket.io-client").exists()
WAIT = timeout(10)

# -- what docs/protocol.md says is accepted -------------------------------------------------

NAME = re.compile(r"[A-Za-z0-9_.:@~-]{1,128}")
MAX_DEPTH = 32
REFUSALS = {"validation_error", "malformed_json", "forbidden_room", "payload_too_large"}


def room_ok(room: Any) -> bool:
    # the demo's /chat refuses private: rooms to all but admins (forbidden_room)
    return isinstance(room, str) and NAME.fullmatch(room) is not None and not room.startswith("private:")


def event_ok(event: Any) -> bool:
    return isinstance(event, str) and NAME.fullmatch(event) is not None and event not in RESERVED_EVENTS


def data_ok(value: Any) -> bool | None:
    """True: must be accepted; False: must be refused; None: either (a lone surrogate is no
    Unicode, and a JSON parser may refuse its escape)."""
    verdict: bool | None = True
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, str):
            if any(0xD800 <= ord(c) <= 0xDFFF for c in item):
                verdict = None
        elif isinstance(item, int):
            if not -(2**63) <= item <= 2**64 - 1:
                return False
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, (list, dict)):
            if depth > MAX_DEPTH:
                return False
            children = list(item.values()) + list(item.keys()) if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return verdict


def same(a: Any, b: Any, *, js: bool = False) -> bool:
    """JSON equality (lists for tuples, 1 == 1.0); for JavaScript, numbers as doubles."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b) if js else a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, js=js) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], js=js) for k in a)
    return type(a) is type(b) and a == b


# -- an event stream read by the WHATWG rules, from its bytes ---------------------------------


@dataclass
class Frame:
    event: str
    data: str
    id: str | None


class WhatwgReader:
    """The parsing algorithm of the HTML standard (9.2.6), written here so the test depends on
    no client's parser: UTF-8 decoded with replacement, lines end at CRLF, LF or CR (and nowhere
    else: U+2028, U+2029 and U+0085 are ordinary characters to it), a leading BOM dropped."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buffer = ""
        self._first = True
        self._event, self._data, self._id = "", [], None
        self.frames: list[Frame] = []
        self.odd_breaks = 0  # U+2028, U+2029, U+0085 seen anywhere: readers using splitlines() split there

    def feed(self, chunk: bytes) -> None:
        text = self._decoder.decode(chunk)
        self.odd_breaks += sum(text.count(c) for c in "\u2028\u2029\x85")
        if self._first and text:
            self._first = False
            text = text.removeprefix("\ufeff")
        self._buffer += text
        while True:
            match = re.search(r"\r\n|\r|\n", self._buffer)
            if match is None or (match.group() == "\r" and match.end() == len(self._buffer)):
                return  # a final "\r" may be the first half of "\r\n"
            line, self._buffer = self._buffer[:match.start()], self._buffer[match.end():]
            self._line(line)

    def _line(self, line: str) -> None:
        if line == "":
            if self._data:
                self.frames.append(Frame(self._event or "message", "\n".join(self._data), self._id))
            self._event, self._data = "", []
            return
        if line.startswith(":"):
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value


# -- the readers -------------------------------------------------------------------------------


class Changed:
    """One event every reader sets when something arrives: waits end on arrivals, not sleeps."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __call__(self, *_: Any) -> None:
        self.event.set()

    async def until(self, check: Callable[[], bool], what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            self.event.clear()  # before the check: an arrival after it wakes the wait
            if check():
                return
            left = deadline - loop.time()
            assert left > 0, what
            try:
                await asyncio.wait_for(self.event.wait(), left)
            except TimeoutError:
                pass


class RawSse:
    """A session whose stream is read as bytes; it joins, leaves and publishes with raw POSTs."""

    def __init__(self, url: str, changed: Changed) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=WAIT)
        self.reader = WhatwgReader()
        self.changed = changed
        self.sid = self.key = ""
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        opened = asyncio.get_running_loop().create_future()

        async def read() -> None:
            async with self.http.stream("GET", "/sse/connect", params={"namespace": "/chat"}) as response:
                assert response.status_code == 200
                async for chunk in response.aiter_raw():
                    self.reader.feed(chunk)
                    if not opened.done() and self.reader.frames:
                        opened.set_result(json.loads(self.reader.frames[0].data))
                    self.changed()

        self._task = asyncio.create_task(read())
        info = await asyncio.wait_for(opened, WAIT)
        self.sid, self.key = info["sid"], info["key"]

    async def post(self, kind: str, body: bytes) -> tuple[bool, Any]:
        response = await self.http.post(f"/sse/sessions/{self.sid}/{kind}", content=body,
                                        headers={"Content-Type": "application/json", "X-Session-Key": self.key})
        answer = response.json()
        if response.status_code == 200:
            return True, answer["result"]
        assert response.status_code < 500, f"{kind} answered {response.status_code}: {answer}"
        return False, answer.get("code")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.http.aclose()


class NodeSio:
    """The official socket.io-client under Node (tests/js/sio_receiver.mjs)."""

    def __init__(self, url: str, changed: Changed) -> None:
        self.url, self.changed = url, changed
        self.lines: list[dict[str, Any]] = []
        self._acks: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "node", str(pathlib.Path(__file__).parent / "js" / "sio_receiver.mjs"), self.url, cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "NODE_PATH": str(ROOT / "node_modules")}, limit=16 * 1024 * 1024,
        )
        self._task = asyncio.create_task(self._read())
        await self.changed.until(lambda: any(x["type"] == "event" and x["event"] == "open" for x in self.lines),
                                 "socket.io-client got no open frame")

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            item = json.loads(line)
            if item["type"] == "ack":
                self._acks.pop(item["id"]).set_result(item)
            else:
                self.lines.append(item)
            self.changed()

    async def emit(self, name: str, data: Any) -> tuple[bool, Any]:
        assert self.proc.stdin is not None
        ident = next(self._ids)
        self._acks[ident] = asyncio.get_running_loop().create_future()
        self.proc.stdin.write(json.dumps({"id": ident, "emit": name, "data": data}).encode() + b"\n")
        await self.proc.stdin.drain()
        item = await asyncio.wait_for(self._acks[ident], WAIT)
        assert item.get("error") is None, item
        ack = item["ack"]
        return (True, ack["result"]) if ack["ok"] else (False, ack["error"]["code"])

    def disconnected(self) -> list[dict[str, Any]]:
        return [x for x in self.lines if x["type"] in ("disconnect", "connect_error")]

    async def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout(5))
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        await asyncio.gather(self._task, return_exceptions=True)


@dataclass(repr=False)  # Hypothesis shows the arguments of a failing example
class Readers:
    raw: RawSse
    sse: SseClient
    sio: SocketIOClient
    node: NodeSio | None
    changed: Changed
    events: dict[str, list[RoomEvent]] = field(default_factory=lambda: {"sse": [], "sio": []})


@dataclass(repr=False)  # Hypothesis shows the arguments of a failing example
class Publishers:
    raw: RawSse
    sio: socketio.AsyncClient


@dataclass(repr=False)  # Hypothesis shows the arguments of a failing example
class World:
    server: ThreadedGateway
    readers: Readers
    publishers: Publishers
    sentinels: Any = field(default_factory=itertools.count)


@pytest.fixture(scope="module")
async def world() -> AsyncIterator[World]:
    # Publish limits off: the fuzzing publishes faster than a person would.
    server = ThreadedGateway(ping_interval=5.0, ping_timeout=5.0, allow_publish_unjoined=True,
                             session_publish_rate=0, address_session_rate=0)
    # uvicorn's WebSocket keepalive draws from the global `random` (in the server's thread),
    # which Hypothesis takes for a strategy using it; Engine.IO pings the sockets anyway.
    server.server.config.ws_ping_interval = None
    server.start()
    changed = Changed()
    raw = RawSse(server.url, changed)
    sse = SseClient(server.url, "/chat", mode="stream")
    sio = SocketIOClient(server.url, "/chat", transports=["websocket"])
    node = NodeSio(server.url, changed) if NODE else None
    readers = Readers(raw, sse, sio, node, changed)
    sse.on("event", lambda e: (readers.events["sse"].append(e), changed()))
    sio.on("event", lambda e: (readers.events["sio"].append(e), changed()))
    publisher = RawSse(server.url, Changed())
    sio_publisher = socketio.AsyncClient(reconnection=False)
    try:
        await asyncio.gather(raw.start(), sse.connect(), sio.connect(), publisher.start(),
                             sio_publisher.connect(server.url, namespaces=["/chat"], transports=["websocket"]),
                             *([node.start()] if node else []))
        yield World(server, readers, Publishers(publisher, sio_publisher))
    finally:
        for close in (sse.close, sio.close, raw.stop, publisher.stop, sio_publisher.disconnect,
                      *([node.stop] if node else [])):
            try:
                await close()
            except Exception:  # one failing close must not keep the others from running
                pass
        server.stop()


async def join_all(w: World, kind: str, room: Any) -> list[tuple[str, bool, Any]]:
    """Every reader joins (or leaves) ``room``; what each was told."""
    r = w.readers

    async def client(c: Any) -> tuple[bool, Any]:
        try:
            return True, await getattr(c, kind)(room)
        except Exception as exc:  # the typed error of a refusal
            code = getattr(exc, "code", None)
            assert code is not None, f"{kind} {room!r}: {exc!r}"
            return False, code

    body = json.dumps({"room": room}).encode()
    answers = await asyncio.gather(r.raw.post(kind, body), client(r.sse), client(r.sio),
                                   *([r.node.emit(kind, {"room": room})] if r.node else []))
    return list(zip(["raw", "sse", "sio", "node"][:len(answers)], [a[0] for a in answers], [a[1] for a in answers], strict=True))


def publish_body(room: Any, event: Any, data: Any) -> bytes:
    return raw_json({"room": room, "event": event, "data": data})


def raw_json(body: dict[str, Any]) -> bytes:
    try:  # JSON as a client might write it: NaN and Infinity literals, any integer
        return json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: only as an escape
        return json.dumps(body).encode()


async def publish(w: World, via: str, room: Any, event: Any, data: Any) -> tuple[bool, Any]:
    if via == "sse":
        return await w.publishers.raw.post("publish", publish_body(room, event, data))
    ack = await w.publishers.sio.call("publish", {"room": room, "event": event, "data": data},
                                      namespace="/chat", timeout=WAIT)
    return (True, ack["result"]) if ack["ok"] else (False, ack["error"]["code"])


async def check_publish(w: World, room: Any, event: Any, data: Any, via: str) -> None:
    note(f"publish via {via}: room={room!r:.200} event={event!r:.200} data={data!r:.300}")
    r = w.readers
    marks = (len(r.raw.reader.frames), len(r.events["sse"]), len(r.events["sio"]), len(r.node.lines) if r.node else 0)
    malformed = (r.sse.state.stats.malformed, r.sio.state.stats.malformed)
    joins = await join_all(w, "join", room)
    assert len({(ok, code if not ok else None) for _, ok, code in joins}) == 1, f"the readers were told different things: {joins}"
    if not joins[0][1]:  # the room itself is refused, the same way everywhere
        assert not room_ok(room) and joins[0][2] in REFUSALS, joins
        ok, code = await publish(w, via, room, event, data)
        assert not ok and code in REFUSALS, (ok, code)
        return
    try:
        ok, answer = await publish(w, via, room, event, data)
        rules = data_ok(data) if room_ok(room) and event_ok(event) else False
        if rules is not None:
            assert ok == rules, f"the publish was {'accepted' if ok else f'refused ({answer})'}; the rules say otherwise"
        if not ok:
            assert answer in REFUSALS, answer
        n = next(w.sentinels)
        sent, sentinel = await publish(w, "sse", room, "sentinel", n)
        assert sent, sentinel
        await r.changed.until(lambda: _all_have(r, marks, n), f"not every reader got sentinel {n}")
        _check_readers(r, marks, malformed, room, event, data, answer if ok else None)
    finally:
        await join_all(w, "leave", room)


def _sentinel(envelope: Any, n: int) -> bool:
    return isinstance(envelope, dict) and envelope.get("event") == "sentinel" and envelope.get("data") == n


def _all_have(r: Readers, marks: tuple[int, ...], n: int) -> bool:
    raw = any(f.event == "sentinel" and _sentinel(json.loads(f.data), n) for f in r.raw.reader.frames[marks[0]:])
    sse = any(e.event == "sentinel" and e.data == n for e in r.events["sse"][marks[1]:])
    sio = any(e.event == "sentinel" and e.data == n for e in r.events["sio"][marks[2]:])
    node = r.node is None or any(x.get("event") == "sentinel" and _sentinel(x["args"][0], n) for x in r.node.lines[marks[3]:])
    if r.node is not None:
        assert not r.node.disconnected(), f"socket.io-client: {r.node.disconnected()}"
    return raw and sse and sio and node


CONTROL = ("joined", "left", "presence.join", "presence.leave")


def _check_readers(r: Readers, marks: tuple[int, ...], malformed: tuple[int, int], room: str, event: str,
                   data: Any, ack: dict[str, Any] | None) -> None:
    want = 1 if ack is not None else 0
    # the raw event stream: frames by the WHATWG rules, the gateway's own joined/left and the
    # presence announcements of /chat (the readers join and leave every example's room) aside
    frames = [f for f in r.raw.reader.frames[marks[0]:] if f.event not in CONTROL]
    *before, last = frames[:[i for i, f in enumerate(frames) if f.event == "sentinel"][-1] + 1]
    assert len(before) == want, f"raw SSE reader: {before!r:.500}"
    assert r.raw.reader.odd_breaks == 0, "U+2028, U+2029 or U+0085 unescaped in the stream"
    for frame in [*before, last]:
        assert frame.id is not None and parse_cursor(frame.id, 100)[0] == r.raw.sid  # a cursor the gateway reads back
    if ack is not None:
        [frame] = before
        envelope = json.loads(frame.data)
        assert frame.event == event == envelope["event"] and envelope["room"] == room
        assert envelope["offset"] == ack["offset"] and same(envelope["data"], data), (envelope, data)
    # rtclient, over SSE and over Socket.IO: one RoomEvent, nothing skipped
    for name, mark in (("sse", marks[1]), ("sio", marks[2])):
        got = r.events[name][mark:]
        got = got[:[i for i, e in enumerate(got) if e.event == "sentinel"][-1]]
        assert len(got) == want, f"rtclient {name}: {got!r:.500}"
        if ack is not None:
            [e] = got
            assert (e.event, e.room, e.offset) == (event, room, ack["offset"]) and same(e.data, data), (e, data)
    assert (r.sse.state.stats.malformed, r.sio.state.stats.malformed) == malformed, "rtclient skipped a frame"
    # the official socket.io-client: one event, same name, same envelope; it is still connected
    if r.node is not None:
        lines = [x for x in r.node.lines[marks[3]:] if x.get("event") not in CONTROL]
        lines = lines[:[i for i, x in enumerate(lines) if x.get("event") == "sentinel"][-1]]
        assert len(lines) == want, f"socket.io-client: {lines!r:.500}"
        if ack is not None:
            [line] = lines
            # The demo's namespaces have connection-state recovery on: the event's own position
            # comes as a trailing string argument (docs/protocol.md).
            [envelope, position] = line["args"]
            assert position == f"{room}={ack['offset']}"
            assert line["event"] == event == envelope["event"] and envelope["room"] == room
            assert envelope["offset"] == ack["offset"] and same(envelope["data"], data, js=True), (envelope, data)


# -- strategies ------------------------------------------------------------------------------

VALID = st.from_regex(r"[A-Za-z0-9_.:@~-]{1,24}", fullmatch=True)
ODD = st.sampled_from(["\n", "\r", "\r\n", "\u2028", "\u2029", "\x85", "\0", " ", "\t"])
RESERVED = st.sampled_from(sorted(RESERVED_EVENTS))
WEIRD_NAMES = st.one_of(
    st.builds(str.__add__, VALID, ODD),  # a trailing newline passed a "$" once
    st.builds(str.__add__, ODD, VALID),
    RESERVED,
    st.builds(str.__add__, RESERVED, ODD),
    st.integers(127, 400).map(lambda n: "n" * n),  # about the 128-character limit
    st.text(max_size=16),
    st.sampled_from(["", "*", "private:x", "a b", "é", "a;b=c", "a,b"]),
)
ROOMS = st.one_of(VALID, VALID, VALID, WEIRD_NAMES)
EVENTS = st.one_of(VALID, VALID, VALID, WEIRD_NAMES)


def nest(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


SCALARS = st.one_of(
    st.none(), st.booleans(), st.text(), st.text(alphabet="\u2028\u2029\x85\r\n\0\"\\ a"),
    st.integers(), st.integers(-(2**70), 2**70),
    st.sampled_from([2**53 + 1, 2**63 - 1, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64]),
    st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324]),
)
JSON = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
                    max_leaves=12)
DATA = st.one_of(JSON, JSON, st.integers(1, 300).map(nest), st.sampled_from([nest(31), nest(32), nest(33), nest(300)]))

FUZZ = settings(max_examples=80, deadline=timeout(5) * 1000, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(room=ROOMS, event=EVENTS, data=DATA, via=st.sampled_from(["sse", "socketio"]))
@example(room="lobby", event="close\n", data="x", via="sse")
@example(room="invite-42\n", event="message", data="x", via="socketio")
@example(room="lobby", event="message\u2028", data="x", via="sse")
@example(room="lobby", event="newListener", data="x", via="socketio")
@example(room="lobby", event="disconnecting", data="x", via="sse")
@example(room="lobby", event="message", data=nest(300), via="sse")
@example(room="lobby", event="message", data=nest(300), via="socketio")
@example(room="lobby", event="message", data=[math.nan], via="sse")
@example(room="lobby", event="message", data={"x": math.inf}, via="socketio")
@example(room="lobby", event="message", data=2**64, via="sse")
@example(room="lobby", event="message", data=2**64 - 1, via="socketio")
@example(room="lobby", event="message", data="a\u2028b\u2029c\x85d\r\ne", via="sse")
@example(room="lobby", event="message", data="\ud800", via="socketio")
@example(room="n" * 129, event="n" * 128, data=None, via="sse")
async def test_a_publish_is_refused_or_reaches_every_reader_once(world: World, room: Any, event: Any, data: Any, via: str) -> None:
    await check_publish(world, room, event, data, via)


@FUZZ
@given(data=DATA, via=st.sampled_from(["sse", "socketio"]))
@example(data={"x": math.inf}, via="socketio")
@example(data=[math.nan], via="sse")
@example(data=nest(300), via="socketio")
@example(data="\ud800", via="socketio")
@example(data=2**64, via="sse")
@example(data=-(2**63) - 1, via="sse")
async def test_an_application_event_answers_the_same_data_or_a_coded_error(world: World, data: Any, via: str) -> None:
    """demo's echo handler returns what it got: the answer is that data, or a coded refusal."""
    note(f"echo via {via}: data={data!r:.300}")
    if via == "sse":
        ok, answer = await world.publishers.raw.post("emit", raw_json({"event": "echo", "data": data}))
    else:
        ack = await world.publishers.sio.call("echo", (data, {}), namespace="/chat", timeout=WAIT)
        ok, answer = (True, ack["result"]) if ack["ok"] else (False, ack["error"]["code"])
    expected = data_ok(data)
    if expected is not None:
        assert ok == expected, f"echo was {'answered' if ok else f'refused ({answer})'}; the rules say otherwise"
    if ok:
        assert same(answer, data), (answer, data)
    else:
        assert answer in REFUSALS, answer


# -- the clients' pure pieces: whatever arrives --------------------------------------------

FRAME_NAMES = st.one_of(st.sampled_from(["open", "joined", "left", "recovery", "close", "call", "message"]), RESERVED, EVENTS)
OFFSETS = st.one_of(st.from_regex(r"[0-9]{1,3}-[0-9]{1,2}", fullmatch=True), st.text(max_size=6), st.integers(), st.none())
FRAME_DATA = st.one_of(
    JSON,
    st.fixed_dictionaries({"event": EVENTS, "room": ROOMS, "offset": OFFSETS},
                          optional={"data": JSON, "ts": st.one_of(st.integers(), st.text()), "sender": st.one_of(st.none(), st.text(), st.integers())}),
    st.fixed_dictionaries({"room": ROOMS, "offset": OFFSETS}),
    st.fixed_dictionaries({"recovered": JSON, "complete": JSON, "replayed": JSON, "gaps": JSON}),
    st.fixed_dictionaries({"reason": JSON, "reconnect": JSON}),
    st.fixed_dictionaries({"sid": st.one_of(VALID, st.text()), "key": st.one_of(VALID, st.text()), "namespace": JSON,
                           "pingInterval": JSON, "pingTimeout": JSON, "rooms": JSON}),
)


@settings(max_examples=100, deadline=None, database=None)
@given(frames=st.lists(st.tuples(FRAME_NAMES, FRAME_DATA), max_size=12))
def test_client_state_stays_sound_whatever_frames_come(frames: list[tuple[str, Any]]) -> None:
    """rtclient's core: a frame is handled or refused with ProtocolError (nothing else), and what
    it keeps is always a cursor and Socket.IO offsets the gateway reads back."""
    from gateway.wire.offsets import check_positions
    from rtclient.protocol import ClientState, ProtocolError

    state = ClientState()
    state.handle("open", {"sid": "S" * 22, "key": "K" * 22, "namespace": "/chat", "pingInterval": 1000,
                          "pingTimeout": 1000, "rooms": []})
    for name, data in frames:
        try:
            state.handle(name, data)
        except ProtocolError:
            pass
        assert state.cursor is not None and state.cursor.isascii()
        sid, key, positions = parse_cursor(state.cursor, 10_000)
        assert (sid, key) == (state.sid, state.key) and positions == state.positions
        assert check_positions(state.resume_auth()["offsets"], 10_000) == state.positions
        assert state.ping_interval > 0 and math.isfinite(state.ping_interval)


@settings(max_examples=150, deadline=None, database=None)
@given(wire=st.lists(st.one_of(st.sampled_from([b"\n", b"\r", b"\r\n", b"data: ", b"event: ", b"id: ", b":", b"\xef\xbb\xbf",
                                                b"\xe2\x80\xa8", b"\0"]), st.binary(max_size=12)), max_size=40).map(b"".join),
       cuts=st.lists(st.integers(0, 500), max_size=6))
def test_sse_parser_any_split_same_frames(wire: bytes, cuts: list[int]) -> None:
    """rtclient's SseParser against the WHATWG reader above, fed whole and in pieces."""
    from rtclient.protocol import SseParser

    expected = WhatwgReader()
    expected.feed(wire)
    expected.feed(b"\n\n")  # whatever is pending ends
    parser = SseParser()
    bounds = sorted({0, len(wire), *(c for c in cuts if c < len(wire))})
    frames = [f for a, b in itertools.pairwise(bounds) for f in parser.feed(wire[a:b])] + parser.feed(b"\n\n")
    assert [(f.event, f.data) for f in frames] == [(f.event, f.data) for f in expected.frames]
