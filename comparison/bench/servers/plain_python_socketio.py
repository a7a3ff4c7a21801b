"""The baseline: a plain python-socketio ``AsyncServer`` under uvicorn, nothing of the gateway.

``uvicorn comparison.bench.servers.plain_python_socketio:app``. Namespaces ``/chat`` and
``/bench`` (the gateway's namespace for load): ``join {room}`` enters the room; ``publish {room, data}`` broadcasts the whole body as
``message`` to the room, the sender skipped, then acks. Server options are the library's
defaults, as a user of python-socketio would have them.
"""

from __future__ import annotations

from typing import Any

import socketio

NAMESPACES = ("/chat", "/bench")

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
app = socketio.ASGIApp(sio)


def declare(namespace: str) -> None:
    async def join(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        await sio.enter_room(sid, data["room"], namespace=namespace)
        return {"ok": True}

    async def publish(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        await sio.emit("message", data, room=data["room"], skip_sid=sid, namespace=namespace)
        return {"ok": True}

    sio.on("join", join, namespace=namespace)
    sio.on("publish", publish, namespace=namespace)


for name in NAMESPACES:
    declare(name)
