"""The demo page with ``transport: "auto"`` (its default) in a real Chromium, behind the
comparison's proxy: WebSocket where it passes, SSE where a proxy refuses it, that refusal
remembered across a reload, and messages missed while "offline" shown as replayed.

Each test gets its own browser context (its own storage), so what one remembers is its own.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from comparison.proxy import ProxyProcess

from .servers import ThreadedGateway, timeout
from .test_browser import CHROMIUM, SOCKETIO_BUILD, WAIT
from .test_js_auto import NETWORKS, Network, Route

expect.set_options(timeout=WAIT)

pytestmark: list[pytest.MarkDecorator] = [pytest.mark.browser]
if not CHROMIUM.exists() or not SOCKETIO_BUILD.exists():
    pytestmark = [pytest.mark.browser, pytest.mark.skip(reason="needs /usr/bin/chromium and `npm ci` (make setup does both)")]


@pytest.fixture(scope="module")
def gw() -> Iterator[ThreadedGateway]:
    # Every page comes through the proxy's one address.
    gateway = ThreadedGateway(address_session_burst=1000).start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def proxies(gw: ThreadedGateway) -> Iterator[dict[str, ProxyProcess]]:
    started = {name: ProxyProcess(gw.url, name, start_timeout=timeout(10)) for name in ("passthrough", "block-websocket")}
    yield started
    for proxy in started.values():
        proxy.stop()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    ctx.on("weberror", lambda e: errors.append(str(e.error)))
    yield ctx
    await ctx.close()
    assert not errors, errors


async def load(page: Page, url: str) -> None:
    page.set_default_timeout(WAIT)
    await page.goto(url + "/")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")


async def join(page: Page, name: str, room: str) -> None:
    """Connect with the page's default transport (auto: the test checks it is the default)."""
    await expect(page.get_by_test_id("transport-auto")).to_be_checked()
    await page.get_by_test_id("name").fill(name)
    await page.get_by_test_id("room").fill(room)
    await page.get_by_test_id("connect").click()
    await expect(page.get_by_test_id("state")).to_have_text("open")
    await expect(page.get_by_test_id("log")).to_contain_text(f"joined {room}")


async def history(page: Page) -> list[str]:
    entries: list[dict[str, Any]] = await page.evaluate("window.rtgw.client.history")
    return [f"{e['transport']}:{e['outcome']}" for e in entries]


async def test_auto_moves_to_websocket_where_it_passes(context: BrowserContext, proxies: dict[str, ProxyProcess]) -> None:
    page = await context.new_page()
    await load(page, proxies["passthrough"].url)
    await join(page, "Ada", "auto-open")
    await expect(page.get_by_test_id("transport-in-use")).to_have_text("websocket")
    await expect(page.get_by_test_id("transport-history")).to_have_text("sse → websocket")
    await expect(page.get_by_test_id("log")).to_contain_text("moved sse → websocket")
    assert "websocket:moved" in await history(page)


async def test_auto_stays_on_sse_behind_a_blocker_and_remembers_it(
    context: BrowserContext, proxies: dict[str, ProxyProcess]
) -> None:
    page = await context.new_page()
    await load(page, proxies["block-websocket"].url)
    await join(page, "Bob", "auto-blocked")
    await expect(page.get_by_test_id("transport-in-use")).to_have_text("sse")
    await expect(page.get_by_test_id("log")).to_contain_text("websocket failed here")
    first = await history(page)
    assert "websocket:probing" in first and "websocket:failed" in first, first
    remembered = await page.evaluate("Object.keys(localStorage).filter((k) => k.startsWith('rtgateway:network:'))")
    assert remembered == [f"rtgateway:network:{proxies['block-websocket'].url}"], remembered

    await page.reload()
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await join(page, "Bob", "auto-blocked")
    await expect(page.get_by_test_id("transport-in-use")).to_have_text("sse")
    second = await history(page)
    # The second load goes straight to SSE: WebSocket is not tried at all, first or beside.
    assert second[:2] == ["sse:trying", "sse:open"], second
    assert not [h for h in second if h.startswith("websocket")], second
    await expect(page.get_by_test_id("transport-history")).to_have_text("sse")


