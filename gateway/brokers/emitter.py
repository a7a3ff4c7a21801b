"""Publish to rooms from outside the gateway (like Socket.IO's emitter).

Any Python process that can reach the gateway's Redis can publish a room event:
it is logged and fanned out exactly as if a node had published it::

    from gateway.brokers.emitter import Emitter
    Emitter("redis://127.0.0.1:6379/0").publish("/chat", "lobby", "announcement", {"text": "hi"})

Blocking (redis-py's sync client), so it fits a web app, a job or a script. Without
Redis, use the HTTP API instead: ``POST /api/publish`` (README, "Server-side API").
"""

from __future__ import annotations

from typing import Any

import redis

from gateway.brokers.redis_streams import PUBLISH, publish_call
from gateway.settings import Settings
from gateway.wire.envelope import Envelope, server_event


class Emitter:
    def __init__(self, url: str, *, prefix: str | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or Settings(broker=url)
        self.prefix = prefix or self.settings.redis_prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._script = self._redis.register_script(PUBLISH)

    def publish(self, namespace: str, room: str | None, event: str, data: Any = None) -> str:
        """Log and fan out ``event`` to ``room`` (a room, a sid, or None for the whole
        namespace) of ``namespace``; returns its offset."""
        room, event, data = server_event(room, event, data)
        draft = Envelope(namespace, room, event, data, "", None, None, 0)
        keys, args = publish_call(self.prefix, self.settings, draft, True)  # as a node would (bounds, expiry)
        offset, _ts = self._script(keys=keys, args=args)
        return offset.decode() if isinstance(offset, bytes) else str(offset)

    def close(self) -> None:
        self._redis.close()
