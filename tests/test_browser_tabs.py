"""Many tabs of one browser on one gateway, in a real Chromium (one browser context: one
connection pool, as a user's profile). The issue's test, for `sse`, `socketio-polling` and
`auto`: 10 tabs over HTTP/1.1 and 20 over HTTP/2 through the shipped nginx TLS configuration
each join within 2 s, each publish once (acked), each receive the others' messages exactly
once; then the tab holding the shared connection closes and the others, publishing again
at once, lose and repeat nothing (`pytest -s` prints the table: tabs x transport x HTTP
version). Over HTTP/1.1, where the browser allows six connections per host for all the tabs,
tabs with a stream each (`share: false`) say that they are stalled, and tabs that share one
stream (the default) do not.

Every tab runs tests/js/tab.js (loaded into each page): it connects with rtgateway.js,
joins one room, publishes, and records what it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from playwright.async_api import Error as PlaywrightError

from comparison.proxy import ProxyProcess

from .servers import ThreadedGateway, free_port, timeout, wait_state
from .test_browser import CHROMIUM, SOCKETIO_BUILD, WAIT
from .test_browser_shared import expect_streams, leader, shared_polls, streams

ROOT = Path(__file__).resolve().parents[1]
TAB_SCRIPT = ROOT / "tests" / "js" / "tab.js"
HTTP2_CONF = ROOT / "deploy" / "nginx" / "http2-tls.conf"
NGINX = Path("/usr/sbin/nginx")
JOIN_WITHIN = timeout(2) * 1000  # ms: the bound for every tab's join

expect.set_options(timeout=WAIT)
# Ten to twenty Chromium tabs and a 2 s join bound: run alone, after the parallel part (serial).
pytestmark: list[pytest.MarkDecorator] = [pytest.mark.browser, pytest.mark.serial]
if not CHROMIUM.exists():
    pytestmark = [pytest.mark.browser, pytest.mark.serial, pytest.mark.skip(reason="needs /usr/bin/chromium (make system-deps)")]
needs_nginx = pytest.mark.skipif(not NGINX.exists(), reason=f"{NGINX} is absent (scripts/system-deps.sh installs it)")
needs_socketio = pytest.mark.skipif(not SOCKETIO_BUILD.exists(), reason="needs `npm ci` (socket.io-client)")


@pytest.fixture(scope="module")
def gw() -> Iterator[ThreadedGateway]:
    # Every tab comes from 127.0.0.1 (through nginx, or straight): more sessions at once than
    # one address may open by default.
    gateway = ThreadedGateway(address_session_burst=1000, session_publish_burst=1000).start()
    yield gateway
    gateway.stop()


class Http2Proxy:
    """nginx with deploy/nginx/http2-tls.conf, a self-signed certificate made for 127.0.0.1."""

    def __init__(self, upstream_port: int, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        cert, key = workdir / "cert.pem", workdir / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )
        self.port = free_port()
        conf = workdir / HTTP2_CONF.name
        conf.write_text(
            HTTP2_CONF.read_text().replace("{{LISTEN_ADDRESS}}", "127.0.0.1").replace("{{LISTEN_PORT}}", str(self.port))
            .replace("{{UPSTREAM_PORT}}", str(upstream_port)).replace("{{WORKDIR}}", str(workdir))
            .replace("{{CERT}}", str(cert)).replace("{{KEY}}", str(key))
        )
        self.workdir = workdir
        self.process = subprocess.Popen(
            [str(NGINX), "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.url = f"https://127.0.0.1:{self.port}"
        self._await_ready(timeout(10))

    def _await_ready(self, within: float) -> None:
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
        deadline = time.monotonic() + within
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1, context=insecure) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        log = self.workdir / "error.log"
        self.stop()
        raise RuntimeError(f"nginx did not start: {log.read_text()[-2000:] if log.exists() else ''}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout(5))


@pytest.fixture(scope="module")
def http2(gw: ThreadedGateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Http2Proxy]:
    if not NGINX.exists():
        pytest.skip(f"{NGINX} is absent")
    proxy = Http2Proxy(gw.port, tmp_path_factory.mktemp("nginx-http2"))
    yield proxy
    proxy.stop()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """One profile, as a user's: every tab of a test shares its connection pool and storage."""
    ctx = await browser.new_context(ignore_https_errors=True)
    await ctx.add_init_script(path=str(TAB_SCRIPT))
    errors: list[str] = []
    ctx.on("weberror", lambda e: errors.append(str(e.error)))
    yield ctx
    await ctx.close()
    assert not errors, errors


