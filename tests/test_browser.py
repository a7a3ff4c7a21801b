"""The demo page and rtgateway.js in a real Chromium: chat across transports, recovery after a drop.

Each page gets its own browser context (its own connection pool and storage), like two
visitors. Every wait is a Playwright condition with a bounded timeout, never a sleep.
"""

from __future__ import annotations

import json
import pathlib
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import uvicorn
from playwright.async_api import Page, Route, expect

from .servers import ThreadedGateway, timeout

ROOT = pathlib.Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = pathlib.Path("/usr/bin/chromium")
SOCKETIO_BUILD = ROOT / "node_modules" / "socket.io-client" / "dist" / "socket.io.esm.min.js"
# Headless, and nothing that reaches past 127.0.0.1.
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WAIT = timeout(10) * 1000  # Playwright counts milliseconds
ADMIN_PASSWORD = "browser-test-admin-password"  # GATEWAY_ADMIN_TOKEN: 16+ characters
expect.set_options(timeout=WAIT)

pytestmark = pytest.mark.browser
if not CHROMIUM.exists():
    pytestmark = [pytest.mark.browser, pytest.mark.skip(reason="needs Debian's chromium at /usr/bin/chromium (make system-deps installs it)")]
needs_socketio = pytest.mark.skipif(
    not SOCKETIO_BUILD.exists(), reason="needs socket.io-client in node_modules: run `npm ci` (make setup does it)"
)


@pytest.fixture(scope="module")
def gw() -> Iterator[ThreadedGateway]:
    """The demo with its admin on: POST /demo/token gives JWTs, so tokens are verified."""
    gateway = ThreadedGateway(ping_interval=1.0, ping_timeout=1.0, admin_token=ADMIN_PASSWORD).start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def gw_without_admin() -> Iterator[ThreadedGateway]:
    """The default: no GATEWAY_ADMIN_TOKEN, so no admin and no private rooms."""
    gateway = ThreadedGateway(ping_interval=1.0, ping_timeout=1.0).start()
    yield gateway
    gateway.stop()


async def not_installed(route: Route) -> None:
    await route.fulfill(
        status=404, content_type="application/problem+json",
        body=json.dumps({"code": "not_found", "status": 404, "detail": "socket.io-client is not installed"}),
    )


async def enter(page: Page, transport: str, name: str, room: str, password: str = "") -> None:
    await page.get_by_test_id(f"transport-{transport}").check()
    await page.get_by_test_id("name").fill(name)
    await page.get_by_test_id("room").fill(room)
    await page.get_by_test_id("admin-password").fill(password)
    await page.get_by_test_id("connect").click()
    await expect(page.get_by_test_id("state")).to_have_text("open")
    await expect(page.get_by_test_id("sid")).to_have_text(re.compile(r"^[A-Za-z0-9_-]{22}$"))
    await expect(page.get_by_test_id("log")).to_contain_text(f"joined {room}")


async def say(page: Page, text: str) -> None:
    await page.get_by_test_id("text").fill(text)
    await page.get_by_test_id("text").press("Enter")


def theirs(page: Page):
    return page.locator('[data-testid=message][data-own=false] [data-testid=message-text]')


def senders(page: Page):
    return page.locator("[data-testid=message][data-own=false] [data-testid=sender]")


def mine(page: Page):
    return page.locator("[data-testid=message][data-own=true]")


@needs_socketio
async def test_socketio_and_sse_pages_chat(open_page) -> None:
    sio, sse = await open_page(), await open_page()
    await enter(sio, "socketio", "Ada", "room-a")
    await enter(sse, "sse", "Bob", "room-a")
    await expect(sio.get_by_test_id("transport-in-use")).to_have_text("websocket")  # upgraded from polling
    await expect(sse.get_by_test_id("transport-in-use")).to_have_text("sse")

    await say(sio, "hello from Socket.IO")
    await say(sse, "hello from SSE")
    await expect(theirs(sse)).to_have_text(["hello from Socket.IO"])
    await expect(senders(sse)).to_have_text(["Ada"])
    await expect(theirs(sio)).to_have_text(["hello from SSE"])
    await expect(senders(sio)).to_have_text(["Bob"])
    for page in (sio, sse):
        await expect(mine(page).get_by_test_id("status")).to_have_text(["✓"])


