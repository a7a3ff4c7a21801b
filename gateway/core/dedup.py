"""At-least-once in, exactly-once effect: a retransmitted ``clientEventId`` gets the first ack.

Two layers: requests still running on this node (a retransmission waits for the
original's outcome) and the broker's dedup entries, which outlive a node and its
restarts for the dedup window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.brokers.base import Broker, Dedup
from gateway.metrics import Metrics


class Deduplicator:
    def __init__(self, broker: Broker, window: float, metrics: Metrics) -> None:
        self._broker = broker
        self._window = window
        self._metrics = metrics
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    async def once(
        self, key: str | None, work: Callable[[Dedup | None], Awaitable[Any]], *, logs_itself: bool = False
    ) -> Any:
        """Run ``work`` unless ``key`` was already done (then return its first result).

        ``logs_itself``: ``work`` stores the dedup entry atomically with its effect (a
        publish), so a crash between the two cannot let a retransmission log it twice.
        A failure is not remembered: the client may retry it.
        """
        if key is None:
            return await work(None)
        running = self._inflight.get(key)
        if running is not None:
            self._metrics.duplicates.inc()
            return await asyncio.shield(running)
        # In flight from here on, before the first await: a retransmission arriving
        # during the broker lookup waits for this one instead of running too.
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            cached = await self._broker.dedup_get(key)
            if cached is not None:
                self._metrics.duplicates.inc()
                future.set_result(cached["result"])
                return cached["result"]
            result = await work(Dedup(key, self._window))
            if not logs_itself:
                await self._broker.dedup_put(key, {"result": result}, self._window)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting for it
            raise
        finally:
            del self._inflight[key]