@dataclass
class Outcome:
    """What the tabs saw: the issue's table row."""

    tabs: int
    joined: int  # tabs whose join was acked within JOIN_WITHIN
    acked: int  # tabs whose publish was acked
    delivered: int  # tabs that received every other tab's publish exactly once
    joins_ms: list[float]  # every acked join's time from connect(), fastest first
    join_errors: list[str]  # the joins that failed: their error codes
    joined_on: list[str]  # the transports (and sharing) the joins were acked on
    stalled: int  # tabs that emitted `stalled`
    took_s: float  # from the publishes to every tab having the others' messages (or giving up)

    def row(self) -> str:
        slowest = f"{self.joins_ms[-1]:.0f}" if self.joins_ms else "-"
        return (f"{', '.join(self.joined_on)} | {self.joined}/{self.tabs} ({slowest} ms) | {self.acked}/{self.tabs} "
                f"| {self.delivered}/{self.tabs} | {self.took_s:.1f} s")


async def open_tabs(context: BrowserContext, url: str, count: int) -> list[Page]:
    pages = []
    for _ in range(count):
        page = await context.new_page()
        page.set_default_timeout(WAIT)
        await page.goto(url + "/healthz")  # the gateway's origin, and nothing else loaded
        # Loaded before any tab connects (the client, its sharing module, socket.io-client if
        # served): later their fetch could wait behind the other tabs' streams.
        await page.evaluate(
            "Promise.all([import('/client/rtgateway.js'), import('/client/rtgateway-shared.js')])"
            ".then(([client]) => client.socketIOAvailable())"
        )
        pages.append(page)
    return pages


async def publish_round(pages: list[Page], room: str, names: list[str]) -> list[str]:
    """Every page publishes one message at once, from its name; their acks' offsets (or errors)."""
    acks: list[str] = await asyncio.gather(
        *(p.evaluate("([r, n]) => window.tab.publish(r, n)", [room, n]) for p, n in zip(pages, names, strict=True))
    )
    return acks


async def settle(pages: list[Page], expected: list[list[str]], within: float = 10) -> list[dict[str, Any]]:
    """Each page's state once it has as many messages as ``expected`` says (bounded: then as it is)."""
    deadline = time.monotonic() + timeout(within)
    while True:
        states: list[dict[str, Any]] = [await p.evaluate(
            "() => ({joinedMs: tab.joinedMs, joinError: tab.joinError, joinedOn: tab.joinedOn, received: tab.received, "
            "stalled: tab.stalled.length})"
        ) for p in pages]
        if all(len(s["received"]) >= len(e) for s, e in zip(states, expected, strict=True)) or time.monotonic() > deadline:
            return states
        await asyncio.sleep(0.1)


def carried(on: dict[str, Any]) -> str:
    """A client's {transport, sharing}, as the table shows it: "sse (leader)", "websocket"."""
    return f"{on['transport']} ({on['sharing']})" if on["sharing"] else str(on["transport"])


async def carriers_of(pages: list[Page]) -> list[str]:
    """What carries the pages' sessions now, each kind once."""
    return sorted({carried(await p.evaluate("({transport: tab.client.transport, sharing: tab.client.sharing})")) for p in pages})


def acked(acks: list[str]) -> int:
    return sum(isinstance(a, str) and not a.startswith("error") for a in acks)


def exactly_once(states: list[dict[str, Any]], expected: list[list[str]]) -> int:
    """How many pages received exactly the ``expected`` messages, each once (in any order: the
    senders are different tabs)."""
    return sum(sorted(s["received"]) == sorted(e) for s, e in zip(states, expected, strict=True))


def from_others(names: list[str]) -> list[list[str]]:
    """What each of ``names`` should receive when each of them publishes once: everyone else's."""
    return [[n for n in names if n != name] for name in names]


