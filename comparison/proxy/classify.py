"""Which of the gateway's transports an HTTP request belongs to, from its path and query alone.

Pure and synchronous: the proxy calls it once per request, and tests call it without a loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, get_args

TransportClass = Literal["socketio-websocket", "socketio-polling", "sse-stream", "sse-post", "other"]
TRANSPORT_CLASSES: Final[tuple[TransportClass, ...]] = get_args(TransportClass)

SOCKETIO_PREFIX: Final = "/socket.io/"
SSE_STREAM: Final = "/sse/connect"
SSE_SESSIONS: Final = "/sse/sessions/"


def classify(path: str, query: Mapping[str, str]) -> TransportClass:
    """Name the transport of a request to the gateway (see docs/protocol.md).

    Socket.IO says its transport in the query (``transport=polling|websocket``) on every
    request, the handshake included; SSE + POST is told apart by path. A DELETE of an SSE
    session counts as ``sse-post``: it is the same client→server request channel.
    """
    if path.startswith(SOCKETIO_PREFIX) or path == SOCKETIO_PREFIX[:-1]:
        transport = query.get("transport")
        if transport == "websocket":
            return "socketio-websocket"
        if transport == "polling":
            return "socketio-polling"
        return "other"
    if path == SSE_STREAM:
        return "sse-stream"
    if path.startswith(SSE_SESSIONS):
        return "sse-post"
    return "other"
