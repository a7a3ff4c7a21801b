"""Prometheus metrics of one gateway (its own registry, so several can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

# Sample name -> its (labels, value) pairs, as an exposition states them.
Samples = dict[str, list[tuple[dict[str, str], float]]]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions = Gauge("gateway_sessions", "Sessions by state", ["state"], registry=r)
        self.connects = Counter(
            "gateway_connects_total", "Accepted connections", ["transport", "resumed"], registry=r
        )
        self.rejected = Counter(
            "gateway_rejected_total", "Refused requests by error code", ["code"], registry=r
        )
        self.published = Counter("gateway_published_total", "Room events logged", registry=r)
        self.delivered = Counter(
            "gateway_delivered_total", "Room events handed to connections", ["transport"], registry=r
        )
        self.replayed = Counter("gateway_replayed_total", "Room events replayed on resume", registry=r)
        self.gaps = Counter("gateway_recovery_gaps_total", "Rooms resumed with a gap", registry=r)
        # Reasons: slow_consumer, socketio_outbox_full, socket_closed, volatile_not_ready,
        # presence_unannounced; binary_attachments: a Socket.IO socket ended for a binary packet
        # over the attachment bounds, its held attachments let go (fences/socketio_attachments.py).
        self.dropped = Counter(
            "gateway_dropped_total", "Events not delivered live, by reason", ["reason"], registry=r
        )
        self.volatile = Counter(
            "gateway_volatile_total", "Volatile room events fanned out (not logged)", registry=r
        )
        # Presence (gateway/core/presence.py): members entering and leaving rooms on this node,
        # and the presence.join / presence.leave events it announced.
        self.presence_changes = Counter(
            "gateway_presence_changes_total", "Room members entering or leaving presence on this node",
            ["change"], registry=r,
        )
        self.presence_events = Counter(
            "gateway_presence_events_total", "presence.join / presence.leave events announced", ["event"],
            registry=r,
        )
        self.duplicates = Counter(
            "gateway_duplicates_total", "Retransmissions answered from the dedup window", registry=r
        )
        self.library_errors = Counter(
            "gateway_library_errors_total",
            "Errors python-socketio / python-engineio reported (malformed packets and the like)",
            ["library"], registry=r,
        )
        self.calls = Counter("gateway_calls_total", "Server->client calls by outcome", ["outcome"], registry=r)
        # Rate and connection limits (gateway/core/limits.py); the gauges are read at scrape time.
        self.limited = Counter(
            "gateway_limited_total", "Connections and requests refused as rate_limited, by limit", ["limit"], registry=r
        )
        self.connections = Gauge(
            "gateway_connections", "Open connections (SSE streams, Socket.IO namespace connections)", registry=r
        )
        # The tabs' shared Socket.IO long-polls (gateway/transports/socketio_multiplex.py).
        self.shared_polls = Gauge("gateway_shared_polls", "Shared Socket.IO long-polls waiting (GET /sio/multiplex)",
                                  registry=r)
        self.shared_poll_connections = Gauge(
            "gateway_shared_poll_connections", "Socket.IO polling connections waiting in a shared long-poll", registry=r
        )
        self.limit_addresses = Gauge(
            "gateway_limit_addresses", "Client addresses the limits hold state for (bounded)", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def read(exposition: bytes) -> Samples:
    """Every sample of an exposition (what ``/metrics`` serves) by sample name, e.g.
    ``gateway_delivered_total`` -> ``[({"transport": "sse"}, 3.0)]``.

    The operator view (``gateway/overview.py``) reads its figures through this, so they
    are the very ones a Prometheus scrape gets.
    """
    samples: Samples = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples
