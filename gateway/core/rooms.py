"""Live room membership on this node (pure).

A room lists the sessions that are attached and receiving live events, grouped
by transport so each transport fans out to its own members in one pass.
Detached or replaying sessions keep their rooms in ``Session.rooms`` but are not
listed here until they are live again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.core.sessions import Session


class Room:
    __slots__ = ("members", "name", "namespace")

    def __init__(self, namespace: str, name: str) -> None:
        self.namespace = namespace
        self.name = name
        self.members: dict[str, dict[str, Session]] = {}

    def __len__(self) -> int:
        return sum(len(m) for m in self.members.values())


class Rooms:
    """``(namespace, room) -> Room`` for the live sessions of this node."""

    def __init__(self) -> None:
        self._rooms: dict[tuple[str, str], Room] = {}

    def get(self, namespace: str, name: str) -> Room | None:
        return self._rooms.get((namespace, name))

    def add(self, session: Session, name: str) -> None:
        key = (session.namespace, name)
        room = self._rooms.get(key)
        if room is None:
            room = self._rooms[key] = Room(session.namespace, name)
        room.members.setdefault(session.transport, {})[session.sid] = session

    def discard(self, session: Session, name: str) -> None:
        key = (session.namespace, name)
        room = self._rooms.get(key)
        if room is None:
            return
        members = room.members.get(session.transport)
        if members is not None:
            members.pop(session.sid, None)
            if not members:
                del room.members[session.transport]
        if not room.members:
            del self._rooms[key]

    def __iter__(self) -> Iterator[Room]:
        return iter(list(self._rooms.values()))

    def __len__(self) -> int:
        return len(self._rooms)
