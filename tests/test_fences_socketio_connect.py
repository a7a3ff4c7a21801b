"""The fence around python-socketio's CONNECT answer (gateway/fences/socketio_connect.py):
fails if python-socketio stops answering a namespace CONNECT through ``_send_packet`` after
the connect handler returns."""

from __future__ import annotations

from typing import Any

import socketio
from socketio import packet as sio_packet

from gateway.fences.socketio_connect import ConnectAnswers


class _Recorder(socketio.AsyncServer):  # type: ignore[misc]
    """An AsyncServer whose Engine.IO side is replaced by a list of what it would send."""

    def __init__(self) -> None:
        super().__init__(async_mode="asgi", namespaces="*")
        self.sent: list[Any] = []

        async def send_packet(eio_sid: str, pkt: Any) -> None:
            self.sent.append((eio_sid, pkt.packet_type, pkt.namespace, pkt.data))

        self._send_packet = send_packet


async def test_connect_answer_goes_through_send_packet_after_the_handler() -> None:
    server = _Recorder()
    answers = ConnectAnswers(server)
    seen: list[str] = []

    @server.on("connect", namespace="/chat")
    async def connect(sid: str, environ: Any, auth: Any) -> None:
        seen.append(sid)
        answers.give("eio-1", "/chat", {"sid": "public", "pid": "private"})

    server.environ["eio-1"] = {}
    await server._handle_connect("eio-1", "/chat", {"token": "t"})
    await server._handle_connect("eio-1", "/", None)  # no answer waiting: python-socketio's own
    assert len(seen) == 1
    [(eio_sid, kind, namespace, data), (_, plain_kind, _, plain)] = server.sent
    assert (eio_sid, kind, namespace, data) == ("eio-1", sio_packet.CONNECT, "/chat", {"sid": "public", "pid": "private"})
    assert plain_kind == sio_packet.CONNECT and set(plain) == {"sid"} and plain["sid"] != "public"
