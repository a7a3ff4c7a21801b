"""The tabs of one browser share one stream (rtgateway-shared.js over /sse/multiplex), in a real
Chromium over plain HTTP/1.1, where the browser allows six connections per host for every tab:
ten `sse` tabs (and ten `auto` tabs behind a proxy that refuses WebSocket) join and receive a
burst exactly once, in order, over one connection held by a SharedWorker; in the leader-tab
fallback, closing the tab that holds the connection hands it over with nothing lost or
repeated; without SharedWorker and Web Locks each tab has its own stream, as before. Ten idle
`socketio-polling` tabs wait in one shared long-poll (/sio/multiplex) and a burst reaches them at once.

Every tab runs tests/js/shared_tab.js; the tabs of a test are pages of one browser context
(one profile: one connection pool, one SharedWorker per gateway).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from comparison.proxy import ProxyProcess
from gateway.metrics import read

from .servers import ThreadedGateway, timeout, wait_state
from .test_browser import CHROMIUM, SOCKETIO_BUILD, WAIT

ROOT = Path(__file__).resolve().parents[1]
TAB_SCRIPT = ROOT / "tests" / "js" / "shared_tab.js"
# No SharedWorker, no Web Locks: the browsers that get one stream per tab.
NEITHER = "delete window.SharedWorker; Object.defineProperty(Navigator.prototype, 'locks', {get: () => undefined});"
BURST = 10

pytestmark: list[pytest.MarkDecorator] = [pytest.mark.browser, pytest.mark.serial]
if not CHROMIUM.exists():
    pytestmark = [*pytestmark, pytest.mark.skip(reason="needs /usr/bin/chromium (make system-deps)")]
needs_socketio = pytest.mark.skipif(not SOCKETIO_BUILD.exists(), reason="needs `npm ci` (socket.io-client)")


@pytest.fixture(scope="module")
def gw() -> Iterator[ThreadedGateway]:
    # Every tab comes from 127.0.0.1: more new sessions at once than one address may open by default.
    gateway = ThreadedGateway(address_session_burst=1000, session_publish_burst=1000).start()
    yield gateway
    gateway.stop()


async def make_context(browser: Browser, *scripts: str) -> BrowserContext:
    ctx = await browser.new_context()
    for script in scripts:
        await ctx.add_init_script(script=script)
    await ctx.add_init_script(path=str(TAB_SCRIPT))
    return ctx


@pytest.fixture
async def contexts(browser: Browser) -> AsyncIterator[Any]:
    """Factory of browser contexts (one profile each); page errors fail the test."""
    made: list[BrowserContext] = []
    errors: list[str] = []

    async def make(*scripts: str) -> BrowserContext:
        ctx = await make_context(browser, *scripts)
        ctx.on("weberror", lambda e: errors.append(str(e.error)))
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        # Each tab ends its session first: a tab closed with its own Engine.IO long-poll (the
        # fallback) leaves that poll parked on the gateway until its ping interval, and the
        # gateway's shutdown would cancel it ("timeout graceful shutdown exceeded").
        await asyncio.gather(*(p.evaluate(CLOSE_CLIENT) for p in ctx.pages), return_exceptions=True)
        await ctx.close()
    assert not errors, errors


# What a tab does as it goes: ends its session (rtgateway.js close(): a DELETE, or Engine.IO's close).
CLOSE_CLIENT = "() => window.tab?.client?.close()"


async def open_tabs(context: BrowserContext, url: str, count: int) -> list[Page]:
    pages = []
    for _ in range(count):
        page = await context.new_page()
        page.set_default_timeout(WAIT)
        await page.goto(url + "/healthz")  # the gateway's origin, nothing else loaded
        # Loaded before any tab connects: later, its fetch would wait behind the others' streams.
        await page.evaluate("Promise.all([import('/client/rtgateway.js'), import('/client/rtgateway-shared.js')]).then(() => true)")
        pages.append(page)
    return pages


async def start(pages: list[Page], transport: str, room: str, options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    spec = {"transport": transport, "room": room, "options": options or {}}
    started: list[dict[str, Any]] = await asyncio.gather(
        *(p.evaluate("(s) => window.tab.start(s)", {**spec, "name": f"tab{i}"}) for i, p in enumerate(pages))
    )
    assert all(s["joined"] for s in started), started
    return started


async def received(page: Page) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = await page.evaluate("window.tab.received")
    return got


async def await_bursts(pages: list[Page], offsets: list[str], within: float = 15) -> None:
    """Every page got exactly the messages at ``offsets``, once each, in order."""
    deadline = time.monotonic() + timeout(within)
    while True:
        got = [await received(p) for p in pages]
        if all(len(g) >= len(offsets) for g in got) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    for page, messages in zip(pages, got, strict=True):
        assert [m["offset"] for m in messages] == offsets, (page.url, messages)
        assert [m["n"] for m in messages] == list(range(len(offsets)))


def streams(gw: ThreadedGateway) -> tuple[set[str], int]:
    """The carriers' ids, and how many SSE streams of a session of their own are open (read on the
    gateway's loop)."""

    async def read() -> tuple[set[str], int]:
        multiplexed: Any = gw.gateway.transports["sse-multiplex"]
        sse: Any = gw.gateway.transports["sse"]
        return set(multiplexed.carriers), sum(channel.session is not None for channel in sse.streams)

    result: tuple[set[str], int] = gw.run(read())
    return result


