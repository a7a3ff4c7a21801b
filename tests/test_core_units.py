"""The pure pieces, without an event loop or a server."""

from __future__ import annotations

import pytest

import gateway
from gateway.core.acks import AckRegistry, AckState
from gateway.core.delivery_log import RoomLog
from gateway.wire.envelope import Envelope, decode_wire
from gateway.wire.errors import (
    AckAlreadyUsed,
    AckTimeout,
    BadLastEventId,
    GatewayError,
    OffsetFromFuture,
    UnknownAck,
    ValidationFailed,
    error_from_wire,
)
from gateway.wire.offsets import format_cursor, parse_cursor, parse_offset
from gateway.wire.requests import Publish, decode_request


def env(offset: str, ts: int = 1_000, room: str = "r") -> Envelope:
    return Envelope("/chat", room, "message", {"n": offset}, offset, "s1", None, ts)


class TestAcks:
    def test_pending_to_acked_then_already_used(self):
        acks = AckRegistry()
        a = acks.open("sid1", "ping")
        assert acks.resolve(a.ack_id, "sid1", "pong").state is AckState.ACKED
        with pytest.raises(AckAlreadyUsed):
            acks.resolve(a.ack_id, "sid1", "again")

    def test_unknown_and_wrong_session(self):
        acks = AckRegistry()
        a = acks.open("sid1", "ping")
        with pytest.raises(UnknownAck):
            acks.resolve("nope", "sid1", None)
        with pytest.raises(UnknownAck):
            acks.resolve(a.ack_id, "sid2", None)
        assert len(acks) == 1  # the refusals changed nothing

    def test_timeout_and_cancel(self):
        acks = AckRegistry()
        a, b, c = acks.open("s", "x"), acks.open("s", "y"), acks.open("t", "z")
        assert acks.expire(a.ack_id).state is AckState.TIMED_OUT
        with pytest.raises(AckAlreadyUsed):
            acks.resolve(a.ack_id, "s", None)
        assert [x.ack_id for x in acks.cancel_session("s")] == [b.ack_id]
        assert b.state is AckState.CANCELLED and c.state is AckState.PENDING

    def test_memory_of_used_ids_is_bounded(self):
        acks = AckRegistry(remember=2)
        ids = [acks.open("s", "e").ack_id for _ in range(3)]
        for i in ids:
            acks.resolve(i, "s", None)
        with pytest.raises(UnknownAck):  # forgotten: the oldest fell out
            acks.resolve(ids[0], "s", None)


class TestDeliveryLog:
    def test_offsets_and_replay(self):
        log = RoomLog(epoch_ms=500, max_length=10, max_age_s=60)
        start = log.last_offset
        for _ in range(3):
            log.append(env(log.next_offset()), now_ms=1_000)
        replay = log.since(start)
        assert [e.offset for e in replay.events] == ["500-1", "500-2", "500-3"] and replay.complete
        assert log.since("500-2").events[0].offset == "500-3"

    def test_trim_by_length_is_a_gap_only_for_those_behind(self):
        log = RoomLog(epoch_ms=500, max_length=2, max_age_s=60)
        for _ in range(4):
            log.append(env(log.next_offset()), now_ms=1_000)
        assert not log.since("500-1").complete
        assert log.since("500-2").complete  # 500-2 was the last trimmed: nothing after it is missing
        assert [e.offset for e in log.since("500-1").events] == ["500-3", "500-4"]

    def test_trim_by_age(self):
        log = RoomLog(epoch_ms=0, max_length=100, max_age_s=1)
        log.append(env(log.next_offset(), ts=1_000), now_ms=1_000)
        log.append(env(log.next_offset(), ts=5_000), now_ms=5_000)
        assert len(log) == 1 and not log.since("0-0").complete

    def test_future_and_previous_process(self):
        log = RoomLog(epoch_ms=500, max_length=10, max_age_s=60)
        with pytest.raises(OffsetFromFuture):
            log.since("500-1")
        assert not log.since("400-9").complete  # from an earlier process: its log is gone


class TestOffsetsAndCursor:
    def test_round_trip(self):
        cursor = format_cursor("abc", "k3y", {"lobby": "5-1", "*": "5-0"})
        assert cursor == "abc:k3y;lobby=5-1,*=5-0"
        assert parse_cursor(cursor, 100) == ("abc", "k3y", {"lobby": "5-1", "*": "5-0"})
        assert parse_cursor("abc;lobby=5-1", 100) == ("abc", None, {"lobby": "5-1"})  # no key: refused later, as unknown

    @pytest.mark.parametrize("bad", ["", "abc", "abc;lobby", "abc;lobby=x", "a b;r=1-1", "abc;r=1-"])
    def test_garbage(self, bad):
        with pytest.raises(BadLastEventId):
            parse_cursor(bad, 100)

    def test_offset_order_is_numeric(self):
        assert parse_offset("10-2") > parse_offset("9-99")


class TestEnvelopeAndRequests:
    def test_wire_round_trip(self):
        e = env("1-1")
        assert decode_wire(e.encode(), "/chat") == e

    def test_bad_envelope(self):
        with pytest.raises(ValidationFailed):
            decode_wire(b"[1,2]")
        with pytest.raises(ValidationFailed):
            decode_wire(b"{nope")

    def test_publish_request_aliases_and_reserved_names(self):
        req = decode_request("publish", b'{"room":"r","clientEventId":"c1","includeSelf":true}')
        assert req == Publish("r", "message", None, "c1", True)
        with pytest.raises(ValidationFailed):
            decode_request("publish", {"room": "r", "event": "recovery"})


