"""What the comparison runs: cell kinds (transport x proxy profile), load levels, presets.

Pure: no processes, no I/O. ``build_matrix`` turns the command line's choices into the
ordered list of ``Cell``s that ``comparison.runner`` executes and the report expects.

A cell's transport is one Locust user class of ``loadtests/users.py`` (a ``--transport-mix``
with a single transport). "Direct" cells go through the proxy's ``passthrough`` profile
(it forwards everything, WebSocket included) so that every cell has the same one proxy hop
and its bytes and requests are counted; ``--direct-via none`` connects them straight to the
gateway instead, and their bytes are then reported as not measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal

Transport = Literal["sse", "sio-websocket", "sio-default", "sio-polling"]
DirectVia = Literal["passthrough", "none"]

# How the report names each Locust user class.
TRANSPORT_LABELS: Final[dict[str, str]] = {
    "sse": "SSE + POST",
    "sio-websocket": "Socket.IO WebSocket",
    "sio-default": "Socket.IO (default: polling, upgrade tried)",
    "sio-polling": "Socket.IO polling",
}


@dataclass(frozen=True, slots=True)
class CellKind:
    """One transport behind one proxy profile, independent of load."""

    key: str  # e.g. "sse-block": what --cells names
    family: str  # what the report groups by: "sse", "sio-websocket" or "sio-polling"
    user: Transport  # the Locust user class label, for --transport-mix
    profile: str  # the proxy profile, "passthrough" for direct cells
    title: str
    fault: bool = False
    proxy_options: tuple[str, ...] = ()

    @property
    def direct(self) -> bool:
        return self.profile == "passthrough"


# Connections live 2-6 s under the drop profile, so a cell of a few dozen seconds sees many cuts.
DROP_OPTIONS: Final = ("--drop-min", "2", "--drop-max", "6")

KINDS: Final[tuple[CellKind, ...]] = (
    CellKind("sio-websocket-direct", "sio-websocket", "sio-websocket", "passthrough",
             "Socket.IO over WebSocket, WebSocket allowed"),
    CellKind("sse-direct", "sse", "sse", "passthrough", "SSE + POST, WebSocket allowed"),
    CellKind("sio-polling-direct", "sio-polling", "sio-polling", "passthrough",
             "Socket.IO polling only, WebSocket allowed"),
    # Socket.IO's default client behind a proxy that refuses the upgrade: it stays on polling.
    CellKind("sio-polling-block", "sio-polling", "sio-default", "block-websocket",
             "Socket.IO (default client) behind a WebSocket-blocking proxy: polling fallback"),
    CellKind("sse-block", "sse", "sse", "block-websocket", "SSE + POST behind a WebSocket-blocking proxy"),
    CellKind("sse-drop", "sse", "sse", "drop", "SSE + POST, proxy cuts every connection after 2-6 s",
             fault=True, proxy_options=DROP_OPTIONS),
    CellKind("sio-polling-drop", "sio-polling", "sio-polling", "drop",
             "Socket.IO polling, proxy cuts every connection after 2-6 s", fault=True, proxy_options=DROP_OPTIONS),
    CellKind("sio-websocket-drop", "sio-websocket", "sio-websocket", "drop",
             "Socket.IO WebSocket, proxy cuts every connection after 2-6 s", fault=True,
             proxy_options=DROP_OPTIONS),
)
KINDS_BY_KEY: Final = {kind.key: kind for kind in KINDS}
FAMILY_LABELS: Final = {"sse": "SSE + POST", "sio-websocket": "Socket.IO WebSocket", "sio-polling": "Socket.IO polling"}


@dataclass(frozen=True, slots=True)
class Load:
    users: int
    room_size: int
    publish_rate: float  # messages per second per user
    payload_bytes: int
    spawn_rate: float  # users started per second


@dataclass(frozen=True, slots=True)
class Timing:
    duration: float  # seconds of load per repeat
    warmup: float  # seconds of warm-up load before each repeat (0: none)
    repeats: int


@dataclass(frozen=True, slots=True)
class Preset:
    name: Literal["quick", "full"]
    users: tuple[int, ...]
    timing: Timing
    kinds: tuple[str, ...] = field(default_factory=lambda: tuple(k.key for k in KINDS))
    fault_users: int | None = None  # fault cells run at this load (default: the lowest)


PRESETS: Final[dict[str, Preset]] = {
    # The whole matrix once, short: a smoke check that every cell runs (about 2 minutes).
    "quick": Preset("quick", users=(10, 40), timing=Timing(duration=5, warmup=1, repeats=1),
                    kinds=("sio-websocket-direct", "sse-direct", "sio-polling-direct", "sio-polling-block",
                           "sse-block", "sse-drop")),
    # What docs/report was made with (about 21 minutes on 2 cores).
    "full": Preset("full", users=(20, 100), timing=Timing(duration=25, warmup=3, repeats=3)),
}


@dataclass(frozen=True, slots=True)
class Cell:
    kind: CellKind
    load: Load
    timing: Timing
    direct_via: DirectVia = "passthrough"

    @property
    def id(self) -> str:
        return f"{self.kind.key}-u{self.load.users}"

    @property
    def uses_proxy(self) -> bool:
        return not (self.kind.direct and self.direct_via == "none")

    @property
    def seconds(self) -> float:
        """Load seconds this cell needs (the runner adds its own overhead per repeat)."""
        return self.timing.repeats * (self.timing.duration + self.timing.warmup)


class MatrixError(ValueError):
    """The command line asked for a matrix that cannot run; ``str()`` says why."""


def parse_cells(spec: str | None) -> tuple[str, ...] | None:
    if spec is None:
        return None
    keys = tuple(part.strip() for part in spec.split(",") if part.strip())
    unknown = [k for k in keys if k not in KINDS_BY_KEY]
    if unknown:
        raise MatrixError(f"unknown cell(s) {', '.join(unknown)}; cells are {', '.join(KINDS_BY_KEY)}")
    if not keys:
        raise MatrixError("--cells is empty")
    return keys


def build_matrix(
    preset: Preset,
    *,
    cells: Sequence[str] | None = None,
    users: Sequence[int] | None = None,
    repeats: int | None = None,
    duration: float | None = None,
    warmup: float | None = None,
    room_size: int = 10,
    publish_rate: float = 2.0,
    payload_bytes: int = 64,
    spawn_rate: float = 10.0,
    direct_via: DirectVia = "passthrough",
) -> list[Cell]:
    """The cells to run, in order: each load level in turn, every kind at it; fault cells once."""
    timing = preset.timing
    timing = replace(timing, repeats=repeats if repeats is not None else timing.repeats,
                     duration=duration if duration is not None else timing.duration,
                     warmup=warmup if warmup is not None else timing.warmup)
    if timing.repeats < 1 or timing.duration <= 0 or timing.warmup < 0:
        raise MatrixError("--repeats must be >= 1, --duration > 0 and --warmup >= 0")
    levels = tuple(users) if users else preset.users
    if not levels or any(u < 1 for u in levels):
        raise MatrixError("--users needs one or more positive user counts")
    if room_size < 2 or publish_rate <= 0 or payload_bytes < 0 or spawn_rate <= 0:
        raise MatrixError("--room-size must be >= 2, --publish-rate and --spawn-rate > 0, --payload-bytes >= 0")
    keys = tuple(cells) if cells else preset.kinds
    fault_users = preset.fault_users or min(levels)
    out: list[Cell] = []
    for level in sorted(set(levels)):
        load = Load(level, room_size, publish_rate, payload_bytes, spawn_rate)
        out += [Cell(KINDS_BY_KEY[k], load, timing, direct_via) for k in keys if not KINDS_BY_KEY[k].fault]
    fault_load = Load(fault_users, room_size, publish_rate, payload_bytes, spawn_rate)
    out += [Cell(KINDS_BY_KEY[k], fault_load, timing, direct_via) for k in keys if KINDS_BY_KEY[k].fault]
    return out
