"""rtclient's pure protocol core, without an event loop or a server."""

from __future__ import annotations

import asyncio
import random

import pytest

from gateway.errors import NotJoined
from rtclient.protocol import (
    Backoff,
    ClientState,
    Closing,
    Gap,
    Opened,
    Outbox,
    ProtocolError,
    Recovery,
    RoomEvent,
    SessionEnded,
    SseParser,
    atoken_value,
    bearer,
    error_from_body,
    format_cursor,
    is_frame,
    token_value,
)


def envelope(room: str, offset: str, data=None) -> dict:
    return {"event": "message", "data": data, "room": room, "offset": offset, "sender": "x",
            "clientEventId": None, "ts": 1}


KEY = "K" * 21 + "_"
OPEN = {"sid": "S" * 22, "key": KEY, "namespace": "/chat", "pingInterval": 1000, "pingTimeout": 500, "maxPayload": 10, "rooms": []}


class TestSseParser:
    def test_frames_split_across_chunks_and_line_endings(self):
        p = SseParser()
        assert p.feed(b"id: a:k;r=1-1\nevent: open\nda") == []
        frames = p.feed(b"ta: {\"x\":1}\r\n\r\n: ping\n\nevent: m\ndata: a\ndata: b\n\n")
        assert [(f.event, f.data, f.id) for f in frames] == [("open", '{"x":1}', "a:k;r=1-1"), ("m", "a\nb", None)]

    def test_comment_only_chunks_count_as_heard(self):
        p = SseParser()
        before = p.heard
        assert p.feed(b": ping\n\n") == []
        assert p.heard == before + 1


class TestClientState:
    def test_duplicates_and_old_offsets_are_dropped(self):
        s = ClientState()
        s.handle("open", OPEN)
        assert len(s.handle("message", envelope("r", "5-1"))) == 1
        assert s.handle("message", envelope("r", "5-1")) == []  # replayed twice
        assert s.handle("message", envelope("r", "4-9")) == []  # older
        assert len(s.handle("message", envelope("r", "5-2"))) == 1
        assert s.stats.duplicates == 2 and s.stats.received == 2
        assert s.cursor == "S" * 22 + ":" + KEY + ";r=5-2"
        assert s.resume_auth() == {"sid": "S" * 22, "key": KEY, "offsets": {"r": "5-2"}}

    def test_key_from_open_is_kept_across_a_resume_and_dropped_with_the_session(self):
        s = ClientState()
        assert s.cursor is None and s.resume_auth() == {} and s.session_headers() == {}
        s.handle("open", OPEN)
        assert s.key == KEY and s.session_headers() == {"X-Session-Key": KEY}
        assert s.cursor == f"{'S' * 22}:{KEY};"  # no rooms yet: still the sid and its key
        s.handle("joined", {"room": "a", "offset": "1-0"})
        s.handle("joined", {"room": "b", "offset": "2-0"})
        assert s.cursor == f"{'S' * 22}:{KEY};a=1-0,b=2-0"
        [again] = s.handle("open", {**OPEN, "rooms": ["a", "b"]})
        assert again.resumed and s.key == KEY
        s.session_lost()
        assert s.key is None and s.cursor is None and s.resume_auth() == {}
        [fresh] = s.handle("open", {**OPEN, "sid": "T" * 22, "key": "N" * 22})
        assert not fresh.resumed and s.resume_auth() == {"sid": "T" * 22, "key": "N" * 22, "offsets": {}}

    def test_the_key_is_not_part_of_the_opened_event(self):
        [opened] = ClientState().handle("open", OPEN)
        assert KEY not in repr(opened)  # events get logged; the key stays in the state

    @pytest.mark.parametrize("bad", [{"key": None}, {"key": 7}, {"key": ""}])
    def test_open_without_a_usable_key_is_refused(self, bad):
        s = ClientState()
        with pytest.raises(ProtocolError):
            s.handle("open", {**OPEN, **bad})
        with pytest.raises(ProtocolError):
            s.handle("open", {k: v for k, v in OPEN.items() if k != "key"})
        assert s.sid is None and s.key is None and s.stats.malformed == 2

    def test_close_frames_say_whether_to_reconnect(self):
        s = ClientState()
        assert s.handle("close", {"reason": "replaced", "reconnect": False}) == [Closing("close", "replaced", False)]
        assert s.handle("close", {"reason": "token_expired", "reconnect": True}) == [
            Closing("close", "token_expired", True)]
        assert s.handle("close", {"reason": "shutdown"}) == [Closing("close", "shutdown", True)]
        with pytest.raises(ProtocolError):
            s.handle("close", None)

    def test_open_on_resume_and_recovery_gaps(self):
        s = ClientState()
        [first] = s.handle("open", OPEN)
        assert isinstance(first, Opened) and not first.resumed
        [again] = s.handle("open", {**OPEN, "rooms": ["r"]})
        assert again.resumed and s.rooms == {"r"}
        events = s.handle("recovery", {"recovered": True, "complete": False, "replayed": 3, "gaps": [{"room": "r", "after": "1-1"}]})
        assert isinstance(events[0], Recovery) and not events[0].complete
        assert events[1] == Gap("gap", "r", "1-1", "log_trimmed") and s.stats.gaps == 1

    def test_session_lost_reports_every_room(self):
        s = ClientState()
        s.handle("open", OPEN)
        s.handle("joined", {"room": "a", "offset": "1-0"})
        s.handle("joined", {"room": "b", "offset": "1-0"})
        gaps = s.session_lost()
        assert [g.room for g in gaps] == ["a", "b"] and all(g.reason == "session_lost" for g in gaps)
        assert s.sid is None

    @pytest.mark.parametrize(("name", "data"), [("open", {"sid": 1}), ("message", {"room": "r"}), ("message", [1]), ("recovery", {})])
    def test_malformed_frames_raise_and_change_nothing(self, name, data):
        s = ClientState()
        s.handle("open", OPEN)
        before = (s.sid, dict(s.positions))
        with pytest.raises(ProtocolError):
            s.handle(name, data)
        assert (s.sid, s.positions) == before and s.stats.malformed == 1

    def test_room_event_is_typed(self):
        s = ClientState()
        [e] = s.handle("chat", envelope("r", "1-1", {"t": 1}))
        assert isinstance(e, RoomEvent) and e.event == "message" and e.data == {"t": 1}


