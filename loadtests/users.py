"""rtgateway under load: one Locust user class per transport.

    locust -f loadtests --host http://127.0.0.1:8000
    locust -f loadtests --headless -u 40 -r 10 -t 60s --host http://127.0.0.1:8000 \\
        --target proxy --proxy-url http://127.0.0.1:8080 --room-size 10 --publish-rate 2

Every user connects to ``/chat``, joins a room shared with ``--room-size - 1`` others and
publishes ``--publish-rate`` messages a second on a fixed schedule. What is measured
lands in Locust's stats, CSV and HTML as request events (type / name):

    connect   / <transport>               handshake until the session is usable
    connect   / <transport>: ended        the gateway ended the session for good (close
                                          ``replaced``); the user connects anew (failure)
    upgrade   / <transport>: websocket    Socket.IO's polling -> WebSocket upgrade happened
    upgrade   / <transport>: refused      it stayed on polling (failure)
    publish   / <transport>               publish -> ack round trip (the event is logged)
    deliver   / <transport>               publish -> delivery latency at each receiver, from the
                                          scheduled send time in the payload; its RPS is deliveries/s
    delivery  / lost | duplicate | out-of-order | recovery gap   (failures, per receiver)
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

import gevent
from locust import User, between, events, task
from locust.env import Environment

from loadtests._tracking import SequenceTracker
from rtclient.blocking import BlockingClient
from rtclient.protocol import Gap, RoomEvent

_user_numbers = itertools.count()
# httpx logs every request at INFO, Locust's default level: every POST of the SSE users.
logging.getLogger("httpx").setLevel(logging.WARNING)


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    group = parser.add_argument_group("rtgateway")
    group.add_argument("--transport-mix", default="sse=1,sio-websocket=1,sio-default=1,sio-polling=1",
                       help="weights per transport, e.g. 'sse=3,sio-polling=1' (0 leaves one out)")
    group.add_argument("--room-size", type=int, default=10, help="users per room")
    group.add_argument("--publish-rate", type=float, default=1.0, help="messages per second per user")
    group.add_argument("--payload-bytes", type=int, default=64, help="padding added to every message")
    group.add_argument("--target", choices=["direct", "proxy"], default="direct",
                       help="connect to --host directly, or through --proxy-url")
    group.add_argument("--proxy-url", default="http://127.0.0.1:8080", help="the proxy in front of the gateway")
    group.add_argument("--namespace", default="/chat")
    group.add_argument("--sse-mode", choices=["auto", "stream", "poll"], default="auto",
                       help="SSE: stream, poll (for buffering proxies), or auto (stream, polling if buffered)")


@events.init.add_listener
def _weights(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    mix = dict(part.split("=") for part in options.transport_mix.split(",") if part)
    for cls in (SseUser, SocketIOWebSocketUser, SocketIODefaultUser, SocketIOPollingUser):
        cls.weight = int(mix.get(cls.transport_label, 0))


class GatewayUser(User):
    """Owns one ``BlockingClient``; subclasses only name their transport."""

    abstract = True
    transport = "sse"
    transport_label = "sse"
    wait_time = between(0, 0)  # the publish task paces itself on a fixed schedule

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.options = options
        number = next(_user_numbers)
        self.room = f"load-{number // max(1, options.room_size)}"
        self.url = options.proxy_url if options.target == "proxy" else self.host
        self.tracker = SequenceTracker()
        self.seq = 0
        self.abandoned = 0
        self.pad = "x" * options.payload_bytes
        self.interval = 1.0 / options.publish_rate if options.publish_rate > 0 else None
        self.next_at = time.time()
        self.client: BlockingClient | None = None
        self._connect()

    def _connect(self) -> None:
        started = time.perf_counter()
        client = BlockingClient(self.url, self.options.namespace, transport=self.transport,
                                mode=self.options.sse_mode, on_event=self._on_event, request_timeout=10)
        try:
            client.connect()
            client.join(self.room)
        except Exception as exc:
            self._fire("connect", self.transport_label, started, exc)
            with_suppressed_close(client)
            self.client = None
            return
        self._fire("connect", self.transport_label, started)
        self.client = client
        self.next_at = time.time()
        if self.transport == "socketio":
            gevent.spawn(self._watch_upgrade, client, started)

    def _watch_upgrade(self, client: BlockingClient, started: float) -> None:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and client.transport_name != "websocket":
            gevent.sleep(0.05)
        if client.transport_name == "websocket":
            self._fire("upgrade", f"{self.transport_label}: websocket", started)
        else:
            self._fire("upgrade", f"{self.transport_label}: refused", started,
                       RuntimeError("stayed on polling: the WebSocket upgrade did not happen"))

    @task
    def publish(self) -> None:
        if self.client is not None and self.client.ended is not None:
            # The gateway ended the session for good (``replaced``): count it, start anew.
            self._fire("connect", f"{self.transport_label}: ended", time.perf_counter(), self.client.ended)
            with_suppressed_close(self.client)
            self.client = None
        if self.client is None:
            gevent.sleep(2.0)  # bounded retry pace for a transport that cannot connect
            self._connect()
            return
        if self.interval is None:
            gevent.sleep(1.0)
            return
        # Fixed schedule: the timestamp is when the message was due, so a slow ack
        # delays the next send but cannot hide latency (no coordinated omission).
        self.next_at += self.interval
        gevent.sleep(max(0.0, self.next_at - time.time()))
        due = self.next_at
        started = time.perf_counter()
        self.seq += 1
        body = {"sender": self.client.sid, "seq": self.seq, "abandoned": self.abandoned, "t": due, "pad": self.pad}
        try:
            self.client.publish(self.room, body)
        except Exception as exc:
            self.abandoned += 1  # receivers will not count this number as lost
            self._fire("publish", self.transport_label, started, exc)
            return
        self._fire("publish", self.transport_label, started)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, Gap):
            self._fire("delivery", "recovery gap", time.perf_counter(),
                       RuntimeError(f"gap in {event.room} after {event.after} ({event.reason})"))
            return
        if not isinstance(event, RoomEvent) or not isinstance(event.data, dict):
            return
        data = event.data
        if self.client is not None and data.get("sender") == self.client.sid:
            return  # its own message (never delivered back; the tracker follows others)
        latency_ms = max(0.001, (time.time() - float(data["t"])) * 1000)
        events.request.fire(request_type="deliver", name=self.transport_label, response_time=latency_ms,
                            response_length=len(data.get("pad", "")), exception=None, context={})
        verdict, _missing = self.tracker.see(str(data["sender"]), int(data["seq"]), int(data.get("abandoned", 0)))
        if verdict != "ok":
            self._fire("delivery", verdict, time.perf_counter(), RuntimeError(f"{verdict} delivery"))

    def on_stop(self) -> None:
        for _ in range(max(0, self.tracker.lost)):
            self._fire("delivery", "lost", time.perf_counter(), RuntimeError("a sequence number never arrived"))
        if self.client is not None:
            with_suppressed_close(self.client)

    def _fire(self, kind: str, name: str, started: float, exception: BaseException | None = None) -> None:
        events.request.fire(request_type=kind, name=name,
                            response_time=(time.perf_counter() - started) * 1000,
                            response_length=0, exception=exception, context={})


def with_suppressed_close(client: BlockingClient) -> None:
    try:
        if client.transport in ("polling", "socketio"):
            client.drop()  # python-engineio waits a ping period to close a polling session politely
        client.close()
    except Exception:
        pass


class SseUser(GatewayUser):
    transport, transport_label = "sse", "sse"


class SocketIOWebSocketUser(GatewayUser):
    transport, transport_label = "websocket", "sio-websocket"


class SocketIODefaultUser(GatewayUser):
    """Socket.IO's default: a polling handshake, then an upgrade to WebSocket when allowed."""

    transport, transport_label = "socketio", "sio-default"


class SocketIOPollingUser(GatewayUser):
    transport, transport_label = "polling", "sio-polling"
