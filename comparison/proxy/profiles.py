"""Proxy profiles: how a proxy between the client and the gateway misbehaves, one class each.

A profile changes the proxy at three points and only there:

- ``refuse_upgrade``: answer a WebSocket upgrade itself instead of forwarding it;
- ``wrap_sink``: wrap the writer of response bodies (to hold bytes back);
- ``cutoffs``: deadlines after which a client connection is cut (idle, random lifetime).

Everything else (forwarding, streaming, counting) is the proxy's and is the same for all.
Profiles stack: ``block-websocket+idle-timeout`` is a corporate proxy that refuses WebSocket
and cuts quiet connections, each behaviour still its own class.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from aiohttp import web

from .stats import CutReason


class Sink(Protocol):
    """Where a response body goes, chunk by chunk."""

    async def write(self, chunk: bytes) -> None: ...

    async def finish(self) -> None:
        """The body ended: deliver anything held back."""


class Activity(Protocol):
    """What a cutoff may look at on a client connection (event loop clock, seconds)."""

    @property
    def opened(self) -> float: ...

    @property
    def last_activity(self) -> float: ...


# A connection's deadline, recomputed whenever its timer fires (so activity can push it back).
Deadline = Callable[[Activity], float]


class Cutoff(Protocol):
    reason: CutReason

    def start(self, opened: float) -> Deadline:
        """A new client connection opened at ``opened``: its deadline function."""
        ...


class Profile:
    """Forward everything, WebSocket included, streaming both ways: the control."""

    name: str = "passthrough"

    def refuse_upgrade(self, request: web.BaseRequest) -> web.Response | None:
        return None

    def wrap_sink(self, sink: Sink) -> Sink:
        return sink

    def cutoffs(self) -> tuple[Cutoff, ...]:
        return ()


class Passthrough(Profile):
    name = "passthrough"


class BlockWebSocket(Profile):
    """Refuse ``Upgrade: websocket`` with a 403, as corporate proxies do; stream everything else."""

    name = "block-websocket"
    BODY: Final = "WebSocket upgrades are blocked by this proxy.\n"

    def refuse_upgrade(self, request: web.BaseRequest) -> web.Response | None:
        return web.Response(status=403, text=self.BODY, headers={"Connection": "close"})


class BufferingSink:
    """Hold response bytes until ``limit`` are pending or the body ends, like a scanning proxy."""

    __slots__ = ("_held", "_inner", "_limit")

    def __init__(self, inner: Sink, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self._held = bytearray()

    async def write(self, chunk: bytes) -> None:
        self._held += chunk
        if len(self._held) >= self._limit:
            await self._release()

    async def finish(self) -> None:
        await self._release()
        await self._inner.finish()

    async def _release(self) -> None:
        if self._held:
            held, self._held = bytes(self._held), bytearray()
            await self._inner.write(held)


class Buffering(Profile):
    """Deliver response bodies in blocks of ``kib`` KiB (or at their end). Breaks naive SSE."""

    name = "buffering"

    def __init__(self, kib: int) -> None:
        if kib <= 0:
            raise ValueError("buffer size must be a positive number of KiB")
        self.limit = kib * 1024

    def wrap_sink(self, sink: Sink) -> Sink:
        return BufferingSink(sink, self.limit)


class IdleCutoff:
    """Deadline: ``seconds`` after the last byte that crossed the connection, either way."""

    reason: CutReason = "idle"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def start(self, opened: float) -> Deadline:
        return self._deadline

    def _deadline(self, connection: Activity) -> float:
        return connection.last_activity + self.seconds


class IdleTimeout(Profile):
    """Cut a client connection with no traffic either way for ``seconds`` (nginx: proxy_read_timeout)."""

    name = "idle-timeout"

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("idle timeout must be positive")
        self._cutoff = IdleCutoff(seconds)

    def cutoffs(self) -> tuple[Cutoff, ...]:
        return (self._cutoff,)


class LifetimeCutoff:
    """Deadline: a lifetime drawn uniformly in [low, high] when the connection opens."""

    reason: CutReason = "drop"

    def __init__(self, low: float, high: float, rng: random.Random) -> None:
        self.low, self.high, self._rng = low, high, rng

    def start(self, opened: float) -> Deadline:
        at = opened + self._rng.uniform(self.low, self.high)
        return lambda connection: at


class Drop(Profile):
    """Close each client connection after a random lifetime, for fault runs."""

    name = "drop"

    def __init__(self, low: float, high: float, seed: int | None) -> None:
        if not 0 < low <= high:
            raise ValueError("drop lifetimes need 0 < --drop-min <= --drop-max")
        self._cutoff = LifetimeCutoff(low, high, random.Random(seed))

    def cutoffs(self) -> tuple[Cutoff, ...]:
        return (self._cutoff,)


class Stack(Profile):
    """Several profiles at once: the first refusal wins, sinks nest, every cutoff applies."""

    def __init__(self, profiles: tuple[Profile, ...]) -> None:
        self.profiles = profiles
        self.name = "+".join(p.name for p in profiles)

    def refuse_upgrade(self, request: web.BaseRequest) -> web.Response | None:
        for profile in self.profiles:
            refusal = profile.refuse_upgrade(request)
            if refusal is not None:
                return refusal
        return None

    def wrap_sink(self, sink: Sink) -> Sink:
        # The first profile named is the outermost, nearest the upstream.
        for profile in reversed(self.profiles):
            sink = profile.wrap_sink(sink)
        return sink

    def cutoffs(self) -> tuple[Cutoff, ...]:
        return tuple(c for p in self.profiles for c in p.cutoffs())


@dataclass(frozen=True, slots=True)
class ProfileOptions:
    """The command line's knobs; each profile reads the ones it needs."""

    buffer_kib: int = 64
    idle_timeout: float = 60.0
    drop_min: float = 5.0
    drop_max: float = 30.0
    seed: int | None = None


PROFILES: Final[dict[str, Callable[[ProfileOptions], Profile]]] = {
    Passthrough.name: lambda o: Passthrough(),
    BlockWebSocket.name: lambda o: BlockWebSocket(),
    Buffering.name: lambda o: Buffering(o.buffer_kib),
    IdleTimeout.name: lambda o: IdleTimeout(o.idle_timeout),
    Drop.name: lambda o: Drop(o.drop_min, o.drop_max, o.seed),
}


def make_profile(spec: str, options: ProfileOptions | None = None) -> Profile:
    """Build a profile from its name, or names joined by ``+`` (``block-websocket+idle-timeout``)."""
    options = options or ProfileOptions()
    names = [n.strip() for n in spec.split("+") if n.strip()]
    unknown = [n for n in names if n not in PROFILES]
    if not names or unknown:
        raise ValueError(f"unknown profile {spec!r}; profiles are {', '.join(PROFILES)} (join with '+')")
    profiles = tuple(PROFILES[n](options) for n in names)
    return profiles[0] if len(profiles) == 1 else Stack(profiles)