async def run_tabs(
    pages: list[Page], transport: str, room: str, options: dict[str, Any] | None = None, within: float = 10
) -> Outcome:
    """Join every tab at once, publish once from each, wait (bounded) until each has the others'."""
    names = [f"tab{i}" for i in range(len(pages))]
    spec = {"transport": transport, "room": room, "options": options or {}}
    await asyncio.gather(*(p.evaluate("(s) => window.tab.start(s)", {**spec, "name": n}) for p, n in zip(pages, names, strict=True)))
    began = time.monotonic()
    acks = await publish_round(pages, room, names)
    states = await settle(pages, from_others(names), within)
    took = time.monotonic() - began
    joins = sorted(s["joinedMs"] for s in states if s["joinedMs"] is not None)
    return Outcome(
        tabs=len(pages),
        joined=sum(ms <= JOIN_WITHIN for ms in joins),
        acked=acked(acks),
        delivered=exactly_once(states, from_others(names)),
        joins_ms=joins,
        join_errors=[s["joinError"] for s in states if s["joinError"] is not None],
        joined_on=sorted({carried(s["joinedOn"]) for s in states if s["joinedOn"]}),
        stalled=sum(s["stalled"] > 0 for s in states),
        took_s=took,
    )


def everything(outcome: Outcome) -> bool:
    n = outcome.tabs
    return (outcome.joined, outcome.acked, outcome.delivered) == (n, n, n)


# -- The test: every tab joins, publishes and receives; the connection's tab closes ---

TABLE_HEAD = ("| tabs | transport | HTTP | joined on | joined <= 2 s (slowest) | acked | delivered | in | closed | "
              "then acked | then delivered | in | carried by |")


@pytest.fixture(scope="module")
def table() -> Iterator[list[str]]:
    """Rows of the issue's table (tabs x transport x HTTP version), printed at the end (pytest -s)."""
    rows: list[str] = []
    yield rows
    if rows:
        print("\n" + "\n".join([TABLE_HEAD, "|---" * (TABLE_HEAD.count("|") - 1) + "|", *rows]))


async def every_tab_publishes_then_one_closes(
    pages: list[Page], transport: str, http: str, gw: ThreadedGateway, table: list[str], *, label: str = ""
) -> None:
    """The issue's scenario on ``pages`` (one browser context): every tab joins within 2 s from its
    connect(), every tab publishes once and each publish is acked, each tab receives the others'
    messages exactly once. Then the tab holding the shared connection closes (leader mode: a
    SharedWorker would outlive any tab) and at once every remaining tab publishes again, while
    the others take over: each gets every message of both rounds exactly once. `sse` tabs, and
    `auto` tabs that stay on SSE (``label``: behind a proxy that blocks WebSocket), share one
    carrier before and after; `socketio-polling` tabs one long-poll before and after."""
    room = f"tabs-{len(pages)}-{transport}{label}"  # 10 tabs over HTTP/1.1, 20 over HTTP/2
    on_sse = transport == "sse" or label == "-ws-blocked"
    names = [f"tab{i}" for i in range(len(pages))]
    first = await run_tabs(pages, transport, room, {"share": "leader"})
    then = await carriers_of(pages)
    # sse: its tabs' sessions on one carrier (a closed context's may take a moment to go).
    carriers = await expect_streams(gw, carriers=1, own=0) if on_sse else streams(gw)[0]
    held, rest = await leader(pages)
    closed = f"{names[pages.index(held)]}, the leader ({len(carriers)} carrier open; tabs on {', '.join(then)})"
    if transport == "socketio-polling":  # every tab's polls wait in the leader's one shared long-poll
        assert then == ["polling (leader)"], then
        assert await held.evaluate(SHARED_POLLS) > 0
    await held.close()
    mine = [names[pages.index(p)] for p in rest]
    again = [f"{n} again" for n in mine]
    began = time.monotonic()
    acks = await publish_round(rest, room, again)
    expected = [[n for n in names if n != me] + [a for a in again if a != f"{me} again"] for me in mine]
    # Within 10 s: tabs with a long-poll each waited ~25 s here, for pings to free the pool.
    states = await settle(rest, expected, within=10)
    took = time.monotonic() - began
    delivered = exactly_once(states, expected)
    table.append(
        f"| {len(pages)} | {transport} | {http} | {first.row()} | {closed} "
        f"| {acked(acks)}/{len(rest)} | {delivered}/{len(rest)} | {took:.1f} s | {', '.join(await carriers_of(rest))} |"
    )
    print(f"\n{transport} over {http}, {len(pages)} tabs: joins (ms) {[round(ms) for ms in first.joins_ms]}")
    assert everything(first), first
    assert (acked(acks), delivered) == (len(rest), len(rest)), (acks, states)
    if on_sse:  # the others' sessions moved to a new carrier, held by one of them
        assert then == ["sse (leader)"], then
        assert not carriers & await expect_streams(gw, carriers=1, own=0)
        await leader(rest)
    if transport == "socketio-polling":  # the others' polls wait in one shared long-poll again, a new tab's
        await wait_state(lambda: shared_polls(gw) == (1, len(rest)), 10,
                         f"one shared poll naming the {len(rest)} remaining connections, not {shared_polls(gw)}")
        await leader(rest)