async def expect_streams(gw: ThreadedGateway, carriers: int, own: int) -> set[str]:
    """Wait (bounded) until that many carriers and own streams are open (closed ones take a moment to go)."""
    await wait_state(lambda: (len(streams(gw)[0]), streams(gw)[1]) == (carriers, own), 10,
                     f"{carriers} carriers and {own} streams of their own, not {streams(gw)}")
    return streams(gw)[0]


# Whether a page holds the shared connection (leader mode): its Share runs the Owner.
LEADS = "import('/client/rtgateway-shared.js').then(({Share}) => [...Share._pages.values()].some((s) => s.owner !== undefined))"


async def leader(pages: list[Page]) -> tuple[Page, list[Page]]:
    """The one page of ``pages`` that holds the shared connection (leader mode), and the others."""
    leads = [await p.evaluate(LEADS) for p in pages]
    assert leads.count(True) == 1, leads
    held = pages[leads.index(True)]
    return held, [p for p in pages if p is not held]


async def test_ten_sse_tabs_share_one_stream(contexts: Any, gw: ThreadedGateway) -> None:
    pages = await open_tabs(await contexts(), gw.url, 10)
    started = await start(pages, "sse", "shared-sse")
    assert {s["sharing"] for s in started} == {"worker"}, started
    await expect_streams(gw, carriers=1, own=0)
    offsets = await pages[0].evaluate("([r, n]) => window.tab.burst(r, 'tab0', 0, n)", ["shared-sse", BURST])
    await await_bursts(pages[1:], offsets)
    assert await received(pages[0]) == []  # its own messages are not sent back


@needs_socketio
async def test_ten_auto_tabs_behind_a_websocket_blocker_share_one_stream(contexts: Any, gw: ThreadedGateway) -> None:
    proxy = ProxyProcess(gw.url, "block-websocket", start_timeout=timeout(10))
    try:
        pages = await open_tabs(await contexts(), proxy.url, 10)
        started = await start(pages, "auto", "shared-auto")
        assert {s["sharing"] for s in started} == {"worker"}, started
        offsets = await pages[0].evaluate("([r, n]) => window.tab.burst(r, 'tab0', 0, n)", ["shared-auto", BURST])
        await await_bursts(pages[1:], offsets)
        assert [await p.evaluate("window.tab.client.transport") for p in pages] == ["sse"] * 10
        await expect_streams(gw, carriers=1, own=0)
    finally:
        proxy.stop()


@needs_socketio
async def test_ten_auto_tabs_behind_a_buffering_websocket_blocker_share_one_long_poll(
    contexts: Any, gw: ThreadedGateway
) -> None:
    """Behind a proxy that blocks WebSocket and buffers responses, SSE can only long-poll, one
    connection per tab, and from the sixth tab on HTTP/1.1 nothing is left (idle polls hold the
    six until a ping). auto, once it sees the buffering, takes Socket.IO's long-poll, which the
    tabs share: one poll for the ten, a burst to all of them at once, exactly once, in order."""
    proxy = ProxyProcess(gw.url, "block-websocket+buffering", start_timeout=timeout(10))
    try:
        pages = await open_tabs(await contexts(), proxy.url, 10)
        started = await start(pages, "auto", "buffered-auto")
        assert {s["sharing"] for s in started} == {"worker"}, started
        assert [await p.evaluate("window.tab.client.transport") for p in pages] == ["polling"] * 10
        await wait_state(lambda: shared_polls(gw) == (1, 10), 10, f"one shared poll naming 10 connections, not {shared_polls(gw)}")
        assert streams(gw) == (set(), 0)  # no SSE poll of their own left holding a connection
        offsets = await pages[9].evaluate("([r, n]) => window.tab.burst(r, 'tab9', 0, n)", ["buffered-auto", BURST])
        await await_bursts(pages[:9], offsets, within=10)
    finally:
        proxy.stop()


def shared_polls(gw: ThreadedGateway) -> tuple[float, float]:
    """Shared Socket.IO long-polls waiting on the gateway, and the connections they name."""
    samples = read(gw.gateway.metrics.render())
    return (sum(v for _, v in samples.get("gateway_shared_polls", [])),
            sum(v for _, v in samples.get("gateway_shared_poll_connections", [])))


