"""Server->client acknowledgements: a pure state machine, no event loop inside.

    pending --resolve--> acked
        |--expire---> timed_out
        '--cancel---> cancelled   (the session went away)

A resolved or expired id is remembered for a while so that a late or repeated
ack is told apart (``AckAlreadyUsed``) from one that never existed (``UnknownAck``).
Ack ids are random (96 bits) and bound to their session: another session's id,
pending or used, is unknown to everyone else.
"""

from __future__ import annotations

import enum
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from gateway.wire.errors import AckAlreadyUsed, UnknownAck


class AckState(enum.Enum):
    PENDING = "pending"
    ACKED = "acked"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class PendingAck:
    ack_id: str
    sid: str
    event: str
    state: AckState = AckState.PENDING
    result: Any = None
    # Whoever waits for the outcome (the async layer hangs a future here).
    waiter: Any = field(default=None, repr=False)


class AckRegistry:
    """Tracks outstanding server->client calls by ack id."""

    def __init__(self, remember: int = 10_000) -> None:
        self._pending: dict[str, PendingAck] = {}
        self._done: OrderedDict[str, tuple[str, AckState]] = OrderedDict()  # id -> (sid, outcome)
        self._remember = remember

    def __len__(self) -> int:
        return len(self._pending)

    def open(self, sid: str, event: str, waiter: Any = None) -> PendingAck:
        ack = PendingAck(ack_id=secrets.token_urlsafe(12), sid=sid, event=event, waiter=waiter)
        self._pending[ack.ack_id] = ack
        return ack

    def resolve(self, ack_id: str, sid: str, result: Any) -> PendingAck:
        """The client acknowledged; raises if the id is unknown or already used."""
        ack = self._take(ack_id, sid)
        ack.state, ack.result = AckState.ACKED, result
        self._finish(ack)
        return ack

    def expire(self, ack_id: str) -> PendingAck | None:
        ack = self._pending.pop(ack_id, None)
        if ack is not None:
            ack.state = AckState.TIMED_OUT
            self._finish(ack)
        return ack

    def cancel_session(self, sid: str) -> list[PendingAck]:
        gone = [a for a in self._pending.values() if a.sid == sid]
        for ack in gone:
            del self._pending[ack.ack_id]
            ack.state = AckState.CANCELLED
            self._finish(ack)
        return gone

    def _take(self, ack_id: str, sid: str) -> PendingAck:
        ack = self._pending.get(ack_id)
        if ack is not None and ack.sid == sid:
            return self._pending.pop(ack_id)
        done = self._done.get(ack_id) if ack is None else None
        if done is not None and done[0] == sid:
            raise AckAlreadyUsed(f"ack {ack_id} is already {done[1].value}", ackId=ack_id)
        raise UnknownAck(f"no pending call with ack id {ack_id!r} for this session", ackId=ack_id)

    def _finish(self, ack: PendingAck) -> None:
        self._done[ack.ack_id] = (ack.sid, ack.state)
        while len(self._done) > self._remember:
            self._done.popitem(last=False)