@needs_socketio
async def test_sse_page_recovers_everything_after_a_drop(open_page, gw: ThreadedGateway) -> None:
    """The SSE page loses its stream and cannot reconnect for a while; the Socket.IO page
    keeps talking. Once back, the SSE page shows every message exactly once, in order. (Its own
    stream, so that the page's route cuts it; the shared stream: test_offline_on_a_shared_stream_...)"""
    sio, sse = await open_page(), await open_page(share="false")
    await enter(sio, "socketio", "Ada", "room-b")
    await enter(sse, "sse", "Bob", "room-b")
    before, during, after = [f"m{i:02d}" for i in range(1, 4)], [f"m{i:02d}" for i in range(4, 14)], [f"m{i:02d}" for i in range(14, 17)]

    for text in before:
        await say(sio, text)
    await expect(theirs(sse)).to_have_text(before)

    # The outage: the stream is cut, and every reconnect fails until the route is lifted.
    outage = re.compile(r"/sse/connect")
    await sse.route(outage, lambda route: route.abort("internetdisconnected"))
    await sse.get_by_test_id("drop").click()
    await expect(sse.get_by_test_id("state")).to_have_text("reconnecting")
    for text in during:
        await say(sio, text)
    await say(sse, "typed while offline")  # the outbox holds it until the session is back
    await expect(mine(sse).get_by_test_id("status")).to_have_text(["…"])
    await expect(mine(sio).get_by_test_id("status")).to_have_text(["✓"] * len(before + during))
    await expect(sse.get_by_test_id("reconnects")).not_to_have_text("0")
    assert await theirs(sse).all_inner_texts() == before, "nothing arrives while the stream is down"
    await sse.unroute(outage)

    await expect(sse.get_by_test_id("state")).to_have_text("open")
    await expect(sse.get_by_test_id("recovery")).to_have_attribute("data-complete", "true")
    await expect(sse.get_by_test_id("recovery")).to_have_text(f"complete · {len(during)} replayed")
    for text in after:
        await say(sio, text)
    sent = before + during + after
    await expect(theirs(sse)).to_have_text(sent)
    await expect(mine(sio).get_by_test_id("status")).to_have_text(["✓"] * len(sent))
    await expect(mine(sse).get_by_test_id("status")).to_have_text(["✓"])
    await expect(theirs(sio)).to_have_text(["typed while offline"])

    shown = await theirs(sse).all_inner_texts()
    stats = await sse.evaluate("window.rtgw.client.stats")
    offsets = await sse.locator("[data-testid=message][data-own=false]").evaluate_all("rows => rows.map(r => r.dataset.offset)")
    assert shown == sent and len(set(offsets)) == len(offsets) == len(sent)
    assert stats["gaps"] == 0 and stats["malformed"] == 0
    measured = {
        "sent": len(sent), "sent_during_outage": len(during), "received": len(shown),
        "duplicates_shown": len(shown) - len(set(shown)), "duplicates_dropped_by_client": stats["duplicates"],
        "replayed": stats["replayed"], "gaps": stats["gaps"],
        "reconnect_attempts": int(await sse.get_by_test_id("reconnects").inner_text()),
    }
    await sse.set_viewport_size({"width": 1280, "height": 1500})  # room for every message in the picture
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "browser-recovery.json").write_text(json.dumps(measured, indent=2) + "\n")
    await sse.screenshot(path=str(ARTIFACTS / "browser-recovery.png"), full_page=True)
    print("\nbrowser recovery:", measured)