async def test_going_offline_shows_missed_messages_as_replayed(
    browser: Browser, context: BrowserContext, proxies: dict[str, ProxyProcess]
) -> None:
    away = await context.new_page()
    other = await browser.new_context()
    try:
        here = await other.new_page()
        for page, name in ((away, "Away"), (here, "Here")):
            await load(page, proxies["passthrough"].url)
            await join(page, name, "auto-offline")
        await expect(away.get_by_test_id("transport-in-use")).to_have_text("websocket")
        await away.get_by_test_id("offline-seconds").fill("2")
        await away.get_by_test_id("offline").click()
        await expect(away.get_by_test_id("state")).to_have_text("reconnecting")
        for text in ("while you were away 1", "while you were away 2"):
            await here.get_by_test_id("text").fill(text)
            await here.get_by_test_id("text").press("Enter")
        await expect(here.locator("[data-testid=message][data-own=true] [data-testid=status]")).to_have_text(["✓", "✓"])
        await expect(away.get_by_test_id("state")).to_have_text("open", timeout=WAIT + 2000)
        replayed = away.locator('[data-testid=message][data-replayed=true] [data-testid=message-text]')
        await expect(replayed).to_have_text(["while you were away 1", "while you were away 2"])
        await expect(away.get_by_test_id("recovery")).to_have_text(re.compile(r"complete · [1-9]\d* replayed"))
        # Live again: a new message is not marked.
        await here.get_by_test_id("text").fill("back live")
        await here.get_by_test_id("text").press("Enter")
        live = away.locator("[data-testid=message][data-own=false]").last
        await expect(live.get_by_test_id("message-text")).to_have_text("back live")
        await expect(live).not_to_have_attribute("data-replayed", "true")
    finally:
        await other.close()


# Each route and the transport the page's auto ends on behind it. The drop proxy cuts every
# connection, the page's own loads included: lifetimes long enough for those to finish.
BEHIND = {
    "buffering": NETWORKS["buffering"],
    "drop": Network("drop", "websocket", ("--drop-min", "2", "--drop-max", "4", "--seed", "7")),
    "nginx": NETWORKS["nginx"],
    "nginx-no-sse": NETWORKS["nginx-no-sse"],
}


@pytest.mark.parametrize("name", list(BEHIND))
async def test_auto_behind_each_route_ends_where_it_can_and_delivers_once(
    browser: Browser, context: BrowserContext, gw: ThreadedGateway, tmp_path: pathlib.Path, name: str
) -> None:
    """The page behind the route (its auto on the transport the route allows) gets what a page
    straight on the gateway publishes, each message once."""
    network = BEHIND[name]
    route = Route(network, gw, tmp_path)
    other = await browser.new_context()
    try:
        behind, direct = await context.new_page(), await other.new_page()
        room = f"auto-{name}"
        for page, url, who in ((behind, route.url, "Behind"), (direct, gw.url, "Direct")):
            await load(page, url)
            await join(page, who, room)
        await expect(behind.get_by_test_id("transport-in-use")).to_have_text(network.ends_on)
        texts = [f"{name} {n}" for n in range(1, 4)]
        for text in texts:
            await direct.get_by_test_id("text").fill(text)
            await direct.get_by_test_id("text").press("Enter")
        await expect(direct.locator("[data-testid=message][data-own=true] [data-testid=status]")).to_have_text(["✓"] * 3)
        received = behind.locator("[data-testid=message][data-own=false] [data-testid=message-text]")
        await expect(received).to_have_text(texts)
        # One more, seen after the others: nothing of theirs came twice meanwhile.
        await direct.get_by_test_id("text").fill("last")
        await direct.get_by_test_id("text").press("Enter")
        await expect(received).to_have_text([*texts, "last"])
        await expect(behind.get_by_test_id("transport-in-use")).to_have_text(network.ends_on)
        if name.startswith("nginx"):
            assert "websocket:open" not in await history(behind)
    finally:
        await other.close()
        route.stop()
