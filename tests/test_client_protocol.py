"""rtclient's pure protocol core, without an event loop or a server."""

from __future__ import annotations

import asyncio
import json
import random

import orjson
import pytest

from gateway.wire.errors import NotJoined
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
        [e] = s.handle("message", envelope("r", "1-1", {"t": 1}))
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


# -- frames a client cannot use: skipped and counted, never fatal, never a trap ------------


def joined_state() -> ClientState:
    s = ClientState()
    s.handle("open", OPEN)
    s.handle("joined", {"room": "r", "offset": "1-0"})
    return s


def named(event, offset: str = "2-0", room: str = "r", **more) -> dict:
    return {**envelope(room, offset), "event": event, **more}


class TestSseParserEdges:
    WIRE = (b"\xef\xbb\xbfid: s:k;r=1-1\r\nevent: open\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n"
            b": ping\r\rid: a\0b\nevent: m\ndata: x\n\nevent: lonely\n\n\rdata: last\r\n\r\n")
    FRAMES = (("open", '{"a":\n1}', "s:k;r=1-1"), ("m", "x", None), ("message", "last", None))

    @pytest.mark.parametrize("cut", range(len(WIRE) + 1))
    def test_any_split_gives_the_same_frames(self, cut):
        p = SseParser()
        frames = p.feed(self.WIRE[:cut]) + p.feed(self.WIRE[cut:])
        # WHATWG: BOM dropped, an id with NUL ignored, a frame without data not dispatched,
        # "\r\n" split between two chunks one line end
        assert [(f.event, f.data, f.id) for f in frames] == list(self.FRAMES)

    def test_bytes_one_at_a_time(self):
        p = SseParser()
        frames = [f for i in range(len(self.WIRE)) for f in p.feed(self.WIRE[i:i + 1])]
        assert [(f.event, f.data, f.id) for f in frames] == list(self.FRAMES)

    @pytest.mark.parametrize("cut", range(0, 80, 3))
    def test_an_overlong_line_is_thrown_away_as_it_comes_and_its_frame_marked(self, cut):
        wire = b"event: big\ndata: " + b"x" * 40 + b"\r\n\r\nevent: next\ndata: 1\n\n"
        p = SseParser(max_line=16)
        frames = p.feed(wire[:cut]) + p.feed(wire[cut:])
        assert [(f.event, f.data, f.overlong) for f in frames] == [("big", "", True), ("next", "1", False)]
        assert p._partial_size <= 16
        s = ClientState()
        with pytest.raises(ProtocolError, match="over the parser's limit"):
            s.handle_frame(frames[0])
        assert s.stats.malformed == 1

    def test_memory_stays_bounded_whatever_comes(self):
        p = SseParser(max_line=1024)
        for _ in range(100):
            assert p.feed(b"data: " + b"y" * 4096) == []
        assert p._partial_size == 0 and p._partial == []
        [frame] = p.feed(b"\n\n")
        assert frame.overlong