# The shared long-polls the leader page's owner made (rtgateway-shared.js, Owner._pollLoop).
SHARED_POLLS = ("import('/client/rtgateway-shared.js').then(({Share}) => "
                "[...Share._pages.values()].reduce((n, s) => n + (s.owner?.stats.polls ?? 0), 0))")

# The transports that hold an HTTP request open per stream or long-poll (the issue's).
HTTP_TRANSPORTS = ["sse", pytest.param("socketio-polling", marks=needs_socketio), pytest.param("auto", marks=needs_socketio)]


@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
async def test_ten_tabs_over_http1(
    context: BrowserContext, gw: ThreadedGateway, table: list[str], transport: str
) -> None:
    """Straight to the gateway (uvicorn: HTTP/1.1, six connections for all the tabs). `sse` and
    `auto` tabs share one stream (`auto` then moves to WebSocket, which the pool does not count).
    `socketio-polling` tabs share one long-poll (their handshakes and POSTs are their own, short
    requests): with a long-poll each, once the ten sat idle six held the pool and the round after
    the close waited ~25 s for the gateway's pings to end them."""
    await every_tab_publishes_then_one_closes(await open_tabs(context, gw.url, 10), transport, "http/1.1", gw, table)


@needs_socketio
async def test_ten_auto_tabs_behind_a_websocket_blocker_hand_over(
    context: BrowserContext, gw: ThreadedGateway, table: list[str]
) -> None:
    """`auto` as the users behind a proxy that refuses WebSocket have it: the ten tabs stay on the
    shared SSE stream (straight to the gateway they are all on WebSocket before the close, and
    the hand-over is not exercised), so closing the tab that holds it hands it over for real."""
    proxy = ProxyProcess(gw.url, "block-websocket", start_timeout=timeout(10))
    try:
        pages = await open_tabs(context, proxy.url, 10)
        await every_tab_publishes_then_one_closes(
            pages, "auto", "http/1.1, WebSocket blocked", gw, table, label="-ws-blocked")
        assert await carriers_of([p for p in pages if not p.is_closed()]) == ["sse (leader)"]
    finally:
        for page in context.pages:  # before the proxy goes: no tab sees its stream cut
            with contextlib.suppress(PlaywrightError):
                await page.evaluate("() => window.tab?.client?.close()")
            await page.close()
        proxy.stop()


@needs_nginx
@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
async def test_twenty_tabs_over_http2(
    context: BrowserContext, http2: Http2Proxy, gw: ThreadedGateway, table: list[str], transport: str
) -> None:
    """Through deploy/nginx/http2-tls.conf (a self-signed certificate made here): every request
    is a stream of one connection, so no transport waits for another tab's."""
    pages = await open_tabs(context, http2.url, 20)
    assert await pages[0].evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
    await every_tab_publishes_then_one_closes(pages, transport, "h2", gw, table)


# -- HTTP/2 through the shipped nginx configuration -------------------------------------------


@needs_nginx
@pytest.mark.parametrize("share", [False, True], ids=["own-streams", "shared"])
async def test_twenty_tabs_over_http2_sse(context: BrowserContext, http2: Http2Proxy, share: bool) -> None:
    """HTTP/2 is the fix for tabs with a stream each (every request a stream of one connection);
    the default, one stream shared by the tabs, works there too."""
    pages = await open_tabs(context, http2.url, 20)
    assert await pages[0].evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
    outcome = await run_tabs(pages, "sse", f"h2-sse-{share}", {"share": share})
    assert everything(outcome), outcome
    assert outcome.stalled == 0, outcome
    assert {await p.evaluate("tab.client.sharing") for p in pages} == ({"worker"} if share else {None})