async def test_offline_on_a_shared_stream_resumes_and_replays_once(open_page) -> None:
    """The demo's "drop" and "Go offline" on the stream its profile's tabs share (one SharedWorker):
    the session leaves the carrier and comes back on it, the other tab on that carrier keeps
    receiving meanwhile, and what was said while the page was away arrives marked replayed, once."""
    away = await open_page()  # the client's default: share
    sibling, here = await open_page(beside=away), await open_page()
    room = "room-shared"
    for page, name in ((away, "Away"), (sibling, "Sib"), (here, "Here")):
        await enter(page, "sse", name, room)
    assert [await p.evaluate("window.rtgw.client.sharing") for p in (away, sibling)] == ["worker", "worker"]

    await away.get_by_test_id("drop").click()
    await expect(away.get_by_test_id("reconnects")).to_have_text("1")
    await expect(away.get_by_test_id("state")).to_have_text("open")
    await expect(away.get_by_test_id("recovery")).to_have_text("complete · 0 replayed")
    await say(here, "after the drop")
    await expect(theirs(away)).to_have_text(["after the drop"])

    offline = round(timeout(3))  # s: long enough to send and ack two messages meanwhile
    await away.get_by_test_id("offline-seconds").fill(str(offline))
    await away.get_by_test_id("offline").click()
    await expect(away.get_by_test_id("state")).to_have_text("reconnecting")
    missed = ["while away 1", "while away 2"]
    for text in missed:
        await say(here, text)
    await expect(mine(here).get_by_test_id("status")).to_have_text(["✓"] * 3)
    await expect(theirs(sibling)).to_have_text(["after the drop", *missed])  # the carrier stayed up for it
    assert await away.get_by_test_id("state").inner_text() == "reconnecting", f"sent after the page's {offline} s away"
    assert await theirs(away).all_inner_texts() == ["after the drop"]

    await expect(away.get_by_test_id("state")).to_have_text("open", timeout=WAIT + offline * 1000)
    await expect(away.get_by_test_id("recovery")).to_have_text(f"complete · {len(missed)} replayed")
    replayed = away.locator("[data-testid=message][data-replayed=true] [data-testid=message-text]")
    await expect(replayed).to_have_text(missed)
    await say(here, "back live")
    sent = ["after the drop", *missed, "back live"]
    await expect(theirs(away)).to_have_text(sent)
    await expect(away.locator("[data-testid=message][data-own=false]").last).not_to_have_attribute("data-replayed", "true")
    offsets = await away.locator("[data-testid=message][data-own=false]").evaluate_all("rows => rows.map(r => r.dataset.offset)")
    assert len(set(offsets)) == len(sent), offsets
    assert await away.evaluate("[window.rtgw.client.sharing, window.rtgw.client.stats.gaps]") == ["worker", 0]


@needs_socketio
async def test_socketio_polling_only_page(open_page) -> None:
    polling, sse = await open_page(), await open_page()
    await enter(polling, "socketio-polling", "Cy", "room-c")
    await enter(sse, "sse", "Di", "room-c")
    await say(polling, "over long-polling")
    await expect(theirs(sse)).to_have_text(["over long-polling"])
    await say(sse, "back over SSE")
    await expect(theirs(polling)).to_have_text(["back over SSE"])
    await expect(mine(polling).get_by_test_id("status")).to_have_text(["✓"])

    # A drop on polling keeps the session too: the next message arrives once.
    await polling.get_by_test_id("drop").click()
    await say(sse, "while polling was down")
    await expect(polling.get_by_test_id("recovery")).to_have_attribute("data-complete", "true")
    await expect(polling.get_by_test_id("state")).to_have_text("open")
    await expect(theirs(polling)).to_have_text(["back over SSE", "while polling was down"])
    await expect(polling.get_by_test_id("transport-in-use")).to_have_text("polling")


async def test_page_without_socketio_still_chats_over_sse(open_page) -> None:
    lonely, other = await open_page(without_socketio=True), await open_page()
    await expect(lonely.get_by_test_id("sio-notice")).to_be_visible()
    await expect(lonely.get_by_test_id("sio-notice")).to_contain_text("npm ci")
    await expect(lonely.get_by_test_id("transport-socketio")).to_be_disabled()
    await expect(lonely.get_by_test_id("transport-socketio-polling")).to_be_disabled()
    await expect(lonely.get_by_test_id("transport-sse")).to_be_checked()

    await enter(lonely, "sse", "Eve", "room-d")
    await enter(other, "sse", "Fay", "room-d")
    await say(lonely, "no npm here")
    await expect(theirs(other)).to_have_text(["no npm here"])
    await say(other, "SSE is enough")
    await expect(theirs(lonely)).to_have_text(["SSE is enough"])
    await expect(mine(lonely).get_by_test_id("status")).to_have_text(["✓"])