class TestBadFrames:
    @pytest.mark.parametrize("name", ["close", "left", "open", "recovery", "joined", "call", "error",
                                      "newListener", "removeListener", "disconnecting", "connect"])
    def test_a_room_event_named_like_a_frame_is_consumed_not_obeyed(self, name):
        s = joined_state()
        with pytest.raises(ProtocolError, match="reserved"):
            s.handle(name, named(name))
        # no close, no room dropped, no new session: only its offset is taken, so a resume
        # does not ask for it again, and the replay that brings it anyway is a duplicate
        assert s.rooms == {"r"} and s.sid == OPEN["sid"] and s.positions == {"r": "2-0"}
        assert s.stats.malformed == 1
        assert s.handle(name, named(name)) == [] and s.stats.duplicates == 1
        [after] = s.handle("message", envelope("r", "3-0", "after"))
        assert after.data == "after"

    def test_the_frames_of_an_event_named_close_newline(self):
        """What a gateway that matched names with ``$`` wrote for the event ``close\\n``."""
        s = joined_state()
        wire = (b"id: " + format_cursor(OPEN["sid"], KEY, {"r": "2-0"}).encode() + b"\nevent: close\n\ndata: "
                + orjson.dumps(named("close\n")) + b"\n\nevent: message\ndata: " + orjson.dumps(envelope("r", "3-0")) + b"\n\n")
        events, skipped = [], 0
        for frame in SseParser().feed(wire):
            try:
                events += s.handle_frame(frame)
            except ProtocolError:
                skipped += 1
        assert [e.offset for e in events] == ["3-0"] and skipped == 1 and s.stats.malformed == 1
        assert not any(isinstance(e, Closing) for e in events)

    @pytest.mark.parametrize(("name", "data"), [
        ("message", named("message", offset=7)),
        ("message", named("message", offset="1-x")),
        ("message", named("message", offset="\u0661-1")),  # an Arabic-Indic digit: isdigit() says yes
        ("message", named("message", offset="1-" + "9" * 21)),
        ("message", named("message", room="r\n")),
        ("message", named("message", room="x" * 129)),
        ("message", named("message", room=None)),
        ("message", named("message", room=["r"])),
        ("recovery", {"recovered": True, "complete": "yes", "replayed": 0, "gaps": []}),
        ("recovery", {"recovered": True, "complete": True, "replayed": "3", "gaps": []}),
        ("recovery", {"recovered": True, "complete": True, "replayed": True, "gaps": []}),
        ("recovery", {"recovered": True, "complete": True, "replayed": 1.5, "gaps": []}),
        ("recovery", {"recovered": True, "complete": True, "replayed": 0, "gaps": "r"}),
        ("recovery", {"recovered": True, "complete": True, "replayed": 0, "gaps": [{"room": 5}]}),
        ("recovery", {"recovered": True, "complete": True, "replayed": 0, "gaps": [{"room": "r", "after": 3}]}),
        ("recovery", {"recovered": True, "complete": True, "replayed": 0, "gaps": ["r"]}),
        ("open", {**OPEN, "pingInterval": "1000"}),
        ("open", {**OPEN, "pingInterval": float("inf")}),
        ("open", {**OPEN, "pingTimeout": 0}),
        ("open", {**OPEN, "pingTimeout": True}),
        ("open", {**OPEN, "rooms": "ab"}),
        ("open", {**OPEN, "rooms": ["a\n"]}),
        ("open", {**OPEN, "sid": "S" * 21 + ";"}),
        ("open", {**OPEN, "key": "k:e,y"}),
        ("joined", {"room": "a\n", "offset": "1-0"}),
        ("joined", {"room": "a", "offset": 7}),
        ("left", {"room": 7}),
        ("call", {"ackId": 5, "event": "e"}),
        ("call", {"ackId": "a", "event": None}),
        ("close", {"reason": 5}),
        ("close", {"reason": "x", "reconnect": "no"}),
        ("close", "bye"),
        ("unknown", {"a": 1}),
        ("message", None),
        ("message", [envelope("r", "5-0")]),
    ])
    def test_malformed_frames_change_nothing(self, name, data):
        s = joined_state()
        before = (s.sid, s.key, set(s.rooms), dict(s.positions), s.ping_interval)
        with pytest.raises(ProtocolError):
            s.handle(name, data)
        assert (s.sid, s.key, s.rooms, s.positions, s.ping_interval) == before
        assert s.stats.malformed == 1

    @pytest.mark.parametrize(("name", "data"), [
        ("other", envelope("r", "2-0")),  # the frame's name is not its event
        ("message", named("message", ts="soon")),
        ("message", named("message", ts=1.5)),
        ("message", named("message", sender=5)),
        ("message", named("message", clientEventId=["c"])),
        ("close\n", named("close\n")),
        ("message\u2028", named("message\u2028")),
        ("x" * 129, named("x" * 129)),
    ])
    def test_a_placed_room_event_that_cannot_be_delivered_is_consumed(self, name, data):
        s = joined_state()
        with pytest.raises(ProtocolError):
            s.handle(name, data)
        assert s.positions == {"r": "2-0"} and s.stats.malformed == 1 and s.stats.received == 0

    def test_non_json_and_too_deep_json_are_skipped(self):
        s = joined_state()
        for raw in ["{not json", '{"event": "message", "data": NaN}', "[" * 1100 + "]" * 1100, "Infinity"]:
            with pytest.raises(ProtocolError, match="not JSON"):
                s.handle_raw("message", raw)
        assert s.stats.malformed == 4
        deep: object = "bottom"
        for _ in range(300):
            deep = [deep]
        [event] = s.handle_raw("message", json.dumps(envelope("r", "2-0", deep)))  # orjson encodes 254 levels
        assert event.data == deep  # 300 levels is JSON: delivered intact

    def test_a_room_never_joined_is_delivered_when_its_name_is_good(self):
        """The gateway sends a room's events only to its members, and one may come just before
        the ``joined`` frame (the room goes live before its position is read): delivered."""
        s = joined_state()
        [event] = s.handle("message", envelope("elsewhere", "5-0"))
        assert event.room == "elsewhere" and s.rooms == {"r"}
        for room in ("*", OPEN["sid"]):  # the namespace room, the personal room
            assert len(s.handle("message", envelope(room, "6-0"))) == 1

    def test_whatever_comes_the_cursor_is_one_the_gateway_reads(self):
        from gateway.wire.offsets import parse_cursor

        s = joined_state()
        for name, data in [("message", named("message", room="bad\n", offset="9-9")),
                           ("message", named("message", offset="\u0661-1")),
                           ("joined", {"room": "in\u2028valid", "offset": "1-0"}),
                           ("open", {**OPEN, "key": "a;b=c"}),
                           ("close", named("close", offset="3-0")),
                           ("message", envelope("*", "4-0"))]:
            try:
                s.handle(name, data)
            except ProtocolError:
                pass
        assert s.cursor is not None
        assert parse_cursor(s.cursor, 100) == (OPEN["sid"], KEY, {"r": "3-0", "*": "4-0"})
        s.cursor.encode("ascii")  # it goes in a header

    def test_the_reserved_names_are_the_gateways(self):
        from gateway.wire.envelope import RESERVED_EVENTS as GATEWAY_RESERVED
        from rtclient.protocol import RESERVED_EVENTS

        assert RESERVED_EVENTS == GATEWAY_RESERVED


