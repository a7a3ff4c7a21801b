from __future__ import annotations

import asyncio
import contextlib
import pathlib
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from .drivers import TRANSPORTS, Driver, make_driver
from .servers import ROOT, ThreadedGateway


@pytest.fixture(scope="session")
def server() -> Iterator[ThreadedGateway]:
    """One gateway for the conformance suite; tests isolate themselves by room names."""
    gw = ThreadedGateway(
        ping_interval=1.0, ping_timeout=1.0, log_max_length=20, call_timeout=2.0,
        recovery_window=30.0,
    ).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test run's own on the shared Redis, deleted afterwards."""
    import uuid

    import redis

    from .servers import REDIS_URL

    prefix = f"rtgwtest-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def clients(server: ThreadedGateway) -> AsyncIterator[Callable[..., Driver]]:
    """Factory of drivers bound to the shared server; all are closed after the test."""
    made: list[Driver] = []

    def make(transport: str, url: str | None = None) -> Driver:
        driver = make_driver(transport, url or server.url)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        with contextlib.suppress(Exception):
            await driver.close()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    """Debian's Chromium through Playwright, headless; launch() gives every module a fresh
    temporary profile. (The browser tests skip by themselves when Chromium is absent.)"""
    from playwright.async_api import async_playwright

    from .test_browser import ARGS, CHROMIUM

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def silent_peer() -> AsyncIterator[str]:
    """A loopback TCP server that accepts every connection and never answers (nor closes)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.fixture(scope="session")
def client_module(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """gateway/static's client, copied beside a package.json saying its .js files are ES modules
    (the repository's package.json does not), for the Node tests to import."""
    where = tmp_path_factory.mktemp("rtgateway-js")
    for name in ("rtgateway.js", "rtgateway-links.js", "rtgateway-protocol.js"):
        shutil.copy(ROOT / "gateway" / "static" / name, where / name)
    (where / "package.json").write_text('{"type": "module"}\n')
    return where / "rtgateway.js"


@pytest.fixture
async def open_page(browser: Any, gw: ThreadedGateway) -> AsyncIterator[Any]:
    """Factory of demo pages, each in its own context (one profile: its own connection pool and
    shared stream) unless `beside` names a page whose context (another tab of that profile) it
    joins; `share` is the demo's ?share= ("false": the page's own stream, as a test that
    intercepts the SSE routes needs, since a SharedWorker's requests pass no page route).
    Page errors fail the test. (The browser test modules declare `gw`.)"""
    from playwright.async_api import expect

    from .test_browser import WAIT, not_installed

    contexts, errors = [], []

    async def make(
        *, without_socketio: bool = False, gateway: ThreadedGateway | None = None, share: str | None = None,
        beside: Any = None,
    ) -> Any:
        if beside is None:
            context = await browser.new_context(viewport={"width": 1280, "height": 860})
            contexts.append(context)
        else:
            context = beside.context
        page = await context.new_page()
        page.set_default_timeout(WAIT)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        if without_socketio:
            await page.route("**/client/socket.io.esm.min.js", not_installed)
        await page.goto((gateway or gw).url + "/" + (f"?share={share}" if share else ""))
        await expect(page.locator("body")).to_have_attribute("data-ready", "true")
        return page

    yield make
    for context in contexts:
        await context.close()
    assert not errors, errors


@pytest.fixture
async def http(gw: ThreadedGateway) -> AsyncIterator[Any]:
    """An httpx client of the requesting module's gateway (``gw``), with a long timeout for long-polls."""
    import httpx

    from .servers import timeout

    async with httpx.AsyncClient(base_url=gw.url, timeout=timeout(40)) as client:
        yield client