# -- HTTP/1.1: the six-connection pool, and what the client says about it ----------------------


async def test_eight_sse_tabs_over_http1_say_they_are_stalled(context: BrowserContext, gw: ThreadedGateway) -> None:
    pages = await open_tabs(context, gw.url, 8)
    spec = {"transport": "sse", "room": "h1-stall", "options": {"stallAfter": 1000, "share": False}}
    # Not awaited: six streams take the browser's six connections, and the other joins wait.
    starts = [asyncio.ensure_future(p.evaluate("(s) => window.tab.start(s)", {**spec, "name": f"tab{i}"}))
              for i, p in enumerate(pages)]
    try:
        # Which two tabs go without a connection is the browser's choice: any two of the eight.
        deadline = time.monotonic() + timeout(15)
        while True:
            counts = [await p.evaluate("() => tab.stalled.length") for p in pages]
            stalled = [p for p, n in zip(pages, counts, strict=True) if n > 0]
            if len(stalled) >= 2:
                break
            assert time.monotonic() < deadline, f"stalled reports per tab: {counts}"
            await asyncio.sleep(0.1)
        report = await stalled[0].evaluate("tab.stalled[0]")
        assert report["cause"] == "connection_limit" and report["protocol"] == "http/1.1", report
        assert report["what"] in ("connection", "join") and report["waited"] >= 1000, report
    finally:
        for page in pages:  # frees the pool: the pending starts then end
            await page.close()
        await asyncio.gather(*starts, return_exceptions=True)


async def test_eight_shared_sse_tabs_over_http1_do_not_stall(context: BrowserContext, gw: ThreadedGateway) -> None:
    """The tabs of the test above with the client's default, one stream for all (one SharedWorker):
    the pool never runs out, so none stalls and every tab gets every other tab's message.
    (tests/test_browser_shared.py: the same for bursts, the leader tab, and without either.)"""
    pages = await open_tabs(context, gw.url, 8)
    outcome = await run_tabs(pages, "sse", "h1-shared", {"stallAfter": 1000})
    assert everything(outcome) and outcome.stalled == 0, outcome
    assert [await p.evaluate("tab.client.sharing") for p in pages] == ["worker"] * 8


async def test_demo_page_says_too_many_tabs(context: BrowserContext, gw: ThreadedGateway) -> None:
    """Six SSE tabs with a stream each hold the pool; the demo page (?share=false: its own stream
    too) opened next shows why it does not connect."""
    demo = await context.new_page()  # loaded first: its own files need the pool too
    await demo.goto(gw.url + "/?transport=sse&share=false")
    await expect(demo.locator("body")).to_have_attribute("data-ready", "true")
    pages = await open_tabs(context, gw.url, 6)
    spec = {"transport": "sse", "room": "h1-demo", "options": {"share": False}}
    starts = [asyncio.ensure_future(p.evaluate("(s) => window.tab.start(s)", {**spec, "name": f"tab{i}"}))
              for i, p in enumerate(pages)]
    try:
        await demo.get_by_test_id("connect").click()
        notice = demo.get_by_test_id("stall-notice")
        await expect(notice).to_be_visible(timeout=WAIT + 5000)
        await expect(notice).to_contain_text("too many tabs on HTTP/1.1 — see")
    finally:
        for page in pages:
            await page.close()
        await asyncio.gather(*starts, return_exceptions=True)
    # The pool freed: the demo's session opens and the notice goes.
    await expect(demo.get_by_test_id("state")).to_have_text("open", timeout=WAIT + 10000)
    await expect(demo.get_by_test_id("stall-notice")).to_be_hidden()


@needs_socketio
async def test_ten_auto_tabs_over_http1_do_not_starve(context: BrowserContext, gw: ThreadedGateway) -> None:
    """auto starts on SSE and moves to WebSocket, which the six-connection pool does not count,
    so the streams it opened first are given back and no tab waits for another's."""
    pages = await open_tabs(context, gw.url, 10)
    outcome = await run_tabs(pages, "auto", "h1-auto")
    assert everything(outcome), outcome
    # On the tabs' shared stream every message can arrive before the last tab's move is done.
    for page in pages:
        try:
            await page.wait_for_function("tab.client.transport === 'websocket'")
        except PlaywrightError:
            raise AssertionError(await page.evaluate("[tab.client.transport, tab.moves]")) from None
