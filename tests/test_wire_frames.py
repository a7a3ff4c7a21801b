"""The typed server -> client frames: encode and decode_frame agree, and malformed frames are refused."""

from __future__ import annotations

import math

import orjson
import pytest

from gateway.wire.frames import (
    FRAMES,
    Call,
    Close,
    FrameError,
    Joined,
    Left,
    Open,
    Recovery,
    decode_frame,
)
from gateway.wire.offsets import is_offset, parse_offset

FRAMES_ONE_EACH = [
    Open("8lahAPZCOOKlSaQj-UmIxQ", "q0Fh3vJ1oZk8yX4T2sLwNg", "/chat", 25000, 20000, 1_000_000, ("lobby", "news")),
    Joined("lobby", "1795710639760-7"),
    Left("lobby"),
    Recovery(True, False, 17, (("lobby", "1795710639760-3"), ("*", None))),
    Call("a1b2", "confirm", {"x": [1, 2]}),
    Close("replaced", False),
]


@pytest.mark.parametrize("frame", FRAMES_ONE_EACH, ids=lambda f: f.NAME)
def test_encode_then_decode_round_trips_through_json(frame):
    wire = orjson.loads(orjson.dumps(frame.encode()))
    assert decode_frame(frame.NAME, wire) == frame


def test_encode_is_the_documented_json():
    assert FRAMES_ONE_EACH[0].encode() == {
        "sid": "8lahAPZCOOKlSaQj-UmIxQ", "key": "q0Fh3vJ1oZk8yX4T2sLwNg", "namespace": "/chat",
        "pingInterval": 25000, "pingTimeout": 20000, "maxPayload": 1000000, "rooms": ["lobby", "news"]}
    assert FRAMES_ONE_EACH[3].encode() == {
        "recovered": True, "complete": False, "replayed": 17,
        "gaps": [{"room": "lobby", "after": "1795710639760-3"}, {"room": "*", "after": None}]}
    assert FRAMES_ONE_EACH[4].encode() == {"ackId": "a1b2", "event": "confirm", "data": {"x": [1, 2]}}
    assert Close("token_expired", True).encode() == {"reason": "token_expired", "reconnect": True}
    assert set(FRAMES) == {"open", "joined", "left", "recovery", "call", "close"}


def test_frames_are_frozen():
    with pytest.raises(AttributeError):
        FRAMES_ONE_EACH[1].room = "other"  # type: ignore[misc]


def test_lenient_where_the_protocol_has_defaults():
    assert decode_frame("close", {}) == Close("", True)
    assert decode_frame("recovery", {"complete": True, "replayed": 0, "gaps": []}) == Recovery(True, True, 0, ())
    opened = decode_frame("open", {"sid": "s", "key": "k", "namespace": "/", "pingInterval": 0.5, "pingTimeout": 2})
    assert isinstance(opened, Open) and (opened.ping_interval, opened.max_payload, opened.rooms) == (1, 0, ())


OPEN = FRAMES_ONE_EACH[0].encode()

MALFORMED = [
    ("message", {"room": "x"}),  # not a frame name
    ("open", None), ("open", []), ("open", "x"),
    ("open", {**OPEN, "sid": "has space"}), ("open", {**OPEN, "key": None}), ("open", {**OPEN, "sid": "s" * 129}),
    ("open", {**OPEN, "namespace": 3}), ("open", {**OPEN, "pingInterval": 0}), ("open", {**OPEN, "pingTimeout": -1}),
    ("open", {**OPEN, "pingInterval": math.inf}), ("open", {**OPEN, "pingInterval": True}),
    ("open", {**OPEN, "pingInterval": "25000"}), ("open", {**OPEN, "maxPayload": -1}),
    ("open", {**OPEN, "maxPayload": 1.5}), ("open", {**OPEN, "rooms": "lobby"}), ("open", {**OPEN, "rooms": ["a b"]}),
    ("open", {**OPEN, "rooms": ["*"]}),
    ("joined", {"room": "lobby"}), ("joined", {"room": "lobby", "offset": "12"}),
    ("joined", {"room": "lobby", "offset": "１２-0"}), ("joined", {"room": "", "offset": "1-0"}),
    ("left", {}), ("left", {"room": 5}),
    ("recovery", {"complete": "no", "replayed": 0, "gaps": []}),
    ("recovery", {"complete": True, "replayed": -1, "gaps": []}),
    ("recovery", {"complete": True, "replayed": 1.0, "gaps": []}),
    ("recovery", {"complete": True, "replayed": 0, "gaps": {}}),
    ("recovery", {"complete": True, "replayed": 0, "gaps": [{"room": "r", "after": "x"}]}),
    ("recovery", {"complete": True, "replayed": 0, "gaps": ["r"]}),
    ("recovery", {"recovered": 1, "complete": True, "replayed": 0, "gaps": []}),
    ("call", {"ackId": "", "event": "e"}), ("call", {"ackId": 1, "event": "e"}), ("call", {"ackId": "a"}),
    ("close", {"reason": 1}), ("close", {"reconnect": "yes"}),
]


@pytest.mark.parametrize(("name", "data"), MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_frames_raise_frame_error(name, data):
    with pytest.raises(FrameError):
        decode_frame(name, data)
    assert issubclass(FrameError, ValueError)


def test_offsets_are_ascii_digits_of_at_most_64_bits_on_both_sides():
    assert parse_offset("12-3") == (12, 3) and is_offset("18446744073709551615-0")
    for bad in ("١٢-3", "²-1", "1-", "-1", "1-2-3", "1 -2", "1-2\n", "1" * 21 + "-0", 12):
        assert not is_offset(bad)
        with pytest.raises(ValueError):
            parse_offset(bad)  # type: ignore[arg-type]
