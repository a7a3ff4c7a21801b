"""rtgateway under load: one Locust user class per transport, on gevent-native clients.

    locust -f loadtests --host http://127.0.0.1:8000 --class-picker     (web UI: http://127.0.0.1:8089)
    locust -f loadtests --headless -u 40 -r 10 -t 60s --host http://127.0.0.1:8000 --processes -1 \\
        --target proxy --proxy-url http://127.0.0.1:8080 --room-size 10 --publish-rate 2

Every user connects to ``--namespace`` (``/bench``), joins a room shared with ``--room-size - 1`` others and
publishes ``--publish-rate`` messages a second on a fixed schedule. The clients are plain
gevent sockets (``loadtests/_light.py``), so a delivery costs the generator little; every
number is a Locust request event, so ``--processes`` (a master and workers) aggregates them
all on the master. What is measured (type / name):

    connect   / <transport>               handshake until the session is usable
    connect   / <transport>: ended        the session ended for good (close ``replaced``, resume
                                          refused); the user connects anew (failure)
    upgrade   / <transport>: websocket    Socket.IO's polling -> WebSocket upgrade happened, or
                                          ``auto`` moved its session from SSE to WebSocket
    upgrade   / <transport>: refused      it stayed on polling (``auto``: on SSE) (failure)
    publish   / <transport>               publish -> ack round trip (the event is logged)
    deliver   / <transport>               publish -> delivery latency at each receiver, from the
                                          scheduled send time in the payload; its RPS is deliveries/s
    delivery  / lost | duplicate | out-of-order | recovery gap   (failures, per receiver)
    volatile  / sent                      with ``--volatile-rate N``: each user also sends N volatile
                                          updates a second on its connection (count; a send refused
                                          or without a connection is a failure)
    volatile  / received                  volatile updates delivered, all receivers (count): at most
                                          sent x (room size - 1); the gateway may drop them (not a failure)
    deliver   / <transport>: volatile     their publish -> delivery latency, as ``deliver``; never
                                          in the loss / duplicate / order tracking
    generator / send lag                  the generator's own lag: how late its scheduler woke a publish
    generator / receive-to-record         from a read returning to its deliveries being recorded
    generator / loop lag                  how late the generator's event loop woke a timer (loadtests/_options.py)
    generator / gc pause                  each full collection in the generator (loadtests/_options.py)
    generator / steady window             with ``--settle S``: the moment publishing starts, S seconds after
                                          the test did (users only connect and join before it)
    generator / late join                 with ``--settle S``: a user whose connect finished after that
                                          moment (the join storm overlapped the measured window)

``loadtests/_blocking.py`` holds the same users on ``rtclient.blocking.BlockingClient`` (the
previous generator), kept to measure what the light clients save.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from typing import Any, Protocol

import gevent
from locust import User, constant, events, task
from locust.exception import StopUser

from loadtests import _options  # registers the options and the transport mix; the steady window
from loadtests._light import AutoClient, Lost, RequestFailed, Sink, SioClient, SioTransport, SseClient
from loadtests._tracking import SequenceTracker

_user_numbers = itertools.count()


class GatewayClient(Protocol):
    """What a user needs of its client (``_light`` clients, or ``_blocking``'s adapter)."""

    @property
    def ended(self) -> str | None: ...

    def connect(self, room: str) -> None: ...
    def publish(self, room: str, data: Any, event_id: str) -> None: ...
    def publish_volatile(self, room: str, data: Any) -> None: ...
    def upgraded_to_websocket(self, within: float) -> bool: ...
    def close(self) -> None: ...


def fire(kind: str, name: str, ms: float, exception: BaseException | None = None, length: int = 0) -> None:
    events.request.fire(request_type=kind, name=name, response_time=ms, response_length=length,
                        exception=exception, context={})


class GatewayUser(User):
    """Publishes on a fixed schedule, tracks what it receives; subclasses make the client."""

    abstract = True
    transport_label = "sse"
    upgrades = False  # Socket.IO's default client, auto: report whether the move to WebSocket happened
    fallback = "polling"  # where such a user stays when WebSocket is refused
    wait_time = constant(0)  # the publish task paces itself on a fixed schedule

    def make_client(self, url: str, sink: Sink) -> GatewayClient:
        raise NotImplementedError

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.options = options
        number = next(_user_numbers)
        # With --processes, each worker numbers its own users: the worker's index keeps rooms apart.
        worker = getattr(self.environment.runner, "worker_index", 0) or 0
        users_per_worker = 1_000_000
        self.room = f"load-{(worker * users_per_worker + number) // max(1, options.room_size)}"
        self.sender = f"{os.getpid()}-{number}"
        self.url = options.proxy_url if options.target == "proxy" else self.host
        self.tracker = SequenceTracker()
        self.seq = 0
        self.abandoned = 0
        self.pad = "x" * options.payload_bytes
        self.interval = 1.0 / options.publish_rate if options.publish_rate > 0 else None
        self.next_at = time.time()
        self.client: GatewayClient | None = None
        self._connect()
        self.volatile_sender = (gevent.spawn(self._send_volatile, 1.0 / options.volatile_rate)
                                if options.volatile_rate > 0 else None)

    def _connect(self) -> None:
        started = time.perf_counter()
        client = self.make_client(self.url, Sink(self._delivered, self._gap))
        try:
            client.connect(self.room)
        except Exception as exc:
            fire("connect", self.transport_label, _ms(started), exc)
            client.close()
            self.client = None
            return
        fire("connect", self.transport_label, _ms(started))
        self.client = client
        opens_at = _options.window["opens_at"]
        if opens_at and time.time() > opens_at:
            fire("generator", "late join", _ms(started))
        # A random phase: users started together do not publish together, and at a low rate
        # (a room of 1,000, each user publishing once a minute) some publish within a short run.
        # With --settle, the schedule starts when the steady window opens: nothing is sent before.
        self.next_at = max(time.time(), opens_at) - (self.interval or 0.0) * random.random()
        if self.upgrades:
            gevent.spawn(self._watch_upgrade, client, started)

    def _watch_upgrade(self, client: GatewayClient, started: float) -> None:
        if client.upgraded_to_websocket(3.0):
            fire("upgrade", f"{self.transport_label}: websocket", _ms(started))
        else:
            fire("upgrade", f"{self.transport_label}: refused", _ms(started),
                 RuntimeError(f"stayed on {self.fallback}: the move to WebSocket did not happen"))

    @task
    def publish(self) -> None:
        client = self.client
        if client is not None and client.ended is not None:
            fire("connect", f"{self.transport_label}: ended", 0.0, RuntimeError(client.ended))
            client.close()
            self.client = client = None
        if client is None:
            gevent.sleep(2.0)  # bounded retry pace for a transport that cannot connect
            self._connect()
            return
        if self.interval is None:
            gevent.sleep(1.0)
            return
        # Fixed schedule: the timestamp is when the message was due, so a slow ack
        # delays the next send but cannot hide latency (no coordinated omission).
        self.next_at += self.interval
        due = self.next_at
        # The generator's own lag is how late the scheduler woke the user: a send already late
        # because the previous publish's ack was slow is the server's latency, not the generator's.
        wake_at = max(due, time.time())
        self._sleep_until(due)
        fire("generator", "send lag", max(0.0, (time.time() - wake_at) * 1000))
        self.seq += 1
        body = {"sender": self.sender, "seq": self.seq, "abandoned": self.abandoned, "t": due, "pad": self.pad}
        started = time.perf_counter()
        try:
            client.publish(self.room, body, f"{self.sender}-{self.seq}")
        except (Lost, RequestFailed, gevent.Timeout, OSError) as exc:
            self.abandoned += 1  # receivers will not count this number as lost
            fire("publish", self.transport_label, _ms(started), exc)
            return
        fire("publish", self.transport_label, _ms(started))

    def _sleep_until(self, due: float) -> None:
        """Sleep until ``due``, but stop at once when Locust stops the users: left to itself, a
        user due to publish in a minute (one room of 1,000) would hold the run's end for its
        whole ``--stop-timeout`` while the others kept publishing."""
        if _options.stopping.wait(max(0.0, due - time.time())):
            raise StopUser

    def _send_volatile(self, interval: float) -> None:
        """Volatile updates beside the logged publishes, on the same connection and a fixed
        schedule of their own (``t`` is when each was due, as for the logged ones). Each is sent
        once, with no sequence number: the gateway may drop it, so receivers count it apart."""
        due = max(time.time(), _options.window["opens_at"]) - interval * random.random()
        while True:
            due += interval
            gevent.sleep(max(0.0, due - time.time()))
            client = self.client
            if client is None or client.ended is not None:
                continue  # the publish task reconnects; an update due meanwhile is stale: not sent
            body = {"sender": self.sender, "volatile": True, "t": due, "pad": self.pad}
            try:
                client.publish_volatile(self.room, body)
            except (Lost, RequestFailed, gevent.Timeout, OSError) as exc:
                fire("volatile", "sent", 0.0, exc)
                continue
            fire("volatile", "sent", 0.0)

    def _delivered(self, bodies: list[Any], received_at: float) -> None:
        label, tracker = self.transport_label, self.tracker
        for data in bodies:
            if not isinstance(data, dict) or data.get("sender") == self.sender or "t" not in data:
                continue  # its own message (the tracker follows others), or not the load's
            latency = max(0.001, (time.time() - float(data["t"])) * 1000)
            if data.get("volatile") is True:  # may be dropped: counted, never in the sequence tracking
                fire("deliver", f"{label}: volatile", latency, length=len(data.get("pad", "")))
                fire("volatile", "received", 0.0)
                continue
            fire("deliver", label, latency, length=len(data.get("pad", "")))
            verdict, _missing = tracker.see(str(data["sender"]), int(data["seq"]), int(data.get("abandoned", 0)))
            if verdict != "ok":
                fire("delivery", verdict, 0.0, RuntimeError(f"{verdict} delivery"))
        fire("generator", "receive-to-record", max(0.0, (time.time() - received_at) * 1000))

    def _gap(self, room: str, why: str) -> None:
        fire("delivery", "recovery gap", 0.0, RuntimeError(f"gap in {room}: {why}"))

    def on_stop(self) -> None:
        # First, and without I/O: with --processes, a worker's last report leaves soon after.
        for _ in range(max(0, self.tracker.lost)):
            fire("delivery", "lost", 0.0, RuntimeError("a sequence number never arrived"))
        if self.volatile_sender is not None:  # stopped before the client closes under it
            self.volatile_sender.kill(timeout=1.0)
        if self.client is not None:
            self.client.close()


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class SseUser(GatewayUser):
    transport_label = "sse"

    def make_client(self, url: str, sink: Sink) -> GatewayClient:
        return SseClient(url, self.options.namespace, sink, mode=self.options.sse_mode)


class _SioUser(GatewayUser):
    abstract = True
    transport: SioTransport = "websocket"

    def make_client(self, url: str, sink: Sink) -> GatewayClient:
        return SioClient(url, self.options.namespace, sink, self.transport)


class SocketIOWebSocketUser(_SioUser):
    transport, transport_label = "websocket", "sio-websocket"


class SocketIODefaultUser(_SioUser):
    """Socket.IO's default: a polling handshake, then an upgrade to WebSocket when allowed."""

    transport, transport_label, upgrades = "default", "sio-default", True


class SocketIOPollingUser(_SioUser):
    transport, transport_label = "polling", "sio-polling"


class AutoUser(GatewayUser):
    """``auto``: SSE + POST at once, the live session moved to WebSocket when the network allows."""

    transport_label, upgrades, fallback = "auto", True, "SSE"

    def make_client(self, url: str, sink: Sink) -> GatewayClient:
        return AutoClient(url, self.options.namespace, sink, mode=self.options.sse_mode)