@needs_socketio
async def test_lost_ack_is_retransmitted_and_deduplicated(open_page) -> None:
    """The gateway logs a publish but its answer is lost: the client sends it again with the
    same clientEventId, the gateway answers with the first ack, the room sees it once. (The
    page's own stream: its POSTs are the page's, where the route can lose an answer.)"""
    sse, sio = await open_page(share="false"), await open_page()
    await enter(sse, "sse", "Gus", "room-f")
    await enter(sio, "socketio", "Hal", "room-f")
    lost = []

    async def lose_first_answer(route: Route) -> None:
        if lost:
            await route.continue_()
            return
        lost.append(await route.fetch())  # the gateway does the work...
        await route.abort("connectionreset")  # ...and the answer never arrives

    await sse.route(re.compile(r"/sse/sessions/[^/]+/publish$"), lose_first_answer)
    await say(sse, "exactly once")
    await expect(mine(sse).get_by_test_id("status")).to_have_text(["✓"])
    await expect(theirs(sio)).to_have_text(["exactly once"])
    assert lost and lost[0].status == 200
    first_ack = (await lost[0].json())["result"]["offset"]
    assert await mine(sse).get_attribute("data-status") == "acked"
    assert await sse.evaluate("window.rtgw.client.stats.retransmits") == 1
    assert first_ack in await mine(sse).get_by_test_id("status").get_attribute("title")
    await say(sio, "still one each")
    await expect(theirs(sse)).to_have_text(["still one each"])
    await expect(theirs(sio)).to_have_text(["exactly once"])


@pytest.mark.parametrize("transport", ["sse", pytest.param("socketio", marks=needs_socketio)])
async def test_lost_session_is_reported_as_a_gap(open_page, gw: ThreadedGateway, transport: str) -> None:
    """The session ends on the server while the client is away: the client opens a new one,
    joins its room again and says what it may have missed, instead of pretending. (SSE on the
    page's own stream, so that the page's route holds it away.)"""
    room = f"room-g-{transport}"
    page = await open_page(share="false")
    await enter(page, transport, "Ivy", room)
    old_sid = await page.get_by_test_id("sid").inner_text()
    await server_says(gw, room, "before")
    await expect(theirs(page)).to_have_text(["before"])

    outage = re.compile(r"/sse/connect|/socket\.io/")
    await page.route(outage, lambda route: route.abort("internetdisconnected"))
    await page.get_by_test_id("drop").click()
    await expect(page.get_by_test_id("state")).to_have_text("reconnecting")

    async def end_session() -> None:
        gw.gateway.close(gw.gateway.sessions[old_sid], "test: the session expired")

    await gw.arun(end_session())
    await server_says(gw, room, "missed")
    await page.unroute(outage)

    await expect(page.get_by_test_id("recovery")).to_have_attribute("data-complete", "false")
    await expect(page.get_by_test_id("recovery")).to_have_text(f"incomplete · gap in {room}")
    await expect(page.get_by_test_id("log")).to_contain_text(f"gap in {room}")
    await expect(page.get_by_test_id("state")).to_have_text("open")
    await expect(page.get_by_test_id("sid")).not_to_have_text(old_sid)
    await page.wait_for_function("window.rtgw.client.pending === 0")  # joined again
    await server_says(gw, room, "after")
    await expect(theirs(page)).to_have_text(["before", "after"])


async def server_says(gw: ThreadedGateway, room: str, text: str) -> None:
    await gw.arun(gw.gateway.emit("/chat", "message", {"name": "server", "text": text}, to=room))


