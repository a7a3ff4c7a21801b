"""A session belongs to its owner: every hijack path, tried as an attacker would.

The attacker is an ordinary member of the victim's room: it sees the victim's public
``sid`` (the ``sender`` of its events, the name of its personal room) and nothing else.
Each attack runs against a victim on every transport, on the memory and the Redis
broker, and must be refused with the answer an unknown session gets, changing nothing.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx
import pytest

from .drivers import SseDriver, expect_error, make_driver
from .servers import REDIS_URL, ThreadedGateway

_n = itertools.count()
NOBODY = "A" * 22  # a key of the right shape that is nobody's


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request: pytest.FixtureRequest, redis_prefix: str):
    broker = "memory" if request.param == "memory" else REDIS_URL
    gw = ThreadedGateway(
        ping_interval=1.0, ping_timeout=1.0, call_timeout=2.0, recovery_window=30.0,
        broker=broker, redis_prefix=redis_prefix,
    ).start()
    yield gw
    gw.stop()


def room() -> str:
    return f"sec-{next(_n)}-{uuid.uuid4().hex[:6]}"


async def _victim_and_attacker(clients: Any, transport: str) -> tuple[Any, SseDriver, str]:
    r = room()
    victim, attacker = clients(transport), clients("sse-post")
    await victim.connect("/chat"), await attacker.connect("/chat")
    await victim.join(r), await attacker.join(r)
    await victim.publish(r, "hello")  # what the room shows the attacker: the victim's sid
    [seen] = await attacker.wait_room_events(r, 1)
    assert seen["sender"] == victim.sid
    return victim, attacker, r


async def _still_owned(victim: Any, attacker: SseDriver, r: str, server: ThreadedGateway) -> None:
    """The victim is untouched: connected, in its rooms, receiving, never told to go."""
    assert server.session_state(victim.sid) == "connected"
    assert (await victim.emit("whoami"))["rooms"] == [r]
    await attacker.publish(r, "still there?")
    await victim.until(lambda: any(e["data"] == "still there?" for e in victim.room_events(r)))
    assert not victim.control("close")


@pytest.mark.parametrize("key", [None, NOBODY, "own"], ids=["no-key", "wrong-key", "attackers-own-key"])
async def test_requests_on_another_sessions_sid_are_refused(clients, transport, server, key):
    victim, attacker, r = await _victim_and_attacker(clients, transport)
    headers = {"X-Session-Key": attacker.key if key == "own" else key} if key else {}
    http = attacker.http
    before = await server.arun(server.gateway.broker.position("/chat", r))
    attempts = [
        ("join", {"room": "elsewhere"}), ("leave", {"room": r}),
        ("publish", {"room": r, "data": "forged"}), ("emit", {"event": "whoami"}),
        ("ack", {"ackId": "anything", "result": 1}),
    ]
    for op, body in attempts:
        answer = await http.post(f"/sse/sessions/{victim.sid}/{op}", json=body, headers=headers)
        assert answer.status_code == 404 and answer.json()["code"] == "unknown_sid", (op, answer.text)
    answer = await http.delete(f"/sse/sessions/{victim.sid}", headers=headers)
    assert answer.status_code == 404 and answer.json()["code"] == "unknown_sid"
    # the same answer as a sid that never existed: no oracle
    never = await http.post(f"/sse/sessions/{NOBODY}/join", json={"room": "x"}, headers=headers)
    assert never.json() == {**answer.json(), "detail": never.json()["detail"], "sid": NOBODY, "instance": never.json()["instance"]}
    assert await server.arun(server.gateway.broker.position("/chat", r)) == before  # nothing logged
    await _still_owned(victim, attacker, r, server)


@pytest.mark.parametrize(
    "via", ["sse-sid", "sse-cursor", "sse-cursor-wrong-key", "sse-own-key", "socketio", "socketio-wrong-key"]
)
async def test_resuming_another_session_is_refused(clients, transport, server, via):
    victim, attacker, r = await _victim_and_attacker(clients, transport)
    thief = clients("sse-post" if via.startswith("sse") else "socketio-websocket")
    forged = {victim.sid: "0-0", r: "0-0"}
    cursor = ",".join(f"{k}={v}" for k, v in forged.items())
    if via == "sse-sid":
        attempt = thief.connect("/chat", params={"sid": victim.sid})
    elif via == "sse-cursor":
        attempt = thief.connect("/chat", headers={"Last-Event-ID": f"{victim.sid};{cursor}"})
    elif via == "sse-cursor-wrong-key":
        attempt = thief.connect("/chat", headers={"Last-Event-ID": f"{victim.sid}:{NOBODY};{cursor}"})
    elif via == "sse-own-key":
        attempt = thief.connect("/chat", params={"sid": victim.sid}, headers={"X-Session-Key": attacker.key})
    elif via == "socketio":
        attempt = thief.connect("/chat", {"sid": victim.sid, "offsets": forged})
    else:
        attempt = thief.connect("/chat", {"sid": victim.sid, "key": NOBODY, "offsets": forged})
    await expect_error("unknown_sid", attempt)
    await _still_owned(victim, attacker, r, server)


async def test_the_owner_resuming_elsewhere_replaces_its_old_connection_with_a_close_frame(clients, transport, server):
    victim, attacker, r = await _victim_and_attacker(clients, transport)
    again = clients(transport)
    again.sid, again.key, again.offsets = victim.sid, victim.key, dict(victim.offsets)
    if isinstance(victim, SseDriver):
        again.last_event_id = victim.last_event_id
    info = await again.connect("/chat", resume=True)
    assert info["sid"] == victim.sid and info["key"] == victim.key and info["rooms"] == [r]
    await victim.until(lambda: bool(victim.control("close")), what="close frame")
    assert victim.control("close")[-1] == {"reason": "replaced", "reconnect": False}
    await attacker.publish(r, "to the new owner")
    await again.until(lambda: any(e["data"] == "to the new owner" for e in again.room_events(r)))


async def test_server_call_ack_ids_are_unguessable_and_bound_to_their_session(clients, server):
    """SSE + POST acks by id (Socket.IO acks travel on the call's own connection)."""
    victim, attacker, _ = await _victim_and_attacker(clients, "sse-post")
    victim.answer = lambda event, data: "mine"
    for _ in range(3):
        assert await server.arun(server.gateway.call("/chat", victim.sid, "ping-me", None)) == "mine"
    ids = {c["ackId"] for c in victim.control("call")}
    assert len(ids) == 3 and all(len(i) >= 16 for i in ids)  # 96 random bits, not a counter
    for ack_id in ids:  # used ones included: to another session they are simply unknown
        await expect_error("unknown_ack", attacker.request("ack", {"ackId": ack_id, "result": "forged"}))
    await expect_error("ack_already_used", victim.request("ack", {"ackId": next(iter(ids)), "result": 1}))


async def test_sids_and_keys_are_distinct_random_values(clients, transport):
    c = clients(transport)
    info = await c.connect("/chat")
    assert len(info["key"]) >= 22 and info["key"] != info["sid"]
    other = clients(transport)
    assert (await other.connect("/chat"))["key"] != info["key"]


async def test_a_post_must_be_json(server: ThreadedGateway):
    c = make_driver("sse-post", server.url)
    await c.connect("/chat")
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {**c.key_header(), **({"content-type": content_type} if content_type else {})}
        r = await c.http.post(f"/sse/sessions/{c.sid}/join", content=b'{"room": "csrf"}', headers=headers)
        assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type"
    assert (await c.emit("whoami"))["rooms"] == []  # nothing changed
    await c.close()


def test_server_api_token_that_is_not_ascii_is_refused_not_a_crash() -> None:
    gw = ThreadedGateway(api_token="a-long-enough-api-token").start()
    try:
        body = {"namespace": "/chat", "room": "lobby", "event": "news"}
        for value in ("Bearer é-not-ascii".encode("latin-1"), b"Bearer wrong", b"Basic x"):
            r = httpx.post(f"{gw.url}/api/publish", json=body, headers={"Authorization": value})
            assert r.status_code == 401 and r.json()["code"] in ("invalid_token", "unauthorized"), r.text
        r = httpx.post(f"{gw.url}/api/publish", content=b'{"namespace": "/chat", "event": "n"}',
                       headers={"Authorization": "Bearer a-long-enough-api-token", "content-type": "text/plain"})
        assert r.status_code == 415
        r = httpx.post(f"{gw.url}/api/publish", json={**body, "event": "close"},
                       headers={"Authorization": "Bearer a-long-enough-api-token"})
        assert r.status_code == 422 and r.json()["code"] == "validation_error"  # reserved, as for clients
        r = httpx.post(f"{gw.url}/api/publish", json=body, headers={"Authorization": "Bearer a-long-enough-api-token"})
        assert r.status_code == 200 and r.json()["ok"] is True
    finally:
        gw.stop()


async def test_publishing_unjoined_still_runs_the_join_rules() -> None:
    """GATEWAY_ALLOW_PUBLISH_UNJOINED lets a session publish where it could join, nowhere else."""
    gw = ThreadedGateway(allow_publish_unjoined=True).start()
    try:
        a, b = make_driver("sse-post", gw.url), make_driver("socketio-websocket", gw.url)
        await a.connect("/chat"), await b.connect("/chat")
        await expect_error("forbidden_room", a.publish("private:ops", "sneaky"))
        await expect_error("forbidden_room", a.publish(b.sid, "into your personal room"))
        assert (await a.publish("open-room", "fine"))["offset"]
        await b.quiet()
        assert b.room_events() == []
        await a.close(), await b.close()
    finally:
        gw.stop()


async def test_server_side_emits_pass_the_same_validation(server: ThreadedGateway) -> None:
    from gateway.wire.errors import ValidationFailed

    for event, to in (("close", None), ("open", "lobby"), ("ok", "has space"), ("close\n", None)):
        with pytest.raises(ValidationFailed):
            await server.arun(server.gateway.emit("/chat", event, None, to=to))
    if server.settings.broker != "memory":
        from gateway.brokers.emitter import Emitter

        emitter = Emitter(REDIS_URL, prefix=server.settings.redis_prefix)
        try:
            with pytest.raises(ValidationFailed):
                emitter.publish("/chat", "lobby", "joined", {})
        finally:
            emitter.close()


async def test_expired_and_unknown_sessions_look_alike_without_the_key(clients, transport) -> None:
    """Checked in test_lifecycle for SSE + POST; resume over any transport is no oracle either."""
    c = clients(transport)
    c.sid, c.key, c.offsets = NOBODY, NOBODY, {}
    c.last_event_id = f"{NOBODY}:{NOBODY};"
    await expect_error("unknown_sid", c.connect("/chat", resume=True))
