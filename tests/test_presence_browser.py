"""The demo's presence list, and rtgateway.js's presence and volatile events, in Chromium."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest
from playwright.async_api import Page, expect

from .servers import ThreadedGateway
from .test_browser import ARTIFACTS, CHROMIUM, SOCKETIO_BUILD, WAIT, enter

pytestmark = pytest.mark.browser
if not CHROMIUM.exists():
    pytestmark = [pytest.mark.browser, pytest.mark.skip(reason="needs Debian's chromium at /usr/bin/chromium")]
expect.set_options(timeout=WAIT)


@pytest.fixture(scope="module")
def gw() -> Iterator[ThreadedGateway]:
    gateway = ThreadedGateway(ping_interval=1.0, ping_timeout=1.0, presence_event_window=0.1).start()
    yield gateway
    gateway.stop()


@pytest.fixture
async def pages(open_page: Callable[[], Awaitable[Page]]) -> list[Page]:
    """Two visitors of the demo, each in a context of its own (conftest's open_page)."""
    return [await open_page(), await open_page()]


def present(page: Page):
    return page.get_by_test_id("present")


async def test_the_demo_lists_who_is_in_the_room_and_follows_joins_and_leaves(pages: list[Page]) -> None:
    ada, bob = pages
    room = "presence-demo"
    await enter(ada, "sse", "Ada", room)
    await expect(present(ada)).to_have_text(["Ada (you)"])
    await enter(bob, "socketio" if SOCKETIO_BUILD.exists() else "sse", "Bob", room)
    await expect(present(bob)).to_have_text(["Ada", "Bob (you)"])  # read with presence(room)
    await expect(present(ada)).to_have_text(["Ada (you)", "Bob"])  # told by presence.join
    await expect(ada.get_by_test_id("presence-count")).to_have_text("2")

    # A volatile publish through rtgateway.js: delivered with no offset, Ada's position unmoved.
    await ada.evaluate("""() => {
        window.seen = [];
        window.rtgw.client.on("cursor", (envelope, meta) => window.seen.push({envelope, meta}));
    }""")
    before = await ada.evaluate("() => window.rtgw.client._offsets.get('presence-demo') ?? null")
    ack = await bob.evaluate("() => window.rtgw.client.publish('presence-demo', {x: 1}, {event: 'cursor', volatile: true})")
    assert ack == {"room": room, "volatile": True}
    await ada.wait_for_function("() => window.seen.length === 1")
    seen = await ada.evaluate("() => window.seen[0]")
    assert seen["envelope"]["offset"] is None and seen["envelope"]["volatile"] is True
    assert seen["envelope"]["data"] == {"x": 1} and seen["meta"] == {"replayed": False, "volatile": True}
    assert await ada.evaluate("() => window.rtgw.client._offsets.get('presence-demo') ?? null") == before

    ARTIFACTS.mkdir(exist_ok=True)
    await ada.screenshot(path=str(ARTIFACTS / "demo-presence.png"), full_page=True)
    await bob.get_by_test_id("leave").click()
    await expect(present(ada)).to_have_text(["Ada (you)"])  # told by presence.leave
    page = await ada.evaluate("() => window.rtgw.client.presence('presence-demo')")
    assert [m["claims"] for m in page["members"]] == [{"name": "Ada"}] and page["next"] is None