@pytest.mark.parametrize(
    "transport", ["sse", pytest.param("socketio", marks=needs_socketio), pytest.param("socketio-polling", marks=needs_socketio)]
)
async def test_js_api_over_each_transport(open_page, gw: ThreadedGateway, transport: str) -> None:
    """rtgateway.js used directly: the same answers, errors and calls whatever the transport."""
    page = await open_page()
    sid = await page.evaluate(
        """async (transport) => {
            const { connect } = await import("/client/rtgateway.js");
            const client = (window.api = connect({ namespace: "/chat", transport, name: "api" }));
            window.got = [];
            client.on("*", (envelope) => window.got.push(envelope));
            client.onCall("confirm", (data) => ({ doubled: data.n * 2 }));
            await client.ready;
            return client.sid;
        }""",
        transport,
    )
    result = await page.evaluate(
        """async () => {
            const client = window.api;
            const refused = (promise) => promise.then(
                () => null, (e) => ({ name: e.name, code: e.code, isError: e instanceof Error }));
            return {
                transport: client.transport,
                joined: await client.join("room-api"),
                sum: await client.emit("sum", [1, 2, 3]),
                whoami: await client.emit("whoami"),
                notJoined: await refused(client.publish("elsewhere", { text: "x" })),
                unknownEvent: await refused(client.emit("nope", 1)),
                published: await client.publish("room-api", { text: "to myself" }, { includeSelf: true }),
            };
        }"""
    )
    assert result["transport"] in {"sse": {"sse"}, "socketio": {"polling", "websocket"}, "socketio-polling": {"polling"}}[transport]
    assert result["joined"]["room"] == "room-api" and result["sum"] == 6
    whoami = result["whoami"]
    assert (whoami["sid"], whoami["name"], whoami["rooms"]) == (sid, "api", ["room-api"])  # the name reaches /chat on every transport
    assert whoami.get("user") is None  # anonymous
    assert result["notJoined"] == {"name": "GatewayError", "code": "not_joined", "isError": True}
    assert result["unknownEvent"]["code"] == "unknown_event"
    await page.wait_for_function("window.got.some((e) => e.data?.text === 'to myself')")

    # Server -> client: a call answered through onCall, and an emit to the session's own room.
    assert await gw.arun(gw.gateway.call("/chat", sid, "confirm", {"n": 21}, timeout=timeout(5))) == {"doubled": 42}
    await gw.arun(gw.gateway.emit("/chat", "news", {"headline": "hi"}, to=sid))
    await page.wait_for_function("window.got.some((e) => e.event === 'news' && e.room === window.api.sid)")
    await page.evaluate("window.api.close()")

    # A refused connect is a GatewayError carrying the gateway's code, and nothing retries it.
    forged = jwt.encode({"sub": "admin", "admin": True, "exp": int(time.time()) + 60}, "not-the-gateway-key-" * 2, algorithm="HS256")
    refusals = await page.evaluate(
        """async ([transport, forged]) => {
            const { connect } = await import("/client/rtgateway.js");
            const attempt = async (options) => {
                const client = connect({ transport, ...options });
                try { await client.ready; return "opened"; }
                catch (e) { return { code: e.code, state: client.state, reconnects: client.reconnects }; }
            };
            return [
                await attempt({ namespace: "/chat", token: "wrong" }),
                await attempt({ namespace: "/chat", token: async () => forged }),
                await attempt({ namespace: "/nowhere" }),
            ];
        }""",
        [transport, forged],
    )
    assert refusals == [
        {"code": "malformed_token", "state": "closed", "reconnects": 0},
        {"code": "invalid_token", "state": "closed", "reconnects": 0},
        {"code": "unknown_namespace", "state": "closed", "reconnects": 0},
    ]


async def test_malformed_frames_are_reported_and_skipped(open_page) -> None:
    """A stream with broken frames between good ones: each broken one is an `error` event, the
    good ones still arrive, and a replay of what was seen is dropped as a duplicate. (The page's
    own stream, `share: false`: the page's route serves it.)"""
    page = await open_page()
    sid, key = "A" * 22, "k" * 22
    good = {"event": "message", "room": "lobby", "offset": "5-1", "data": {"text": "good"}, "sender": None, "clientEventId": None, "ts": 1}
    body = (
        f"id: {sid}:{key};\nretry: 1000\nevent: open\n"
        'data: {"sid": "%s", "key": "%s", "namespace": "/chat", "pingInterval": 1000, "pingTimeout": 1000, "maxPayload": 1000, "rooms": []}\n\n'
        ": ping\r\n\r\n"
        "event: message\ndata: {not json\n\n"
        'event: message\ndata: {"event": "message", "room": "lobby", "data": "no offset"}\n\n'
        f"id: {sid}:{key};lobby=5-1\nevent: message\ndata: {json.dumps(good)}\n\n"
    ) % (sid, key)
    resumed_with = []

    async def fake_stream(route: Route) -> None:
        resumed_with.append(route.request.headers.get("last-event-id"))
        await route.fulfill(status=200, content_type="text/event-stream", body=body)  # then it ends: reconnect

    await page.route(re.compile(r"/sse/connect"), fake_stream)
    await page.evaluate(
        """async () => {
            const { connect } = await import("/client/rtgateway.js");
            const client = (window.api = connect({ namespace: "/chat", transport: "sse", share: false }));
            window.got = [];
            window.errors = [];
            client.on("message", (envelope) => window.got.push(envelope.data.text));
            client.on("error", (e) => window.errors.push(e.code));
        }"""
    )
    await page.wait_for_function("window.api.stats.duplicates >= 1")  # the second stream replayed "good"
    await page.evaluate("window.api.close()")
    assert await page.evaluate("window.got") == ["good"]
    errors = await page.evaluate("window.errors")
    assert set(errors) == {"malformed_frame"} and len(errors) >= 4  # two per stream
    assert resumed_with[0] is None and resumed_with[1] == f"{sid}:{key};lobby=5-1"  # the cursor carries the key


