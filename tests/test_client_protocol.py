"""rtclient's pure protocol core, without an event loop or a server."""

from __future__ import annotations

import random

import pytest

from gateway.errors import NotJoined
from rtclient.protocol import (
    Backoff,
    ClientState,
    Gap,
    Opened,
    Outbox,
    ProtocolError,
    Recovery,
    RoomEvent,
    SseParser,
    error_from_body,
    is_frame,
)


def envelope(room: str, offset: str, data=None) -> dict:
    return {"event": "message", "data": data, "room": room, "offset": offset, "sender": "x",
            "clientEventId": None, "ts": 1}


OPEN = {"sid": "S" * 22, "namespace": "/chat", "pingInterval": 1000, "pingTimeout": 500, "maxPayload": 10, "rooms": []}


class TestSseParser:
    def test_frames_split_across_chunks_and_line_endings(self):
        p = SseParser()
        assert p.feed(b"id: a;r=1-1\nevent: open\nda") == []
        frames = p.feed(b"ta: {\"x\":1}\r\n\r\n: ping\n\nevent: m\ndata: a\ndata: b\n\n")
        assert [(f.event, f.data, f.id) for f in frames] == [("open", '{"x":1}', "a;r=1-1"), ("m", "a\nb", None)]

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
        assert s.cursor == "S" * 22 + ";r=5-2"
        assert s.resume_auth() == {"sid": "S" * 22, "offsets": {"r": "5-2"}}

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


def test_problem_bodies_become_typed_errors():
    err = error_from_body(b'{"type":"x","title":"t","status":403,"detail":"join first","code":"not_joined","room":"r"}')
    assert isinstance(err, NotJoined) and err.code == "not_joined" and err.detail == {"room": "r"}
    assert error_from_body(b"<html>").code == "internal_error"


def test_frames_versus_server_calls():
    assert is_frame("open", {}) and is_frame("chat", envelope("r", "1-1"))
    assert not is_frame("confirm", {"question": 1})