def test_odd_answers_become_errors_not_crashes():
    from rtclient.protocol import result_from_body

    assert error_from_body(b'{"code": "not_joined", "self": 1}').code == "internal_error"  # not a keyword
    assert error_from_body(b"[1]").code == "internal_error" and error_from_body(b"").code == "internal_error"
    assert result_from_body(b'{"ok": true, "result": {"room": "r"}}') == {"room": "r"} and result_from_body(b"") is None
    for body in (b"<html>", b"[]", b'{"ok": false}', b'{"result": 1}'):
        with pytest.raises(ProtocolError):
            result_from_body(body)


def test_malformed_frames_are_logged_sparingly():
    from rtclient.protocol import worth_logging

    assert [n for n in range(1, 70) if worth_logging(n)] == [1, 2, 4, 8, 16, 32, 64]


def test_the_javascript_clients_reserved_names_are_the_gateways_too():
    import pathlib
    import re as _re

    from gateway.wire.envelope import RESERVED_EVENTS as GATEWAY_RESERVED

    source = (pathlib.Path(__file__).resolve().parents[1] / "gateway" / "static" / "rtgateway-protocol.js").read_text()
    block = _re.search(r"RESERVED_EVENTS = new Set\(\[(.*?)\]\)", source, _re.S)
    assert block is not None
    assert set(_re.findall(r'"([^"]+)"', block.group(1))) == GATEWAY_RESERVED


def test_the_client_spells_names_offsets_and_frames_as_the_gateway_does():
    """One spelling: rtclient reads the wire format from gateway.wire, it keeps no copy."""
    from gateway.wire import envelope, offsets
    from rtclient import protocol

    assert protocol.RESERVED_EVENTS is envelope.RESERVED_EVENTS
    assert protocol.format_cursor is offsets.format_cursor and protocol.parse_offset is offsets.parse_offset
    assert protocol.is_name is envelope.is_name and protocol.is_room is offsets.is_room
    s = ClientState()
    with pytest.raises(ProtocolError, match="sid and a key"):
        s.handle("open", {**OPEN, "sid": "not a name"})
