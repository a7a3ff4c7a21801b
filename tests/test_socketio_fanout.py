"""Socket.IO room fan-out goes to the hub's members: python-socketio's room manager holds no gateway room.

Real uvicorn on 127.0.0.1, real python-socketio clients over WebSocket and polling.
"""

from __future__ import annotations

from typing import Any

from gateway.transports.socketio_server import SocketIOTransport

from .drivers import SocketIODriver
from .servers import ThreadedGateway


def _manager_rooms(gw: ThreadedGateway, namespace: str) -> dict[Any, set[str]]:
    """python-socketio's rooms of ``namespace``: room -> Socket.IO sids (read on the server's loop)."""
    transport = gw.gateway.transports["socketio"]
    assert isinstance(transport, SocketIOTransport)

    async def read() -> dict[Any, set[str]]:
        return {room: set(sids) for room, sids in transport.server.manager.rooms.get(namespace, {}).items()}

    result: dict[Any, set[str]] = gw.run(read())
    return result


def _hub_members(gw: ThreadedGateway, namespace: str, room: str) -> set[str]:
    async def read() -> set[str]:
        live = gw.gateway.rooms.get(namespace, room)
        return set(live.members.get("socketio", {})) if live is not None else set()

    result: set[str] = gw.run(read())
    return result


async def test_members_are_the_hubs_and_python_socketio_keeps_no_gateway_room() -> None:
    gw = ThreadedGateway().start()
    try:
        ws, polling = SocketIODriver(gw.url, ["websocket"]), SocketIODriver(gw.url, ["polling"])
        await ws.connect("/chat"), await polling.connect("/chat")
        await ws.join("lobby"), await polling.join("lobby")
        assert _hub_members(gw, "/chat", "lobby") == {ws.sid, polling.sid}

        await ws.publish("lobby", "one")  # not to its sender: the hub's skip
        await ws.publish("lobby", "two", includeSelf=True)
        await polling.wait_room_events("lobby", 2)
        await ws.wait_room_events("lobby", 1)
        assert [e["data"] for e in polling.room_events("lobby")] == ["one", "two"]
        assert [e["data"] for e in ws.room_events("lobby")] == ["two"]

        # python-socketio knows each connection (its own per-connection room and the
        # namespace's None room) and nothing of the gateway's rooms: not the joined one,
        # not a session's personal room, not the namespace-wide one.
        assert ws.client is not None and polling.client is not None
        rooms = _manager_rooms(gw, "/chat")
        # (The client's sid is the gateway's public id; python-socketio's own sid per
        # connection is what the transport's channels are keyed by.)
        transport = gw.gateway.transports["socketio"]
        assert isinstance(transport, SocketIOTransport)
        connections = {sio_sid for namespace, sio_sid in list(transport.channels) if namespace == "/chat"}
        assert len(connections) == 2
        assert set(rooms) == {None, *connections}
        assert all(sids == {room} for room, sids in rooms.items() if room is not None)

        await polling.leave("lobby")
        assert _hub_members(gw, "/chat", "lobby") == {ws.sid}
        await ws.publish("lobby", "three", includeSelf=True)
        await ws.wait_room_events("lobby", 2)
        await gw.arun(gw.gateway.emit("/chat", "note", "four", to=polling.sid))  # its personal room still reaches it
        await polling.until(lambda: any(e["data"] == "four" for e in polling.room_events()), what="four")
        assert [e["data"] for e in polling.room_events("lobby")] == ["one", "two"]  # "three" came after the leave
        await ws.close(), await polling.close()
    finally:
        gw.stop()
