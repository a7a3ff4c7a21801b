"""The proxy's counters, per transport class, and a small client that reads them over HTTP.

The proxy serves them as JSON at ``GET /__proxy/stats`` and zeroes them at
``POST /__proxy/reset``. ``read_stats``/``reset_stats`` use only the standard library
(blocking, short timeout) so they work from a Locust user under gevent as well as from a script.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final, Literal

from .classify import TRANSPORT_CLASSES, TransportClass

CutReason = Literal["idle", "drop"]

STATS_PATH: Final = "/__proxy/stats"
RESET_PATH: Final = "/__proxy/reset"


@dataclass(slots=True)
class Counters:
    """What went through the proxy for one transport class since start (or the last reset).

    Bytes are message bytes: HTTP bodies as sent on the wire (compressed if the upstream
    compressed them; chunked framing and headers not counted) and WebSocket message payloads.
    """

    requests: int = 0
    bytes_to_client: int = 0
    bytes_to_upstream: int = 0
    websocket_upgrades: int = 0
    upgrades_refused: int = 0
    cuts_idle: int = 0
    cuts_drop: int = 0
    upstream_errors: int = 0

    def count_cut(self, reason: CutReason) -> None:
        if reason == "idle":
            self.cuts_idle += 1
        else:
            self.cuts_drop += 1


COUNTER_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in fields(Counters))


class Stats:
    """The live counters of one proxy: mutated in place on the event loop, never shared across threads."""

    def __init__(self, profile: str) -> None:
        self.profile = profile
        self.classes: dict[TransportClass, Counters] = {c: Counters() for c in TRANSPORT_CLASSES}

    def __getitem__(self, transport_class: TransportClass) -> Counters:
        return self.classes[transport_class]

    def reset(self) -> None:
        # Replace the objects' contents, not the objects: in-flight exchanges hold references.
        for counters in self.classes.values():
            for name in COUNTER_NAMES:
                setattr(counters, name, 0)

    def to_json(self, connections: int) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "connections": connections,
            "classes": {name: asdict(counters) for name, counters in self.classes.items()},
        }


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """One reading of a proxy's counters, as ``read_stats`` returns it."""

    profile: str
    connections: int  # client connections open at the proxy when read
    classes: dict[TransportClass, Counters] = field(default_factory=dict)

    def __getitem__(self, transport_class: TransportClass) -> Counters:
        return self.classes[transport_class]

    def total(self, counter: str) -> int:
        """The sum of one counter (a ``Counters`` field name) over every transport class."""
        if counter not in COUNTER_NAMES:
            raise KeyError(f"no counter {counter!r}; counters are {', '.join(COUNTER_NAMES)}")
        return sum(int(getattr(c, counter)) for c in self.classes.values())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StatsSnapshot:
        classes: dict[TransportClass, Counters] = {}
        for name in TRANSPORT_CLASSES:
            raw = data["classes"].get(name, {})
            classes[name] = Counters(**{k: int(raw.get(k, 0)) for k in COUNTER_NAMES})
        return cls(profile=str(data["profile"]), connections=int(data["connections"]), classes=classes)


# Never route loopback control requests through an HTTP proxy named in the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def read_stats(proxy_url: str, timeout: float = 5.0) -> StatsSnapshot:
    """Read the counters of the proxy at ``proxy_url`` (e.g. ``http://127.0.0.1:8080``)."""
    with _opener.open(proxy_url.rstrip("/") + STATS_PATH, timeout=timeout) as response:
        return StatsSnapshot.from_json(json.load(response))


def reset_stats(proxy_url: str, timeout: float = 5.0) -> None:
    """Zero the counters of the proxy at ``proxy_url``."""
    request = urllib.request.Request(proxy_url.rstrip("/") + RESET_PATH, data=b"", method="POST")
    with _opener.open(request, timeout=timeout) as response:
        response.read()