class SilentStream:
    """An SSE endpoint that sends `open` and then nothing, not even a ping: a dead stream
    that TCP would not notice for a long time. CORS is open: the page lives elsewhere."""

    SID = "S" * 22
    KEY = "K" * 22

    def __init__(self) -> None:
        self.connects: list[str | None] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        cors = [(b"access-control-allow-origin", b"*"), (b"access-control-allow-headers", b"*"),
                (b"access-control-allow-methods", b"GET, POST, DELETE")]
        if scope["method"] == "OPTIONS" or scope["path"] != "/sse/connect":
            await send({"type": "http.response.start", "status": 204 if scope["method"] == "OPTIONS" else 404, "headers": cors})
            await send({"type": "http.response.body", "body": b""})
            return
        self.connects.append(dict(scope["headers"]).get(b"last-event-id", b"").decode() or None)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream"), *cors]})
        info = {"sid": self.SID, "key": self.KEY, "namespace": "/chat", "pingInterval": 300, "pingTimeout": 300,
                "maxPayload": 1000, "rooms": []}
        await send({"type": "http.response.body", "more_body": True,
                    "body": f"id: {self.SID}:{self.KEY};\nevent: open\ndata: {json.dumps(info)}\n\n".encode()})
        while (await receive())["type"] != "http.disconnect":
            pass


@pytest.fixture
def silent_stream() -> Iterator[tuple[str, SilentStream]]:
    app = SilentStream()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout(10)
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "silent server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", app
    server.should_exit = True
    thread.join(timeout(10))


async def test_silent_stream_is_detected_and_resumed(open_page, silent_stream) -> None:
    """No byte for pingInterval + pingTimeout: the client calls the stream dead and resumes
    from its last id, instead of waiting on a connection that will never speak again. (A stream of
    its own, `share: false`: the silent server has no /sse/multiplex.)"""
    url, app = silent_stream
    page = await open_page()
    await page.evaluate(
        """async (url) => {
            const { connect } = await import("/client/rtgateway.js");
            const client = (window.api = connect({ url, namespace: "/chat", transport: "sse", share: false }));
            window.reasons = [];
            client.on("reconnect", ({ reason }) => window.reasons.push(reason.code));
            await client.ready;
        }""",
        url,
    )
    await page.wait_for_function("window.reasons.length >= 2")
    await page.evaluate("window.api.close()")
    assert set(await page.evaluate("window.reasons")) == {"timeout"}
    assert app.connects[0] is None and app.connects[1] == f"{SilentStream.SID}:{SilentStream.KEY};"