@needs_socketio
async def test_ten_idle_polling_tabs_share_one_long_poll(contexts: Any, gw: ThreadedGateway) -> None:
    """Ten `socketio-polling` tabs, idle after joining: their polls wait in one shared long-poll
    (the gateway sees one, naming all ten), so a burst from one tab reaches the nine others at
    once, exactly once and in order. With a long-poll each, ten idle tabs held the browser's six
    connections, and the burst's POSTs waited for the gateway's pings (~25 s) to free one."""
    pages = await open_tabs(await contexts(), gw.url, 10)
    started = await start(pages, "socketio-polling", "shared-polling")
    assert {(s["sharing"], s["transport"]) for s in started} == {("worker", "polling")}, started
    await wait_state(lambda: shared_polls(gw) == (1, 10), 10, f"one shared poll naming 10 connections, not {shared_polls(gw)}")
    offsets = await pages[0].evaluate("([r, n]) => window.tab.burst(r, 'tab0', 0, n)", ["shared-polling", BURST])
    await await_bursts(pages[1:], offsets, within=5)
    assert await received(pages[0]) == []


@needs_socketio
async def test_more_polling_tabs_than_a_shared_poll_may_name_are_asked_in_turns(contexts: Any) -> None:
    """A gateway that lets one shared poll name 4 connections, and 10 `socketio-polling` tabs: the
    owner's first poll naming all is refused (422 on `s`); it then names fewer at a time, the
    others in the next round, and every tab still gets the burst exactly once and in order."""
    small = ThreadedGateway(address_session_burst=1000, session_publish_burst=1000, multiplex_max_sessions=4).start()
    context = await contexts()
    try:
        pages = await open_tabs(context, small.url, 10)
        started = await start(pages, "socketio-polling", "grouped-polling")
        assert {(s["sharing"], s["transport"]) for s in started} == {("worker", "polling")}, started
        offsets = await pages[0].evaluate("([r, n]) => window.tab.burst(r, 'tab0', 0, n)", ["grouped-polling", BURST])
        await await_bursts(pages[1:], offsets, within=10)
        polls, named = shared_polls(small)
        assert polls == 1 and 1 <= named <= 4, (polls, named)  # one poll at a time, within the limit
        rejected = read(small.gateway.metrics.render()).get("gateway_rejected_total", [])
        assert sum(v for labels, v in rejected if labels.get("code") == "validation_error") >= 1  # the first, refused
    finally:
        # The tabs go before their gateway: else it stops with their shared poll parked in it.
        await asyncio.gather(*(p.evaluate(CLOSE_CLIENT) for p in context.pages), return_exceptions=True)
        await context.close()
        small.stop()


async def test_closing_the_leader_tab_hands_the_stream_over(contexts: Any, gw: ThreadedGateway) -> None:
    pages = await open_tabs(await contexts(), gw.url, 10)
    started = await start(pages, "sse", "shared-leader", {"share": "leader"})
    assert {s["sharing"] for s in started} == {"leader"}, started
    held, others = await leader(pages)
    publisher, listeners = others[0], others[1:]
    first = await publisher.evaluate("([r, n]) => window.tab.burst(r, 'pub', 0, n)", ["shared-leader", BURST])
    await await_bursts(listeners, first)
    [old] = await expect_streams(gw, carriers=1, own=0)
    # The leader goes, and a burst is published at once, while the others take over.
    await held.close()
    second = await publisher.evaluate("([r, n]) => window.tab.burst(r, 'pub', n, n)", ["shared-leader", BURST])
    await await_bursts(listeners, first + second, within=20)
    await leader(others)  # one of them took over
    assert old not in await expect_streams(gw, carriers=1, own=0)
    assert [await p.evaluate("window.tab.client.sharing") for p in others] == ["leader"] * 9


@pytest.mark.parametrize("transport", ["sse", pytest.param("socketio-polling", marks=needs_socketio)])
async def test_five_tabs_without_shared_worker_or_web_locks_each_have_a_stream(
    contexts: Any, gw: ThreadedGateway, transport: str
) -> None:
    pages = await open_tabs(await contexts(NEITHER), gw.url, 5)
    room = f"shared-none-{transport}"
    started = await start(pages, transport, room)
    assert {s["sharing"] for s in started} == {None}, started
    if transport == "sse":
        await expect_streams(gw, carriers=0, own=5)
    offsets = await pages[0].evaluate("([r, n]) => window.tab.burst(r, 'tab0', 0, n)", [room, BURST])
    await await_bursts(pages[1:], offsets)
    # socketio-polling: each tab polls on its own (an earlier test's shared poll ends as its tabs close).
    await wait_state(lambda: shared_polls(gw) == (0, 0), 10, f"shared polls waiting: {shared_polls(gw)}")
