"""Rate and connection limits: what one client address or one session may take of a node.

Pure pieces, no I/O and no event loop; the caller passes the time (``time.monotonic``):

- ``TokenBucket``       ``rate`` tokens a second up to ``burst``; a refusal says how long to wait;
- ``KeyedBuckets``      a bucket per key (client address), forgotten once refilled: memory
                        follows the keys active in the last ``burst / rate`` seconds, capped;
- ``ConnectionCounter`` open connections per key, each held by a ``Lease`` released once;
- ``Limits``            the gateway's limits over these, raising ``RateLimited``.

The limits (``GATEWAY_*``, 0 turns one off):

=============================  ==========================================================
per client address             concurrent connections (SSE streams, Socket.IO namespace
                               connections); new sessions per second, with a burst
per session                    publishes and application emits per second, with a burst
per node                       sessions held (connected and recoverable)
per multiplexed SSE stream     sessions it carries
=============================  ==========================================================

The client address is the ASGI scope's ``client`` (``client_address``): the peer's, or the
client's from ``X-Forwarded-For`` when uvicorn trusts the peer as a proxy (``--proxy-headers``,
on by default, with ``--forwarded-allow-ips`` / ``FORWARDED_ALLOW_IPS``, by default only
127.0.0.1). Behind a proxy on another machine that is not named there, every client counts
as the proxy's one address. IPv6 addresses count per /64 (what one host is usually given). A connection whose address the server does not report (a Unix
socket) is not limited per address; the node-wide limit still applies.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.wire.errors import RateLimited

if TYPE_CHECKING:
    from gateway.core.sessions import Session
    from gateway.metrics import Metrics
    from gateway.settings import Settings

# Addresses whose session buckets are kept at most; past it the least recently seen is
# forgotten (which forgives what it owed: refusing new addresses instead would let one
# spraying many addresses lock everyone else out). 240 bytes each (measured): 24 MB at most.
MAX_TRACKED_ADDRESSES = 100_000
# What a client is told to wait when a count (not a rate) is full: connections and
# sessions end at times nobody knows, so this is a polite interval, not a promise.
FULL_RETRY_AFTER = 5.0


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; a request takes one."""

    rate: float
    burst: float
    tokens: float
    stamp: float  # when ``tokens`` was last brought up to date

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate, burst, burst, now)

    def take(self, now: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there will be
        (and nothing is taken: a refused request costs its sender nothing more)."""
        tokens = self.tokens
        if now > self.stamp:  # a clock that went back refills nothing
            tokens += (now - self.stamp) * self.rate
            if tokens > self.burst:
                tokens = self.burst
            self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.rate

    def idle(self, now: float) -> bool:
        """Refilled to the brim: forgetting this bucket changes nothing."""
        return self.tokens + max(0.0, now - self.stamp) * self.rate >= self.burst


class KeyedBuckets:
    """A ``TokenBucket`` per key (a client address), for the keys seen lately.

    Kept least recently used first. A bucket unused for ``burst / rate`` seconds has
    refilled, so a fresh one would be the same: those are dropped from the front as
    new keys arrive, and the table never holds more than ``max_keys``.
    """

    def __init__(self, rate: float, burst: float, max_keys: int = MAX_TRACKED_ADDRESSES) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, now: float) -> float:
        """``TokenBucket.take`` on ``key``'s bucket (a full one for a key not seen lately)."""
        bucket = self._buckets.pop(key, None) or TokenBucket.full(self.rate, self.burst, now)
        wait = bucket.take(now)
        self._buckets[key] = bucket  # now the most recently used
        self._evict(now)
        return wait

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if not oldest.idle(now) and len(buckets) <= self.max_keys:
                return  # every later one was used more recently (if it is idle too, its turn comes)
            buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


class Lease:
    """One open connection counted against its key; ``release`` it when the connection ends
    (idempotent, so every exit path may call it)."""

    __slots__ = ("_counter", "key", "released")

    def __init__(self, counter: ConnectionCounter, key: str) -> None:
        self._counter, self.key, self.released = counter, key, False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._counter._release(self.key)


class ConnectionCounter:
    """Open connections per key. A key is forgotten when its count is back to zero, so the
    table holds only keys with a connection open."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}
        self.total = 0

    def acquire(self, key: str, limit: int) -> Lease | None:
        """A lease on one more connection for ``key``, or None if ``limit`` are open (0: no limit)."""
        count = self._open.get(key, 0)
        if limit and count >= limit:
            return None
        self._open[key] = count + 1
        self.total += 1
        return Lease(self, key)

    def _release(self, key: str) -> None:
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)
        self.total -= 1

    def count(self, key: str) -> int:
        return self._open.get(key, 0)

    def __len__(self) -> int:
        return len(self._open)


def address_key(host: str) -> str:
    """The key a client address is counted under: IPv4 as is, IPv6 by its /64 (one host is
    usually given a whole /64), an IPv4-mapped IPv6 address as the IPv4 one."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an IP (a test client's name): counted as given
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


def client_address(scope: Mapping[str, Any] | None) -> str | None:
    """The client address of an ASGI connection (``scope["client"]``, which uvicorn fills and,
    with ``--proxy-headers``, takes from the trusted proxy's ``X-Forwarded-For``), as the key
    limits count it under; None when the server does not say (a Unix socket)."""
    client = scope.get("client") if scope is not None else None
    if not client or not client[0]:
        return None
    return address_key(str(client[0]))


class Limits:
    """The gateway's limits: the transports and the hub ask, a refusal raises ``RateLimited``
    (``retryAfter`` in seconds, ``limit`` naming which) and is counted in ``gateway_limited_total``."""

    def __init__(self, settings: Settings, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.metrics, self.clock = settings, metrics, clock
        self._publish_rate, self._publish_burst = settings.session_publish_rate, settings.session_publish_burst
        self.connections = ConnectionCounter()
        self.new_sessions = KeyedBuckets(settings.address_session_rate, settings.address_session_burst)
        metrics.connections.set_function(lambda: self.connections.total)
        metrics.limit_addresses.set_function(lambda: len(self.connections) + len(self.new_sessions))

    def connection(self, address: str | None) -> Lease:
        """Count one more open connection from ``address``; release the lease when it ends."""
        limit = self.settings.address_max_connections if address is not None else 0
        lease = self.connections.acquire(address or "", limit)
        if lease is None:
            raise self._refused(
                "address_connections", FULL_RETRY_AFTER,
                f"{limit} connections are already open from this address; close one first",
            )
        return lease

    def open_session(self, address: str | None, held: int, *, fresh: bool) -> None:
        """Before a session is opened (``fresh``) or brought to this node by a resume:
        the node's session count (``held`` now), then the address's rate of new sessions."""
        s = self.settings
        if s.max_sessions and held >= s.max_sessions:
            raise self._refused("sessions", FULL_RETRY_AFTER, f"this node holds its limit of {s.max_sessions} sessions")
        if fresh and address is not None and s.address_session_rate:
            wait = self.new_sessions.take(address, self.clock())
            if wait:
                raise self._refused(
                    "address_sessions", wait,
                    f"over {s.address_session_rate:g} new sessions a second from this address",
                )

    def carrier_session(self, carried: int) -> None:
        """Before one more session is attached to a multiplexed stream that carries ``carried``."""
        limit = self.settings.multiplex_max_sessions
        if limit and carried >= limit:
            raise self._refused(
                "carrier_sessions", FULL_RETRY_AFTER, f"this stream carries its limit of {limit} sessions",
            )

    def request(self, session: Session) -> None:
        """Before a publish or an application emit of ``session`` does anything.

        On every publish: the settings are read once, in ``__init__``, as plain attributes
        (a pydantic attribute is slower), and the bucket lives on the session (no lookup).
        Measured: 0.7 us a call on this machine, its clock read (0.13 us) included.
        """
        rate = self._publish_rate
        if not rate:
            return
        now = self.clock()
        bucket = session.bucket
        if bucket is None:
            bucket = session.bucket = TokenBucket.full(rate, self._publish_burst, now)
        wait = bucket.take(now)
        if wait:
            raise self._refused("session_publish", wait, f"over {rate:g} publishes and emits a second")

    def _refused(self, limit: str, wait: float, message: str) -> RateLimited:
        self.metrics.limited.labels(limit).inc()
        # Whole milliseconds, rounded up: waiting what it says is always enough.
        return RateLimited(message, retryAfter=math.ceil(wait * 1000) / 1000, limit=limit)
