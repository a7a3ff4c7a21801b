"""What a node holds in memory, in bytes: the ``gateway_held_bytes`` gauge.

Every store a client can fill is bounded in bytes (issue 12; settings under
"memory bounds in bytes"):

=========  ==========================================================================
logs       room delivery logs: ``log_max_bytes`` a room, ``logs_max_bytes`` the node
           (memory broker; with Redis the logs live in Redis, bounded per stream and
           expiring after ``log_max_age``)
dedup      acks kept for the dedup window: ``dedup_max_bytes`` the node (memory broker),
           ``dedup_entry_max_bytes`` each (both brokers)
output     what connections have waiting to be written: ``session_queue_bytes`` each,
           past which a connection is cut as a slow consumer
=========  ==========================================================================

Each store keeps a running count as it changes, so the gauge is read at scrape
time without walking any entry (only the transports' per-connection counters).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gateway.core.hub import Gateway


class HeldBytes(Collector):
    """``gateway_held_bytes{held="logs"|"dedup"|"output"}``, computed when scraped."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "gateway_held_bytes", "Bytes this node holds for clients, by store (encoded sizes)", labels=["held"]
        )
        for held, count in held_bytes(self._gateway).items():
            gauge.add_metric([held], count)
        yield gauge


def collect_young() -> None:
    """A young-generation collection; the hub's sweeper runs one about every second.

    With ``GATEWAY_GC_THRESHOLD`` at 100,000 allocations, cyclic garbage waits for that
    many before it is collected: on a quiet node, indefinitely. Some of it is large:
    python-engineio's WebSocket handler leaves exception tracebacks whose frames hold the
    last message read, so 60 refused connects with a 900 KB ``auth`` kept 54 MB (measured
    with ``python -m comparison.memory --attack auth``; +14 MB at CPython's default
    threshold). Collecting generation 0 costs at most one young collection per second
    (none of the frozen start-up objects are visited); what survives into generation 1
    is collected every 50 of them, as before.
    """
    gc.collect(0)


def held_bytes(gateway: Gateway) -> dict[str, int]:
    """The gauge's figures: the broker's stores (when in this process) and every connection's pending output."""
    held = dict(gateway.broker.held_bytes())
    held["output"] = sum(
        transport.pending_bytes() for transport in gateway.transports.values() if hasattr(transport, "pending_bytes")
    )
    return held