@pytest.mark.parametrize("transport", ["sse", pytest.param("socketio", marks=needs_socketio)])
async def test_admin_password_unlocks_private_rooms(open_page, transport: str) -> None:
    """With the admin password the page trades it for a JWT at POST /demo/token (through the
    client's token function) and may join private: rooms; a guest may not."""
    admin, guest = await open_page(), await open_page()
    async with admin.expect_response(re.compile(r"/demo/token$")) as token_answer:
        await enter(admin, transport, "Root", "private:ops", password=ADMIN_PASSWORD)
    assert (await token_answer.value).status == 200
    await expect(admin.get_by_test_id("role")).to_have_text("admin")
    await expect(admin.get_by_test_id("admin-notice")).to_be_hidden()
    assert await admin.evaluate("window.rtgw.client.key") != await admin.evaluate("window.rtgw.client.sid")

    await guest.get_by_test_id("transport-sse").check()
    await guest.get_by_test_id("room").fill("private:ops")
    await guest.get_by_test_id("connect").click()
    await expect(guest.get_by_test_id("state")).to_have_text("open")
    await expect(guest.get_by_test_id("role")).to_have_text("guest")
    await expect(guest.get_by_test_id("log")).to_contain_text("cannot join private:ops: forbidden_room")

    await say(admin, "for admins only")
    await expect(mine(admin).get_by_test_id("status")).to_have_text(["✓"])
    assert await theirs(guest).count() == 0


async def test_wrong_admin_password_is_refused(open_page) -> None:
    page = await open_page()
    await page.get_by_test_id("transport-sse").check()
    await page.get_by_test_id("admin-password").fill("not-the-password")
    await page.get_by_test_id("connect").click()
    await expect(page.get_by_test_id("state")).to_have_text("closed")
    await expect(page.get_by_test_id("admin-notice")).to_be_visible()
    await expect(page.get_by_test_id("log")).to_contain_text("invalid_token")
    assert await page.evaluate("window.rtgw.client.reconnects") == 0
    await expect(page.get_by_test_id("connect")).to_be_enabled()  # the visitor may try again


async def test_admin_disabled_says_how_to_enable_it(open_page, gw_without_admin: ThreadedGateway) -> None:
    """Without GATEWAY_ADMIN_TOKEN, /demo/token answers 403 and the page shows its message."""
    page = await open_page(gateway=gw_without_admin)
    await page.get_by_test_id("transport-sse").check()
    await page.get_by_test_id("admin-password").fill("anything-at-all-here")
    await page.get_by_test_id("connect").click()
    await expect(page.get_by_test_id("admin-notice")).to_be_visible()
    await expect(page.get_by_test_id("admin-notice")).to_contain_text("GATEWAY_ADMIN_TOKEN")
    await expect(page.get_by_test_id("state")).to_have_text("closed")
    await expect(page.get_by_test_id("log")).to_contain_text("forbidden")


@pytest.mark.parametrize("transport", ["sse", pytest.param("socketio", marks=needs_socketio)])
async def test_page_replaced_by_another_tab_stops(open_page, transport: str) -> None:
    """A second page resumes the first page's session with its key (a copied key, a second
    tab): the first gets close {replaced}, says so, and does not fight back."""
    first, second = await open_page(), await open_page()
    await enter(first, transport, "Jo", f"room-r-{transport}")
    sid, key = await first.evaluate("[window.rtgw.client.sid, window.rtgw.client.key]")
    resumed = await second.evaluate(
        r"""async ([transport, sid, key]) => {
            if (transport === "sse") {
                const response = await fetch(`/sse/connect?namespace=/chat&sid=${sid}`, { headers: { "X-Session-Key": key } });
                const reader = response.body.getReader();
                const decoder = new TextDecoder();
                let text = "";
                while (!/event: open\ndata: .*\n/.test(text)) {
                    const { value, done } = await reader.read();
                    if (done) throw new Error(`the stream ended: ${response.status} ${text}`);
                    text += decoder.decode(value, { stream: true });
                }
                window.kept = reader; // keep the stream open
                return JSON.parse(/event: open\ndata: (.*)\n/.exec(text)[1]).sid;
            }
            const { io } = await import("/client/socket.io.esm.min.js");
            const socket = (window.kept = io("/chat", { auth: { sid, key }, forceNew: true, reconnection: false }));
            return (await new Promise((resolve) => socket.once("open", resolve))).sid;
        }""",
        [transport, sid, key],
    )
    assert resumed == sid
    await expect(first.get_by_test_id("state")).to_have_text("closed")
    await expect(first.get_by_test_id("log")).to_contain_text("error replaced")
    assert await first.evaluate("window.rtgw.client.reconnects") == 0
    await expect(first.get_by_test_id("reconnects")).to_have_text("0")
