"""Presence under churn: the joins + leaves per second one node handles, memory and Redis brokers.

One gateway node in this process (the hub and its broker, no HTTP: what is measured is the
core's cost of a membership change, presence included), ``--sessions`` sessions on a sink
that only counts what it is handed. Half of them sit in ``--rooms`` rooms and receive the
announcements; the other half churn: each joins a room, stays ``--hold`` seconds, leaves it,
again and again, for ``--seconds``. A join returns once its presence is written to the broker,
as a client's join ack does. Each configuration runs with presence.join / presence.leave off
and on. ``--hold 0`` (the default) is reconnect-like churn, as fast as the node goes: a leave and
a join again within ``GATEWAY_PRESENCE_EVENT_WINDOW`` cancel out, so little is announced; a hold
longer than the window makes every change an announcement::

    .venv/bin/python -m comparison.bench.presence_churn --seconds 5 --redis redis://127.0.0.1:6379/0
    .venv/bin/python -m comparison.bench.presence_churn --seconds 5 --sessions 2000 --hold 0.3 --redis redis://127.0.0.1:6379/0

Bounded: the run stops after ``--seconds`` (at most 60) with at most ``--sessions`` (at most
2,000) sessions; on Redis it writes under a key prefix of its own and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

from gateway.core.hub import Gateway
from gateway.core.sessions import Session
from gateway.settings import Settings
from gateway.wire.envelope import Envelope
from gateway.wire.requests import Join, Leave

NAMESPACE = "/bench"


class Sink:
    """A connection that writes nowhere and counts what it is handed."""

    transport = "bench"

    def __init__(self) -> None:
        self.events = 0

    def deliver(self, session: Session, envelope: Envelope, wire: bytes) -> None:
        self.events += 1

    def replay(self, session: Session, envelopes: list[Envelope]) -> None:
        self.events += len(envelopes)

    def send(self, event: str, data: Any) -> None:
        pass

    def call(self, ack_id: str, event: str, data: Any) -> None:
        pass

    def close(self, reason: str) -> None:
        pass


class SinkTransport:
    """Room fan-out to sinks: each member's count goes up (the hub passes the members)."""

    name = "bench"

    def broadcast(self, room: Any, members: dict[str, Session], envelope: Envelope, wire: bytes,
                  skip: str | None) -> None:
        for sid, session in members.items():
            if sid != skip and isinstance(session.channel, Sink):
                session.channel.events += 1


async def churn(
    broker: str, *, sessions: int, rooms: int, seconds: float, events: bool, hold: float = 0.0
) -> dict[str, Any]:
    prefix = f"rtgw-bench-presence-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        broker=broker, redis_prefix=prefix, address_session_rate=0, session_publish_rate=0,
        max_sessions=0, max_rooms_per_session=rooms + 1,
    )
    gateway = Gateway(settings)
    gateway.namespace(NAMESPACE, anonymous=True, presence_events=events)
    gateway.add_transport(SinkTransport())
    await gateway.start()
    try:
        opened: list[tuple[Session, Sink]] = []
        for _ in range(sessions):
            sink = Sink()
            session = await gateway.connect(NAMESPACE, sink, {})
            gateway.activate(session)
            opened.append((session, sink))
        names = [f"room-{i}" for i in range(rooms)]
        watchers, churners = opened[: sessions // 2], opened[sessions // 2:]
        for i, (session, _) in enumerate(watchers):
            await gateway.handle(session, Join(names[i % rooms]))
        changes = 0
        deadline = time.monotonic() + seconds

        async def worker(i: int, session: Session) -> None:
            nonlocal changes
            room = names[i % rooms]
            while time.monotonic() < deadline:
                await gateway.handle(session, Join(room))
                if hold:
                    await asyncio.sleep(hold)
                await gateway.handle(session, Leave(room))
                changes += 2
                if hold:
                    await asyncio.sleep(hold)

        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.gather(*(worker(i, session) for i, (session, _) in enumerate(churners)))
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        await asyncio.sleep(settings.presence_event_window * 2)  # the last announcements go out
        registry = gateway.metrics.registry
        announced = sum(registry.get_sample_value("gateway_presence_events_total", {"event": name}) or 0
                        for name in ("presence.join", "presence.leave"))
        return {
            "broker": broker.split("://")[0], "events": events, "sessions": sessions, "rooms": rooms, "hold": hold,
            "churning": len(churners), "seconds": round(wall, 2), "changes": changes,
            "changes_per_s": round(changes / wall), "cpu_ms_per_change": round(cpu * 1000 / max(changes, 1), 3),
            "announcements": int(announced),
            "announced_to_watchers": sum(sink.events for _, sink in watchers),
        }
    finally:
        await gateway.stop()
        if broker != "memory":
            await _drop_prefix(broker, prefix)


async def _drop_prefix(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    try:
        keys = [key async for key in redis.scan_iter(f"{prefix}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m comparison.bench.presence_churn", description=__doc__.split("\n")[0])
    p.add_argument("--redis", default="", help="also run on this Redis (redis://127.0.0.1:6379/0)")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--rooms", type=int, default=10)
    p.add_argument("--hold", type=float, default=0.0, help="seconds a churner stays in a room (and out of it)")
    args = p.parse_args()
    seconds, sessions = min(max(args.seconds, 0.5), 60.0), min(max(args.sessions, 2), 2000)
    brokers = ["memory", *([args.redis] if args.redis else [])]
    for broker in brokers:
        for events in (False, True):
            result = asyncio.run(churn(broker, sessions=sessions, rooms=args.rooms, seconds=seconds, events=events,
                                       hold=min(max(args.hold, 0.0), 10.0)))
            print(json.dumps(result))


if __name__ == "__main__":
    main()
