"""The demo's "Send file" control in Chromium: a file published as bytes on one transport arrives
byte-exact, as a download link, on another; a file over the page's limit is refused in the page.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Awaitable, Callable, Iterator

import pytest
from playwright.async_api import Page, expect

from .servers import ThreadedGateway
from .test_browser import ARTIFACTS, CHROMIUM, SOCKETIO_BUILD, WAIT, enter

# Chromium pages moving files: run alone, after the parallel part.
pytestmark = [pytest.mark.browser, pytest.mark.serial]
if not CHROMIUM.exists():
    pytestmark = [pytest.mark.browser, pytest.mark.serial, pytest.mark.skip(reason="needs Debian's chromium at /usr/bin/chromium")]
if not SOCKETIO_BUILD.exists():
    pytestmark = [pytest.mark.browser, pytest.mark.serial, pytest.mark.skip(reason="needs socket.io-client: `npm ci`")]
expect.set_options(timeout=WAIT)

MAX_PAYLOAD = 64 * 1024
# demo.js: three quarters of maxPayload (base64 on SSE and Socket.IO polling), less FILE_MESSAGE_ROOM.
FILE_LIMIT = MAX_PAYLOAD * 3 // 4 - 4096

OpenPage = Callable[[], Awaitable[Page]]


@pytest.fixture(scope="module")
def gw() -> Iterator[ThreadedGateway]:
    gateway = ThreadedGateway(ping_interval=1.0, ping_timeout=1.0, max_payload=MAX_PAYLOAD).start()
    yield gateway
    gateway.stop()


async def send_file(page: Page, name: str, content: bytes) -> None:
    await page.get_by_test_id("file").set_input_files({"name": name, "mimeType": "application/octet-stream", "buffer": content})
    await page.get_by_test_id("send-file").click()


def received_files(page: Page):
    return page.locator("[data-testid=message][data-own=false] [data-testid=message-file]")


async def downloaded(page: Page, index: int = 0) -> bytes:
    """The bytes behind a received file's download link (its Blob URL), read in the page."""
    values = await page.evaluate(
        """async (index) => {
            const link = document.querySelectorAll('[data-own=false] [data-testid=file-link]')[index];
            if (!link.href.startsWith("blob:")) throw new Error(`not a Blob URL: ${link.href}`);
            return Array.from(new Uint8Array(await (await fetch(link.href)).arrayBuffer()));
        }""",
        index,
    )
    return bytes(values)


async def test_a_file_crosses_sse_and_socketio_byte_exact(open_page: OpenPage) -> None:
    ada, bob = await open_page(), await open_page()
    room = "files"
    await enter(ada, "sse", "Ada", room)
    await enter(bob, "socketio", "Bob", room)
    await expect(ada.get_by_test_id("file-limit")).to_have_text(f"up to {FILE_LIMIT / 1024:.1f} KiB a file")

    # SSE + POST (the bytes as a base64 marker) to Socket.IO (a binary attachment): every byte value.
    sent = bytes(range(256)) * 8 + b"\x00\xff\xfe"
    await send_file(ada, "every-byte.bin", sent)
    await expect(ada.locator("[data-testid=message][data-own=true]")).to_have_attribute("data-status", "acked")
    await expect(received_files(bob)).to_have_count(1)
    await expect(received_files(bob).get_by_test_id("file-link")).to_have_text("every-byte.bin")
    await expect(received_files(bob).get_by_test_id("file-size")).to_have_attribute("data-bytes", str(len(sent)))
    await expect(bob.locator("[data-testid=message][data-own=false] [data-testid=sender]")).to_have_text("Ada")
    assert await downloaded(bob) == sent
    # Chat lines go on beside files.
    await ada.get_by_test_id("text").fill("did it arrive?")
    await ada.get_by_test_id("text").press("Enter")
    await expect(bob.locator("[data-testid=message][data-own=false] [data-testid=message-text]")).to_have_text(["did it arrive?"])

    # And back: Socket.IO to SSE.
    answer = random.Random(7).randbytes(5000)
    await send_file(bob, "answer.dat", answer)
    await expect(received_files(ada)).to_have_count(1)
    await expect(received_files(ada).get_by_test_id("file-size")).to_have_text(" · 4.9 KiB")
    assert await downloaded(ada) == answer

    ARTIFACTS.mkdir(exist_ok=True)
    await bob.screenshot(path=str(ARTIFACTS / "demo-file.png"), full_page=True)


async def test_the_largest_file_the_page_allows_passes_socketio_polling_and_one_more_byte_is_refused(
    open_page: OpenPage,
) -> None:
    poller, reader = await open_page(), await open_page()
    room = "files-largest"
    await enter(reader, "sse", "Reader", room)
    await enter(poller, "socketio-polling", "Poller", room)

    await send_file(poller, "too-big.bin", bytes(FILE_LIMIT + 1))
    notice = poller.get_by_test_id("file-notice")
    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text(f"“too-big.bin” is {(FILE_LIMIT + 1) / 1024:.1f} KiB")
    await expect(notice).to_contain_text("maxPayload of 64.0 KiB")
    await expect(poller.locator("[data-testid=message][data-own=true]")).to_have_count(0)  # nothing published

    # Long-polling carries it as base64 in one request bounded by maxPayload: the limit is sized for that.
    largest = random.Random(11).randbytes(FILE_LIMIT)
    await send_file(poller, "largest.bin", largest)
    await expect(notice).to_be_hidden()
    await expect(poller.locator("[data-testid=message][data-own=true]")).to_have_attribute("data-status", "acked")
    await expect(received_files(reader)).to_have_count(1)  # the refused one never went out
    await expect(received_files(reader).get_by_test_id("file-link")).to_have_text("largest.bin")
    digest = await reader.evaluate(
        """async () => {
            const link = document.querySelector('[data-own=false] [data-testid=file-link]');
            const bytes = await (await fetch(link.href)).arrayBuffer();
            return Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
        }"""
    )
    assert digest == hashlib.sha256(largest).hexdigest()