class TestErrors:
    def test_codes_are_unique_and_round_trip(self):
        from gateway.wire.errors import _ALL

        codes = [cls.code for cls in _ALL]
        assert len(codes) == len(set(codes))
        for cls in _ALL:
            back = error_from_wire(cls("m", extra=1).to_wire())
            assert type(back) is cls and back.detail == {"extra": 1}

    def test_problem_document(self):
        body = UnknownAck("no such ack").to_problem("/x")
        assert body["status"] == 404 and body["code"] == "unknown_ack" and body["instance"] == "/x"

    def test_timeout_is_a_timeout_error(self):
        assert issubclass(AckTimeout, TimeoutError) and issubclass(AckTimeout, GatewayError)
        assert str(AckTimeout("late")) == "ack_timeout: late"


class TestSessionKeys:
    def test_keys_match_only_themselves_in_constant_time_on_bytes(self):
        from gateway.core.sessions import hash_key, key_matches, new_key

        key = new_key()
        stored = hash_key(key)
        assert len(key) >= 22 and key not in stored  # nodes keep a hash, never the key
        assert key_matches(key, stored)
        for wrong in (None, "", new_key(), key + "x", "é" * 22, "\udcff"):
            assert not key_matches(wrong, stored)
        assert not key_matches(key, "")  # a record without a key admits nobody

    def test_ack_ids_are_random_and_bound(self):
        from gateway.core.acks import AckRegistry
        from gateway.wire.errors import AckAlreadyUsed

        acks = AckRegistry()
        first, second = acks.open("s1", "e"), acks.open("s1", "e")
        assert first.ack_id != second.ack_id and len(first.ack_id) >= 16
        with pytest.raises(UnknownAck):
            acks.resolve(first.ack_id, "s2", None)  # another session's id: unknown to it
        acks.resolve(first.ack_id, "s1", "ok")
        with pytest.raises(AckAlreadyUsed):
            acks.resolve(first.ack_id, "s1", "again")
        with pytest.raises(UnknownAck):
            acks.resolve(first.ack_id, "s2", "again")  # used or not, still unknown to others

    def test_rooms_claim(self):
        from gateway.core.jwt_auth import HMAC_ALGORITHMS, JwtAuth

        auth = JwtAuth("k" * 32, HMAC_ALGORITHMS)
        claims = {"rooms": ["lobby", "team:*"]}
        assert auth.allows_room(claims, "lobby") and auth.allows_room(claims, "team:red")
        assert not auth.allows_room(claims, "lobby2") and not auth.allows_room(claims, "team")
        assert auth.allows_room({}, "anything")  # no claim, no restriction
        assert not auth.allows_room({"rooms": "lobby"}, "lobby")  # unreadable: restricts to nothing
        assert auth.allows_room({"rooms": ["*"]}, "x")


def test_public_api_is_pinned():
    assert sorted(gateway.__all__) == sorted([
        "AckAlreadyUsed", "AckTimeout", "BadLastEventId", "BadRequest", "BrokerUnavailable",
        "Envelope", "Forbidden", "ForbiddenOrigin", "ForbiddenRoom", "Gateway", "GatewayError",
        "InvalidToken", "JwtAuth", "MalformedJSON", "MalformedToken", "Namespace", "NotFound",
        "NotJoined", "OffsetFromFuture", "PayloadTooLarge", "RateLimited", "Session", "SessionClosed",
        "SessionExpired", "Settings", "TokenExpired", "TooManyRooms", "Unauthorized", "UnknownAck",
        "UnknownEvent", "UnknownNamespace", "UnknownSession", "UnsupportedMediaType",
        "ValidationFailed", "create_app",
    ])
    for name in gateway.__all__:
        assert getattr(gateway, name) is not None


def test_core_imports_no_transport_library():
    import ast
    import pathlib

    core = pathlib.Path(gateway.__file__).parent
    for path in core.glob("*.py"):
        if path.name in {"app.py", "main.py", "demo.py", "origins.py", "admin.py"}:
            continue  # the assembly, its routers, the demo application and the ASGI guard in front: not the core
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                root = name.split(".")[0]
                assert root not in {"socketio", "engineio", "sse_starlette", "starlette", "fastapi"}, (
                    f"{path.name} imports {name}"
                )


def test_backoff_survives_a_very_long_outage():
    from rtclient.protocol import Backoff

    b = Backoff(base=0.1, cap=5.0)
    b.attempt = 5000
    assert 0.05 <= b.next() <= 5.0


async def test_memory_broker_forgets_a_closed_sessions_personal_log():
    from gateway.brokers.memory import MemoryBroker
    from gateway.core.sessions import SessionRecord
    from gateway.settings import Settings

    broker = MemoryBroker(Settings())
    await broker.position("/chat", "sid-1")  # a session's personal room has a log
    await broker.save_session(SessionRecord("sid-1", "/chat", None, {"sid-1": "0-0"}), 60)
    await broker.drop_session("sid-1", expired=True, ttl=60)
    assert ("/chat", "sid-1") not in broker._logs
