"""Clients that survive a bad frame: every client (rtclient's asyncio and blocking clients,
rtgateway.js under Node) over both transports skips and counts a frame it cannot use, delivers
what follows, never reconnects because of it, and is not trapped when a resume replays it.

The frames come from small fake servers written here (an event stream written by hand; a
python-socketio server), so the clients' robustness is proven whatever the gateway lets through,
and from a real gateway whose room log holds events a gateway must never log (written into the
broker past the validation), to exercise its live and replay paths too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import pathlib
import shutil
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import socketio
import uvicorn

from gateway.wire.envelope import Envelope
from gateway.wire.offsets import check_positions, parse_cursor
from rtclient import SocketIOClient, SseClient
from rtclient.blocking import BlockingClient
from rtclient.protocol import Backoff, Gap, RoomEvent

from .servers import ThreadedGateway, node_outcome, timeout, wait_state

ROOT = pathlib.Path(__file__).resolve().parents[1]
NODE_SCRIPT = pathlib.Path(__file__).parent / "js" / "bad_frames.mjs"
HAS_NODE = shutil.which("node") is not None and (ROOT / "node_modules" / "socket.io-client").exists()
CLIENTS = ["aio", "blocking", pytest.param("js", marks=[
    pytest.mark.node, *([] if HAS_NODE else [pytest.mark.skip(reason="needs node and `npm ci`")])])]

SID, KEY, SID2, KEY2 = "S" * 22, "K" * 22, "T" * 22, "N" * 22
DEEP: Any = "bottom"
for _ in range(300):
    DEEP = [DEEP]  # 300 levels: valid JSON every client must deliver intact


def env(offset: Any, data: Any = "x", *, event: Any = "message", room: Any = "lobby", **more: Any) -> dict[str, Any]:
    return {"event": event, "data": data, "room": room, "offset": offset, "sender": None,
            "clientEventId": None, "ts": 1, **more}


def open_frame(sid: str = SID, key: str = KEY, rooms: tuple[str, ...] = ()) -> dict[str, Any]:
    # pingInterval long enough that no test needs pings to keep the stream alive
    return {"sid": sid, "key": key, "namespace": "/chat", "pingInterval": 20000, "pingTimeout": 20000,
            "maxPayload": 1_000_000, "rooms": list(rooms)}


# -- an event stream written by hand -------------------------------------------------


def sse(event: str, data: Any, id: str | None = None) -> bytes:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return (f"id: {id}\n".encode() if id else b"") + b"event: " + event.encode() + b"\ndata: " + body + b"\n\n"


def at(offset: str, sid: str = SID, key: str = KEY) -> str:
    return f"{sid}:{key};lobby={offset}"


def good(offset: str, data: Any) -> bytes:
    return sse("message", env(offset, data), id=at(offset))


SSE_BAD = [
    # an event named like the gateway's own frames, as the gateway writes a room event
    sse("close", env("2-0", event="close"), id=at("2-0")),
    sse("left", env("3-0", event="left"), id=at("3-0")),
    sse("open", env("4-0", event="open"), id=at("4-0")),
    sse("recovery", {"recovered": "yes", "complete": 1, "replayed": "x", "gaps": "none"}),
    # "close\n" as a gateway that full-matched no names wrote it: the frame splits in two
    b"id: " + at("5-0").encode() + b"\nevent: close\n\ndata: " + json.dumps(env("5-0", event="close\n")).encode() + b"\n\n",
    sse("message", env(7)),  # a wrong-typed offset
    sse("message", b'{"event": "message", "room": "lobby", "offset": "6-0", "data": NaN, "ts": 1}'),
    sse("message", b"{not json"),
    sse("message", env("6-5", room="lobby\n")),  # a room name no one can join
    sse("call", {"ackId": 5, "event": None}),
    sse("joined", {"room": "x\n", "offset": 7}),
    sse("close", {"reason": 5, "reconnect": "no"}),
    sse("newListener", env("7-0", event="newListener"), id=at("7-0")),
    sse("message", env("8-0", ts="soon"), id=at("8-0")),
    b"id: not-a-cursor\n" + sse("message", env("8-5", event="other")),  # the frame's name is not its event
]
SSE_FIRST = [sse("open", open_frame()), sse("joined", {"room": "lobby", "offset": "1-0"}), good("1-1", "before"),
             *SSE_BAD, good("8-7", DEEP), good("9-0", "after")]
SSE_RESUMED = [sse("open", open_frame(rooms=("lobby",))), *SSE_FIRST[2:],
               sse("recovery", {"recovered": True, "complete": True, "replayed": 20, "gaps": []}), good("10-0", "live")]
# Frames skipped on the first stream; on the replay, those that cannot even be placed (no
# usable room and offset) are skipped again, the others are duplicates. rtgateway.js also
# counts the id: line that is not a cursor.
SSE_SKIPPED = {"py": (15, 8), "js": (16, 9)}


@dataclasses.dataclass
class Stream:
    """What one GET /sse/connect gets: frames, then the stream held open or ended; or a refusal."""

    frames: list[bytes] = dataclasses.field(default_factory=list)
    end: bool = False
    status: int = 200
    problem: dict[str, Any] | None = None


class FakeSse:
    """Just enough of the gateway's SSE + POST for a client: each GET /sse/connect gets the
    next of ``streams`` (the last one again when they run out); POSTs are answered ok."""

    def __init__(self, streams: list[Stream]) -> None:
        self.streams = streams
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FakeSse:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), timeout(5))
        await self.server.wait_closed()

    def gets(self) -> list[dict[str, str]]:
        return [headers for method, path, headers, _ in self.requests if method == "GET"]

    def posts(self, kind: str, key: str | None = None) -> list[dict[str, Any]]:
        """The bodies POSTed to ``kind`` (by the holder of ``key``, if given)."""
        return [json.loads(body) for method, path, headers, body in self.requests
                if method == "POST" and path.endswith("/" + kind) and key in (None, headers.get("x-session-key"))]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while True:  # keep-alive: a client's POSTs share connections
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method, target, _ = head[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                path = target.split("?", 1)[0]
                self.requests.append((method, path, headers, body))
                if method == "GET" and path == "/sse/connect":
                    count = len(self.gets())
                    await self._stream(reader, writer, self.streams[min(count, len(self.streams)) - 1])
                    return
                writer.write(self._answer(method, path, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: Stream) -> None:
        if stream.status != 200:
            body = json.dumps(stream.problem).encode()
            writer.write(f"HTTP/1.1 {stream.status} Refused\r\ncontent-type: application/problem+json\r\n"
                         f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                     b"connection: close\r\n\r\n" + b"".join(stream.frames))
        await writer.drain()
        if not stream.end:
            await reader.read()  # held open until the client lets go (or the server stops)

    @staticmethod
    def _answer(method: str, path: str, body: bytes) -> bytes:
        if method == "POST" and path.rsplit("/", 1)[-1] in ("join", "leave", "publish", "emit"):
            request = json.loads(body or b"{}")
            result = {"room": request.get("room"), "offset": "1-0" if path.endswith("/join") else "99-0"}
            payload = json.dumps({"ok": True, "result": result if not path.endswith("/emit") else "pong"}).encode()
            return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                    + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        return b"HTTP/1.1 204 No Content\r\n\r\n"


# -- a Socket.IO server that says what a test tells it to -----------------------------

SIO_BAD: list[tuple[str, Any]] = [
    ("close", env("2-0", event="close")),
    ("left", env("3-0", event="left")),
    ("open", env("4-0", event="open")),
    ("recovery", {"recovered": "yes", "complete": 1, "replayed": "x", "gaps": "none"}),
    ("newListener", env("5-0", event="newListener")),  # socket.io-client: "parse error"
    ("disconnect", env("5-5", event="disconnect")),  # python-socketio: its disconnect handler
    ("connect", env("6-0", event="connect")),
    ("message", env(7)),
    ("message", env("6-5", math.inf)),  # JSON with Infinity: python-socketio reads it, JavaScript cannot
    ("message", env("7-0", event="other")),
    ("removeListener", env("7-5", event="removeListener")),
    ("disconnecting", env("7-7", event="disconnecting")),
    ("connect_error", env("7-8", event="connect_error")),
]
SIO_FIRST = [("open", open_frame()), ("joined", {"room": "lobby", "offset": "1-0"}),
             ("message", env("1-1", "before")), *SIO_BAD, ("message", env("8-7", DEEP)), ("message", env("9-0", "after"))]
SIO_RESUMED = [("open", open_frame(rooms=("lobby",))), *SIO_FIRST[2:],
               ("recovery", {"recovered": True, "complete": True, "replayed": 20, "gaps": []}),
               ("message", env("10-0", "live"))]
# python-socketio reads Infinity (that event is delivered); rtgateway.js cannot (skipped). On the
# replay, the events without a usable room and offset are skipped again, the others are
# duplicates: the recovery and the int offset, and for JavaScript the Infinity too.
SIO_SKIPPED = {"py": (12, 2), "js": (13, 3)}


@dataclasses.dataclass
class Script:
    """What one Socket.IO connection gets: events, then held open or disconnected; or a refusal."""

    events: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    end: bool = False
    refuse: dict[str, Any] | None = None


class FakeSocketIO:
    """python-socketio on uvicorn in a thread; the n-th connection to /chat gets ``scripts[n]``."""

    def __init__(self, scripts: list[Script]) -> None:
        self.scripts = scripts
        self.auths: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str, Any]] = []  # (the session's key, event, data)
        self.keys: dict[str, str] = {}  # Socket.IO sid -> the key of the session it opened
        self.sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
        self.sio.on("connect", self._connect, namespace="/chat")
        self.sio.on("*", self._any, namespace="/chat")
        self.server = uvicorn.Server(uvicorn.Config(socketio.ASGIApp(self.sio), host="127.0.0.1", port=0,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> FakeSocketIO:
        self.thread.start()
        deadline = timeout(10)
        while not self.server.started and deadline > 0:
            threading.Event().wait(0.01)
            deadline -= 0.01
        assert self.server.started, "the fake Socket.IO server did not start"
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout(10))

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        self.auths.append(auth or {})
        script = self.scripts[min(len(self.auths), len(self.scripts)) - 1]
        if script.refuse is not None:
            raise socketio.exceptions.ConnectionRefusedError(script.refuse["message"], script.refuse)
        opened = [data for event, data in script.events if event == "open"]
        self.keys[sid] = opened[0]["key"] if opened else ""
        asyncio.get_running_loop().create_task(self._play(sid, script))

    async def _play(self, sid: str, script: Script) -> None:
        for event, data in script.events:
            await self.sio.emit(event, data, to=sid, namespace="/chat")
        if script.end:
            await self.sio.disconnect(sid, namespace="/chat")

    async def _any(self, event: str, sid: str, *args: Any) -> Any:
        self.calls.append((self.keys.get(sid, ""), event, args[0] if args else None))
        body = args[0] if args and isinstance(args[0], dict) else {}
        if event in ("join", "leave", "publish"):
            return {"ok": True, "result": {"room": body.get("room"), "offset": "1-0" if event == "join" else "99-0"}}
        return {"ok": True, "result": "pong"}


# -- the clients, each run the same way ----------------------------------------------


async def run_client(kind: str, url: str, transport: str, until: str,
                     settled: Callable[[], bool] = lambda: True, *, js: pathlib.Path) -> dict[str, Any]:
    """Connect, join lobby, wait until the room event whose data is ``until`` (or, with
    ``until="gap"``, a gap and a new session) and until ``settled()`` (what the server sees),
    publish once; what happened, as a dict. (rtgateway.js publishes after its rejoin anyway.)"""
    if kind == "js":
        return await run_js(js, url, transport, until)
    got: list[Any] = []
    gaps: list[str] = []
    sids: list[str] = []
    backoff = Backoff(base=0.02, cap=0.1)
    if kind == "aio":
        reached = asyncio.Event()
        client: Any = (SseClient(url, "/chat", mode="stream", backoff=backoff, request_timeout=timeout(10))
                       if transport == "sse" else
                       SocketIOClient(url, "/chat", transports=["websocket"], backoff=backoff, request_timeout=timeout(10)))

        def on_event(e: RoomEvent) -> None:
            got.append(e.data)
            if e.data == until:
                reached.set()

        def on_open(e: Any) -> None:
            sids.append(e.sid)
            if until == "gap" and gaps:
                reached.set()

        client.on("event", on_event)
        client.on("gap", lambda g: gaps.append(g.room))
        client.on("open", on_open)
        await client.connect()
        try:
            await client.join("lobby")
            await asyncio.wait_for(reached.wait(), timeout(15))
            await wait_state(settled, what="the server did not see what it should")
            probe = await client.publish("lobby", "probe")
            connected = client._connected.is_set() and not client._lost.is_set()
            stats = dataclasses.asdict(client.state.stats)
        finally:
            await client.close()
    else:
        done = threading.Event()

        def on_any(e: Any) -> None:
            if isinstance(e, RoomEvent):
                got.append(e.data)
                if e.data == until:
                    done.set()
            elif isinstance(e, Gap):
                gaps.append(e.room)
            elif e.kind == "open":
                sids.append(e.sid)
                if until == "gap" and gaps:
                    done.set()

        client = BlockingClient(url, "/chat", transport="sse" if transport == "sse" else "websocket", mode="stream",
                                on_event=on_any, backoff=backoff, request_timeout=timeout(10))

        def finish() -> tuple[Any, bool, dict[str, int]]:
            probe = client.publish("lobby", "probe")
            return probe, client._connected.is_set() and not client._lost.is_set(), dataclasses.asdict(client.state.stats)

        await asyncio.to_thread(client.connect)
        try:
            await asyncio.to_thread(client.join, "lobby")
            assert await asyncio.to_thread(done.wait, timeout(15)), f"not reached: got {got!r:.300}, gaps {gaps}"
            await wait_state(settled, what="the server did not see what it should")
            probe, connected, stats = await asyncio.to_thread(finish)
        finally:
            await asyncio.to_thread(client.close)
    return {"got": got, "gaps": gaps, "sids": sids, "probe": probe, "connected": connected,
            "reconnects": stats["reconnects"], "malformed": stats["malformed"], "duplicates": stats["duplicates"]}


async def run_js(js: pathlib.Path, url: str, transport: str, until: str, mode: str = "fake", room: str = "lobby",
                 between: Callable[[], Any] | None = None) -> dict[str, Any]:
    """rtgateway.js (the copy at ``js``) under Node, tests/js/bad_frames.mjs driving it."""
    node = await asyncio.create_subprocess_exec(
        "node", str(NODE_SCRIPT), url, transport, until, mode, room, cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "RTGW_CLIENT": str(js)},
    )
    assert node.stdout is not None and node.stdin is not None
    if between is not None:  # the replay mode: the client is away until told to come back
        try:
            line = await asyncio.wait_for(node.stdout.readline(), timeout(15))
            assert json.loads(line).get("away"), line
            await between()
            node.stdin.write(b"go\n")
            await node.stdin.drain()
        except BaseException:
            node.kill()
            await node.wait()
            raise
    result = await node_outcome(node, 30)
    return {"got": [e["data"] for e in result["got"]], "gaps": [g["room"] for g in result["gaps"]],
            "sids": result["sids"], "probe": result["probe"], "connected": result["state"] == "open",
            "reconnects": result["reconnects"], "malformed": result["stats"]["malformed"],
            "duplicates": result["stats"]["duplicates"]}


def lang(kind: str) -> str:
    return "js" if kind == "js" else "py"


# -- against the fakes -----------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_sse_bad_frames_are_skipped_live_and_on_replay(kind: str, client_module: pathlib.Path) -> None:
    async with FakeSse([Stream(SSE_FIRST, end=True), Stream(SSE_RESUMED)]) as fake:
        result = await run_client(kind, fake.url, "sse", "live", js=client_module)
    assert result["got"] == ["before", DEEP, "after", "live"]
    first, again = SSE_SKIPPED[lang(kind)]
    assert result["malformed"] == first + again, result
    assert result["sids"] == [SID, SID] and result["reconnects"] == 1 and result["connected"]
    assert result["probe"]["offset"] == "99-0"
    gets = fake.gets()
    assert len(gets) == 2 and "last-event-id" not in gets[0]
    # the resume position is one the gateway reads, past every event the client consumed
    assert parse_cursor(gets[1]["last-event-id"], 100) == (SID, KEY, {"lobby": "9-0"})


@pytest.mark.parametrize("kind", CLIENTS)
async def test_socketio_bad_frames_are_skipped_live_and_on_replay(kind: str, client_module: pathlib.Path) -> None:
    with FakeSocketIO([Script(SIO_FIRST, end=True), Script(SIO_RESUMED)]) as fake:
        result = await run_client(kind, fake.url, "socketio", "live", js=client_module)
    infinity = [] if kind == "js" else [math.inf]
    assert result["got"] == ["before", *infinity, DEEP, "after", "live"]
    first, again = SIO_SKIPPED[lang(kind)]
    assert result["malformed"] == first + again, result
    assert result["sids"] == [SID, SID] and result["reconnects"] == 1 and result["connected"]
    assert len(fake.auths) == 2 and "sid" not in fake.auths[0]
    resume = fake.auths[1]
    assert resume["sid"] == SID and resume["key"] == KEY
    assert check_positions(resume["offsets"], 100) == {"lobby": "9-0"}


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_resume_that_never_gives_an_open_frame_starts_a_new_session(kind: str, client_module: pathlib.Path) -> None:
    """The stream a resume gets ends before any frame, as a replay the gateway cannot encode
    made it: after a few, the client stops resuming, reports the gap and joins its rooms again."""
    streams = [Stream([sse("open", open_frame()), sse("joined", {"room": "lobby", "offset": "1-0"}), good("1-1", "before")], end=True),
               Stream(end=True), Stream(end=True), Stream(end=True),
               Stream([sse("open", open_frame(SID2, KEY2))])]
    async with FakeSse(streams) as fake:
        rejoined = lambda: {"room": "lobby"} in fake.posts("join", KEY2)  # noqa: E731
        result = await run_client(kind, fake.url, "sse", "gap", rejoined, js=client_module)
        await wait_state(rejoined, what="lobby was not joined again")
    assert result["gaps"] == ["lobby"] and result["sids"] == [SID, SID2] and result["connected"]
    gets = fake.gets()
    assert len(gets) == 5 and all("last-event-id" in g for g in gets[1:4]) and "last-event-id" not in gets[4]


@pytest.mark.parametrize("transport", ["sse", "socketio"])
@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_resume_refused_for_its_positions_starts_a_new_session(kind: str, transport: str, client_module: pathlib.Path) -> None:
    """bad_last_event_id would be the answer to every retry: the client starts over at once."""
    problem = {"type": "about:blank", "title": "Bad Last-Event-ID", "status": 400, "code": "bad_last_event_id",
               "detail": "bad room position", "message": "bad room position"}
    if transport == "sse":
        first = [sse("open", open_frame()), sse("joined", {"room": "lobby", "offset": "1-0"}), good("1-1", "before")]
        async with FakeSse([Stream(first, end=True), Stream(status=400, problem=problem),
                            Stream([sse("open", open_frame(SID2, KEY2))])]) as fake:
            rejoined = lambda: {"room": "lobby"} in fake.posts("join", KEY2)  # noqa: E731
            result = await run_client(kind, fake.url, transport, "gap", rejoined, js=client_module)
            await wait_state(rejoined, what="lobby was not joined again")
        attempts = len(fake.gets())
    else:
        first_sio = [("open", open_frame()), ("joined", {"room": "lobby", "offset": "1-0"}), ("message", env("1-1", "before"))]
        with FakeSocketIO([Script(first_sio, end=True), Script(refuse=problem), Script([("open", open_frame(SID2, KEY2))])]) as fake:
            rejoined = lambda: (KEY2, "join", {"room": "lobby"}) in fake.calls  # noqa: E731
            result = await run_client(kind, fake.url, transport, "gap", rejoined, js=client_module)
            await wait_state(rejoined, what="lobby was not joined again")
        attempts = len(fake.auths)
    assert result["gaps"] == ["lobby"] and result["sids"] == [SID, SID2] and result["connected"]
    assert attempts == 3


# -- against a real gateway: events no gateway may log, in a room's log --------------------

# Each name got through some path before the gateway validated every event (issue 12).
POISON = ["close", "left", "open", "recovery", "joined", "error", "newListener", "removeListener",
          "disconnecting", "disconnect", "connect", "connect_error"]


async def log_directly(server: ThreadedGateway, room: str, event: str, data: Any) -> str:
    """Log and fan out a room event past every validation, as a bug or an older gateway could."""
    draft = Envelope("/chat", room, event, data, "", None, None, 0)
    logged = await server.arun(server.gateway.broker.publish(draft, True))
    return logged.offset


async def poison(server: ThreadedGateway, room: str) -> None:
    for name in POISON:
        await log_directly(server, room, name, {"poison": name})
    await log_directly(server, room, "message", "after")


class Hold:
    """A token source that holds a reconnect back while set: the client is away meanwhile."""

    def __init__(self) -> None:
        self.free = threading.Event()
        self.free.set()
        self.asked = threading.Event()

    def __call__(self) -> None:
        self.asked.set()
        assert self.free.wait(timeout(15)), "held too long"


@pytest.mark.parametrize("transport", ["sse", "socketio"])
@pytest.mark.parametrize("kind", ["aio", "blocking"])
async def test_python_clients_through_a_poisoned_log_live_and_replayed(server: ThreadedGateway, kind: str, transport: str) -> None:
    gateway = server
    room = f"poison-{uuid.uuid4().hex[:8]}"
    got: list[Any] = []
    hold = Hold()
    backoff = Backoff(base=0.02, cap=0.1)
    if kind == "aio":
        async def token() -> None:
            await asyncio.to_thread(hold)

        client: Any = (SseClient(gateway.url, "/chat", token=token, mode="stream", backoff=backoff)
                       if transport == "sse" else
                       SocketIOClient(gateway.url, "/chat", token=token, transports=["websocket"], backoff=backoff))
        client.on("event", lambda e: got.append(e.data))
        await client.connect()
        call = lambda f, *a: f(*a)  # noqa: E731
    else:
        client = BlockingClient(gateway.url, "/chat", token=hold, mode="stream", backoff=backoff,
                                transport="sse" if transport == "sse" else "websocket",
                                on_event=lambda e: got.append(e.data) if isinstance(e, RoomEvent) else None)
        await asyncio.to_thread(client.connect)
        call = lambda f, *a: asyncio.to_thread(f, *a)  # noqa: E731
    try:
        await call(client.join, room)
        await poison(gateway, room)  # live
        await wait_state(lambda: got == ["after"], what=f"live: got {got}")
        assert client.state.stats.malformed == len(POISON) and client.state.stats.reconnects == 0
        sid = client.sid
        hold.free.clear()
        hold.asked.clear()
        await call(client.drop)
        await asyncio.to_thread(hold.asked.wait, timeout(10))  # away, held back
        await log_directly(gateway, room, "message", "while-away")
        await poison(gateway, room)  # replayed on the resume
        hold.free.set()
        await wait_state(lambda: got == ["after", "while-away", "after"], what=f"replay: got {got}")
        await log_directly(gateway, room, "message", "live")
        await wait_state(lambda: got[-1] == "live", what=f"then live: got {got}")
        assert client.sid == sid and client.state.stats.reconnects == 1
        assert client.state.stats.malformed == 2 * len(POISON)
        assert (await call(client.publish, room, "probe"))["room"] == room
    finally:
        await call(client.close)


@pytest.mark.node
@pytest.mark.skipif(not HAS_NODE, reason="needs node and `npm ci`")
@pytest.mark.parametrize("transport", ["sse", "socketio"])
async def test_rtgateway_js_through_a_poisoned_log_live_and_replayed(
    server: ThreadedGateway, client_module: pathlib.Path, transport: str
) -> None:
    """rtgateway.js: a room's log with newListener & co. once made it reconnect 79 times in 6 s
    over Socket.IO (socket.io-client: "parse error"), each replay bringing the event back."""
    gateway = server
    room = f"poison-js-{uuid.uuid4().hex[:8]}"

    async def away() -> None:  # the client dropped and is held back: log poison, to be replayed
        await poison(gateway, room)
        await log_directly(gateway, room, "message", "live")

    # live: once the script has joined `room`, the test logs "before" and the poison
    async def when_joined() -> None:
        await wait_state(lambda: any(room in s.rooms for s in list(gateway.gateway.sessions.values())),
                         what="the JS client did not join")
        await log_directly(gateway, room, "message", "before")
        await poison(gateway, room)

    live = asyncio.ensure_future(when_joined())
    try:
        result = await run_js(client_module, gateway.url, transport, "live", mode="replay", room=room, between=away)
    finally:
        live.cancel()
    assert result["got"] == ["before", "after", "after", "live"], result
    assert result["malformed"] == 2 * len(POISON), result
    assert result["reconnects"] == 1 and len(set(result["sids"])) == 1 and result["connected"]
