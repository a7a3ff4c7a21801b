"""The fences (gateway/fences/) against the installed libraries: every private name they
touch exists on real objects, and every assumption they make still holds.

A failure here means a library changed under a fence: read its new version before
raising the upper bound in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import httpx
import pytest
import uvicorn
import uvloop
from starlette.types import Receive, Scope, Send

from gateway.fences.asyncio_eager import run_eagerly
from gateway.fences.exit_signals import exit_signals_heard
from gateway.fences.uvicorn_transport import abort, body_writer, pause_until_written

from .servers import timeout

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop,
}


# -- asyncio_eager: Future._asyncio_future_blocking --------------------------------


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_pending_future_asks_its_driver_to_block_on_it(loop_name: str) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        future = runner.get_loop().create_future()
        assert future._asyncio_future_blocking is False
        waited = future.__await__().send(None)
        # what a task (and run_eagerly) reads, then clears, before parking on it
        assert waited is future and future._asyncio_future_blocking is True


@pytest.mark.parametrize("loop_name", LOOPS)
def test_run_eagerly_parks_on_a_future_as_a_task_would(loop_name: str) -> None:
    async def scenario() -> None:
        gate = asyncio.get_running_loop().create_future()
        results: list[tuple[Any, BaseException | None]] = []
        finished = asyncio.Event()

        async def wait_for_gate() -> str:
            return f"got {await gate}"

        def done(result: Any, error: BaseException | None) -> None:
            results.append((result, error))
            finished.set()

        run_eagerly(wait_for_gate(), done)
        assert results == [] and gate._asyncio_future_blocking is False  # reset, as a task does
        gate.set_result("v")
        await asyncio.wait_for(finished.wait(), timeout(5))
        assert results == [("got v", None)]

    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        runner.run(scenario())


def test_run_eagerly_finishes_a_ready_coroutine_before_returning() -> None:
    async def seven() -> int:
        return 7

    async def ready() -> int:
        return await seven()  # an await that has nothing to wait for

    results: list[tuple[Any, BaseException | None]] = []
    run_eagerly(ready(), lambda result, error: results.append((result, error)))
    assert results == [(7, None)]  # no loop at all: not even one turn was needed


def test_run_eagerly_takes_any_awaitable_not_only_a_coroutine() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ready, pending = loop.create_future(), loop.create_future()
        ready.set_result(5)
        results: list[tuple[Any, BaseException | None]] = []
        finished = asyncio.Event()

        def done(result: Any, error: BaseException | None) -> None:
            results.append((result, error))
            finished.set()

        run_eagerly(ready, done)
        assert results == [(5, None)]  # stepped through its __await__, at once
        finished.clear()
        run_eagerly(pending, done)
        pending.set_exception(ValueError("no"))
        await asyncio.wait_for(finished.wait(), timeout(5))
        assert len(results) == 2 and isinstance(results[1][1], ValueError)

    asyncio.run(scenario())


# -- uvicorn_transport: send.__self__.transport --------------------------------------


@contextmanager
def serving(app: Callable[[Scope, Receive, Send], Any], http: str, loop_name: str) -> Iterator[str]:
    """``app`` served by a real uvicorn on its own thread and loop; yields its URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, http=http, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.Runner(loop_factory=LOOPS[loop_name]).run(server.serve()), daemon=True)
    thread.start()
    for _ in range(int(timeout(10) / 0.01)):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout(10))


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_uvicorn_send_leads_to_a_transport_that_can_be_paused_and_aborted(http: str, loop_name: str) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        transport = send.__self__.transport  # type: ignore[attr-defined]  # the one private reach
        seen["paused"] = pause_until_written(send)
        seen["limits"] = transport.get_write_buffer_limits()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        seen["aborted"] = abort(send)
        seen["closing"] = transport.is_closing()
        seen["aborted again"] = abort(send)

    with serving(app, http, loop_name) as url, pytest.raises(httpx.TransportError):
        httpx.get(url, timeout=timeout(5))
    assert seen == {"paused": True, "limits": (0, 0), "aborted": True, "closing": True, "aborted again": False}


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_body_writer_frames_chunks_as_uvicorn_does_between_the_head_and_the_last_chunk(http: str, loop_name: str) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["before the head"] = body_writer(send)
        pause_until_written(send)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        writer = body_writer(send)
        if writer is None:  # h11 frames its body itself: the stream keeps writing through send
            seen["writer"] = None
            await send({"type": "http.response.body", "body": b"one, two, three"})
            return
        seen["writer"] = "direct"
        seen["taken"] = writer.write(b"one, ") and writer.write(b"two", b", ")
        await writer.drained()  # nothing held: returns at once
        await send({"type": "http.response.body", "body": b"three", "more_body": False})
        seen["after the last chunk"] = body_writer(send)

    with serving(app, http, loop_name) as url:
        body = httpx.get(url, timeout=timeout(5)).content
    assert body == b"one, two, three"
    if http == "httptools":
        assert seen == {"before the head": None, "writer": "direct", "taken": True, "after the last chunk": None}
    else:
        assert seen == {"before the head": None, "writer": None}


# -- exit_signals: uvicorn installs its handlers before the lifespan starts ---------


def test_uvicorn_handles_exit_signals_around_the_lifespan_and_hears_them_through_the_chain() -> None:
    # Signals are only handled on the main thread; pytest (and each xdist worker) runs tests there.
    assert threading.current_thread() is threading.main_thread()
    seen: dict[str, Any] = {}
    raised_again: list[int] = []

    def after_uvicorn(sig: int, frame: FrameType | None) -> None:
        raised_again.append(sig)  # uvicorn re-raises what it caught once it has served

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        assert (await receive())["type"] == "lifespan.startup"
        seen["installed at startup"] = signal.getsignal(signal.SIGTERM)
        with exit_signals_heard(lambda: seen.setdefault("heard", True)):
            await send({"type": "lifespan.startup.complete"})
            signal.raise_signal(signal.SIGTERM)  # a real signal, handled between two bytecodes
            assert (await receive())["type"] == "lifespan.shutdown"  # uvicorn heard it too: it stopped
        await send({"type": "lifespan.shutdown.complete"})

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning"))
    before = signal.signal(signal.SIGTERM, after_uvicorn)
    try:
        asyncio.run(asyncio.wait_for(server.serve(), timeout(10)))
        restored = signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, before)
    handler = seen["installed at startup"]
    assert getattr(handler, "__self__", None) is server and handler.__func__ is uvicorn.Server.handle_exit
    assert seen.get("heard") is True
    assert server.should_exit
    assert restored is after_uvicorn  # our link taken out, uvicorn's restored what it found
    assert raised_again == [signal.SIGTERM]


def test_signals_nobody_handles_are_left_alone() -> None:
    async def inside() -> object:
        with exit_signals_heard(lambda: None):
            return signal.getsignal(signal.SIGTERM)

    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert asyncio.run(inside()) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)