class TestOutboxAndBackoff:
    def test_ids_are_unique_and_pending_until_acked(self):
        box = Outbox(prefix="p")
        a, b = box.add("publish", {"room": "r"}), box.add("emit", {"event": "e"})
        assert a.body["clientEventId"] == "p-1" and b.client_event_id == "p-2"
        assert [x.client_event_id for x in box.pending()] == ["p-1", "p-2"]
        box.acked(a, {"offset": "1-1"})
        box.failed(b)
        assert len(box) == 0 and a.done and a.result == {"offset": "1-1"}

    def test_backoff_grows_with_jitter_and_caps(self):
        b = Backoff(base=0.1, cap=1.0, rng=random.Random(7))
        delays = [b.next() for _ in range(10)]
        assert all(0.05 <= d <= 1.0 for d in delays)
        assert max(delays[5:]) > max(delays[:2])
        b.reset()
        assert b.attempt == 0


def test_cursor_format_matches_the_gateway_spec():
    assert format_cursor("sid", "key", {}) == "sid:key;"
    assert format_cursor("sid", "key", {"lobby": "1-2", "*": "3-4"}) == "sid:key;lobby=1-2,*=3-4"


class TestTokens:
    def test_a_string_or_none_is_used_as_is(self):
        assert token_value("t") == "t" and token_value(None) is None
        assert bearer("t") == {"Authorization": "Bearer t"} and bearer(None) == {} and bearer("") == {}

    def test_a_callable_is_asked_every_time(self):
        tokens = iter(["first", "second"])
        source = lambda: next(tokens)  # noqa: E731
        assert token_value(source) == "first" and token_value(source) == "second"

    def test_a_callable_returning_a_non_string_is_a_bug_said_loudly(self):
        with pytest.raises(TypeError):
            token_value(lambda: 42)

    def test_async_callables_for_the_asyncio_clients(self):
        calls = []

        async def fresh() -> str:
            calls.append(1)
            return f"jwt-{len(calls)}"

        async def both() -> list:
            return [await atoken_value(fresh), await atoken_value(fresh), await atoken_value(lambda: "sync"),
                    await atoken_value("plain"), await atoken_value(None)]

        assert asyncio.run(both()) == ["jwt-1", "jwt-2", "sync", "plain", None]

        async def wrong() -> int:
            return 1

        with pytest.raises(TypeError):
            asyncio.run(atoken_value(wrong))


def test_session_ended_says_why():
    replaced = SessionEnded("replaced")
    assert replaced.reason == "replaced" and "another connection" in str(replaced)
    assert "not to reconnect" in str(SessionEnded("kicked"))


def test_problem_bodies_become_typed_errors():
    err = error_from_body(b'{"type":"x","title":"t","status":403,"detail":"join first","code":"not_joined","room":"r"}')
    assert isinstance(err, NotJoined) and err.code == "not_joined" and err.detail == {"room": "r"}
    assert error_from_body(b"<html>").code == "internal_error"


def test_frames_versus_server_calls():
    assert is_frame("open", {}) and is_frame("chat", envelope("r", "1-1"))
    assert not is_frame("confirm", {"question": 1})
