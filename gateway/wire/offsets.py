"""Offsets and the resume cursor.

An offset is an opaque, ordered string ``"<ms>-<seq>"`` (the shape of a Redis
stream id), increasing per room. A cursor is a session's position in every room
it is in; SSE carries it in each event's ``id:`` so that ``Last-Event-ID`` alone
resumes a session. Only the session's own stream carries ``id:`` lines, so the cursor
may hold the session's private key, which resuming requires::

    <sid>:<key>;<room>=<offset>,<room>=<offset>
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeGuard

from gateway.wire.envelope import NAME_RE, is_name
from gateway.wire.errors import BadLastEventId

ZERO = "0-0"
ALL_ROOM = "*"
"""The namespace room every session is in (server-side emits without a room)."""

# Two runs of ASCII digits, 64 bits each at most (a Redis stream id's shape). Not
# ``str.isdigit``: it also takes "²" and "١".
OFFSET_RE = re.compile(r"\A([0-9]{1,20})-([0-9]{1,20})\Z")


def is_room(room: object) -> TypeGuard[str]:
    """A room name, or ``*``."""
    return room == ALL_ROOM or is_name(room)


def parse_offset(offset: str) -> tuple[int, int]:
    """``"12-3"`` -> ``(12, 3)``; raises ``ValueError`` on anything else."""
    match = OFFSET_RE.match(offset) if isinstance(offset, str) else None
    if match is None:
        raise ValueError(f"not an offset: {offset!r:.80}")
    return int(match[1]), int(match[2])


def is_offset(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and OFFSET_RE.match(value) is not None


def format_cursor(sid: str, key: str, positions: Mapping[str, str]) -> str:
    """``<sid>:<key>;<room>=<offset>,...``: what ``Last-Event-ID`` carries to resume."""
    return sid + ":" + key + ";" + ",".join(f"{room}={off}" for room, off in positions.items())


# A cursor entry: a 128-character room name, "=", a 20+20 digit offset, a comma.
_ENTRY_BYTES = 128 + 1 + 41 + 1


def parse_cursor(value: str, max_rooms: int) -> tuple[str, str | None, dict[str, str]]:
    """Parse a ``Last-Event-ID`` into sid, key (None if absent) and positions.

    Raises ``BadLastEventId`` with the reason. A missing key is not a syntax error:
    the hub refuses it as it refuses any wrong key, as an unknown session. A cursor
    longer than a session in ``max_rooms`` rooms (plus its two own) can hold is refused
    before it is split: a 7 MB header must not cost the event loop a second.
    """
    if len(value) > 100 + (max_rooms + 2) * _ENTRY_BYTES or value.count(",") > max_rooms + 1:
        raise BadLastEventId(f"Last-Event-ID lists more rooms than a session may be in ({max_rooms})")
    head, sep, rest = value.partition(";")
    sid, _, key = head.partition(":")
    if not sep or not NAME_RE.match(sid) or (key and not NAME_RE.match(key)):
        raise BadLastEventId("Last-Event-ID must look like '<sid>:<key>;<room>=<offset>,...'")
    positions: dict[str, str] = {}
    for part in filter(None, rest.split(",")):
        room, eq, off = part.partition("=")
        if not eq or not is_room(room) or not is_offset(off):
            raise BadLastEventId(f"bad room position {part!r} in Last-Event-ID")
        positions[room] = off
    return sid, key or None, positions


def check_positions(positions: object, max_rooms: int) -> dict[str, str]:
    """Validate the ``offsets`` map a Socket.IO client sends in its auth payload."""
    if positions is None:
        return {}
    if isinstance(positions, dict) and len(positions) > max_rooms + 2:
        raise BadLastEventId(f"offsets lists more rooms than a session may be in ({max_rooms})")
    if not isinstance(positions, dict) or not all(
        is_room(r) and is_offset(o) for r, o in positions.items()
    ):
        raise BadLastEventId("offsets must map room names to offsets like '1700000000000-4'")
    return dict(positions)
