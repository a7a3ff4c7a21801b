"""The previous load generator: the same users on ``rtclient.blocking.BlockingClient``.

    locust -f loadtests/_blocking.py ...      (same options as ``loadtests/users.py``)

``BlockingClient`` is python-socketio's threaded client for Socket.IO and httpx for SSE:
correct and complete, but a thread and several library layers per message. It is kept only
as the baseline ``python -m comparison.generator_cost`` measures the light clients against.
The file's name starts with ``_`` so ``locust -f loadtests`` does not load it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from loadtests._light import Sink
from loadtests.users import GatewayClient, GatewayUser
from rtclient.blocking import BlockingClient
from rtclient.protocol import Gap, RoomEvent

# httpx logs every request at INFO, Locust's default level: every POST of the SSE users.
logging.getLogger("httpx").setLevel(logging.WARNING)


class BlockingAdapter:
    """``BlockingClient`` behind the interface ``GatewayUser`` drives (``GatewayClient``)."""

    def __init__(self, url: str, namespace: str, sink: Sink, transport: str, mode: str) -> None:
        self.sink = sink
        self.client = BlockingClient(url, namespace, transport=transport, mode=mode,  # type: ignore[arg-type]
                                     on_event=self._event, request_timeout=10)

    @property
    def ended(self) -> str | None:
        return None if self.client.ended is None else str(self.client.ended)

    def connect(self, room: str) -> None:
        self.client.connect()
        self.client.join(room)

    def publish(self, room: str, data: Any, event_id: str) -> None:
        self.client.publish(room, data)  # its outbox adds and retries the clientEventId itself

    def publish_volatile(self, room: str, data: Any) -> None:
        self.client.publish(room, data, volatile=True)

    def upgraded_to_websocket(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and self.client.transport_name != "websocket":
            time.sleep(0.05)
        return self.client.transport_name == "websocket"

    def close(self) -> None:
        try:
            if self.client.transport in ("polling", "socketio"):
                self.client.drop()  # python-engineio waits a ping period to close a polling session politely
            self.client.close()
        except Exception:
            pass

    def _event(self, event: Any) -> None:
        if isinstance(event, Gap):
            self.sink.gap(event.room, f"{event.reason} after {event.after}")
        elif isinstance(event, RoomEvent):
            self.sink.deliver([event.data], time.time())


class _BlockingUser(GatewayUser):
    abstract = True
    transport = "sse"

    def make_client(self, url: str, sink: Sink) -> GatewayClient:
        return BlockingAdapter(url, self.options.namespace, sink, self.transport, self.options.sse_mode)


class SseUser(_BlockingUser):
    transport, transport_label = "sse", "sse"


class SocketIOWebSocketUser(_BlockingUser):
    transport, transport_label = "websocket", "sio-websocket"


class SocketIODefaultUser(_BlockingUser):
    transport, transport_label, upgrades = "socketio", "sio-default", True


class SocketIOPollingUser(_BlockingUser):
    transport, transport_label = "polling", "sio-polling"
