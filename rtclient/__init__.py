"""rtclient: Python clients for rtgateway, with reconnect, resume and retransmission.

``AutoClient`` (the default of ``make_client``: SSE at once, the session moved to WebSocket when
the network lets it through), ``SseClient`` and ``SocketIOClient`` are asyncio; ``BlockingClient`` (``rtclient.blocking``)
is the same thing for threads and gevent (Locust). All share ``rtclient.protocol`` (frames
in, typed events out) and ``rtclient.reconnect`` (what to do after a loss), and read the wire
format from ``gateway.wire``. Importing them loads no server library, nor python-socketio
(imported when a Socket.IO client connects).
"""

from __future__ import annotations

from .aio import AutoClient, SocketIOClient, SseClient, make_client
from .protocol import (
    Backoff,
    Call,
    ClientEvent,
    Closing,
    ConnectionLost,
    Gap,
    Opened,
    PresenceChange,
    ProtocolError,
    Recovery,
    RoomEvent,
    SessionEnded,
    TokenSource,
    TransportChanged,
)
from .reconnect import network_memory

__all__ = [
    "AutoClient", "Backoff", "Call", "ClientEvent", "Closing", "ConnectionLost", "Gap", "Opened", "PresenceChange", "ProtocolError",
    "Recovery", "RoomEvent", "SessionEnded", "SocketIOClient", "SseClient", "TokenSource",
    "TransportChanged", "make_client", "network_memory",
]
