"""What every locustfile here shares: the command-line (and web UI) options, the transport mix.

The options are Locust's own (``events.init_command_line_parser``), so they appear in the
web UI's start form too (``include_in_web_ui``); ``--transport-mix`` sets each user class's
weight, by the class's ``transport_label``.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import gevent
import gevent.event
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests import _locust_fence

_locust_fence.install()

TRANSPORTS = ("sse", "sio-websocket", "sio-default", "sio-polling", "auto")


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    # On the parser itself: Locust's own ``add_argument`` takes ``include_in_web_ui``, a group's does not.
    def option(*names: str, **kwargs: Any) -> None:
        parser.add_argument(*names, include_in_web_ui=True, **kwargs)

    option("--transport-mix", default="sse=1,sio-websocket=1,sio-default=1,sio-polling=1,auto=1",
           help="weights per transport, e.g. 'sse=3,sio-polling=1' (0 leaves one out)")
    option("--room-size", type=int, default=10, help="users per room")
    option("--publish-rate", type=float, default=1.0, help="messages per second per user")
    option("--payload-bytes", type=int, default=64, help="padding added to every message")
    option("--volatile-rate", type=float, default=0.0,
           help="volatile updates per second per user, beside the logged messages (not logged, may be dropped; "
                "with --publish-rate, within the gateway's per-session publish rate)")
    option("--target", choices=["direct", "proxy"], default="direct",
           help="connect to --host directly, or through --proxy-url")
    option("--proxy-url", default="http://127.0.0.1:8080", help="the proxy in front of the gateway")
    option("--namespace", default="/bench",
           help="the demo's /bench has no presence announcements (/chat has: a join costs a frame per member)")
    option("--sse-mode", choices=["auto", "stream", "poll"], default="auto",
           help="SSE: stream, poll (for buffering proxies), or auto (stream, polling if buffered)")
    # Not in the web UI: the comparison's load ladders use it to measure steady state only.
    parser.add_argument("--settle", type=float, default=0.0, include_in_web_ui=False,
                        help="seconds from the start in which users only connect and join; publishing starts "
                             "after them (the measured window: 'generator / steady window' marks its start, "
                             "'generator / late join' counts users that joined after it)")


@events.init.add_listener
def _weights(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    mix = dict(part.split("=") for part in options.transport_mix.split(",") if part)
    for cls in environment.user_classes:
        label = getattr(cls, "transport_label", None)
        if label is not None:
            cls.weight = int(mix.get(label, 0))


# -- steady state: users join first, then the measured window opens ---------------------------

window = {"opens_at": 0.0}  # wall-clock time publishing starts (0: at once); set when the test starts
stopping = gevent.event.Event()  # set when this process's users are being stopped (``test_stopping``)


@events.test_stopping.add_listener
def _stopping(**_: Any) -> None:
    stopping.set()


@events.test_start.add_listener
def _open_window(environment: Environment, **_: Any) -> None:
    """Where users run: with ``--settle S``, publishing starts S seconds after the test did, when
    every user has (normally) joined; a ``generator / steady window`` event marks that moment, so
    the master's statistics say when the measured window opened."""
    stopping.clear()
    options = environment.parsed_options
    settle = float(getattr(options, "settle", 0.0) or 0.0) if options is not None else 0.0
    if isinstance(environment.runner, MasterRunner) or settle <= 0:
        window["opens_at"] = 0.0
        return
    window["opens_at"] = time.time() + settle

    def opened() -> None:
        environment.events.request.fire(request_type="generator", name="steady window", response_time=0.0,
                                        response_length=0, exception=None, context={})

    marker = gevent.spawn_later(settle, opened)
    environment.events.test_stop.add_listener(lambda **_: marker.kill(block=False))


# -- distributed runs: every worker's last numbers reach the master -------------------------

FLUSH_WITHIN = 15.0  # seconds the master waits for its workers' final reports when the run stops


@events.init.add_listener
def _final_reports(environment: Environment, **_: Any) -> None:
    """Make the master wait, when the run stops, until every worker stopped its users and sent
    its last statistics. Left to itself, the master gives workers 0.5 s after ``quit`` before it
    writes its results, and the counts users report as they stop (``delivery / lost``) or a
    busy worker's last seconds would be missing from them."""
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        pending: set[str] = set()
        done = gevent.event.Event()

        def finished(msg: Any, **_: Any) -> None:
            pending.discard(msg.node_id)
            if not pending:
                done.set()

        def stopping(**_: Any) -> None:
            pending.clear()
            pending.update(worker.id for worker in runner.clients.all)
            if pending:
                done.clear()
                runner.send_message("rtgateway-finish")
                done.wait(FLUSH_WITHIN)

        runner.register_message("rtgateway-finished", finished)
        environment.events.test_stopping.add_listener(stopping)
    elif isinstance(runner, WorkerRunner):
        worker = runner

        def finish(**_: Any) -> None:
            worker.stop()  # every user's on_stop runs: the last counts are fired
            worker._send_stats()  # what Locust's own "quit" handling does, before it is too late
            worker.send_message("rtgateway-finished")

        worker.register_message("rtgateway-finish", finish, concurrent=True)


# -- the generator's garbage collector ------------------------------------------------------------


@events.init.add_listener
def _quiet_collector(environment: Environment, **_: Any) -> None:
    """Where users run: a full collection walks every object, Locust's and its libraries' own
    included, and holds the event loop meanwhile (tens of ms in a worker that has imported
    Locust, gevent and Flask). Freezing what exists once everything is imported leaves the
    collector only the objects the run makes. Each oldest-generation pass is reported
    (``generator / gc pause``), so a pause that remains is seen beside the loop lag."""
    if isinstance(environment.runner, MasterRunner):
        return
    gc.collect()
    gc.freeze()
    started = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            environment.events.request.fire(request_type="generator", name="gc pause",
                                            response_time=(time.perf_counter() - started[0]) * 1000,
                                            response_length=0, exception=None, context={})

    gc.callbacks.append(timed)


# -- the generator's event loop lag ------------------------------------------------------------

TICK = 0.02  # seconds between two looks at the event loop


@events.test_start.add_listener
def _watch_loop(environment: Environment, **_: Any) -> None:
    """Where users run (a worker, or a single process): how late the event loop wakes a timer.
    A burst of deliveries (one message to a room of 1,000) keeps the loop busy, and every
    socket served last waits for the others; neither the send lag nor receive-to-record sees
    that, this does (``generator / loop lag``)."""
    if isinstance(environment.runner, MasterRunner):
        return

    def watch() -> None:
        while True:
            started = time.perf_counter()
            gevent.sleep(TICK)
            late = (time.perf_counter() - started - TICK) * 1000
            environment.events.request.fire(request_type="generator", name="loop lag", response_time=max(0.0, late),
                                            response_length=0, exception=None, context={})

    watcher = gevent.spawn(watch)
    environment.events.test_stop.add_listener(lambda **_: watcher.kill(block=False))
