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
from typing import Any, Final, Literal

Transport = Literal["sse", "sio-websocket", "sio-default", "sio-polling", "auto"]
DirectVia = Literal["passthrough", "none"]
Server = Literal["gateway", "node-socketio", "raw-sse"]

# How the report names each Locust user class.
TRANSPORT_LABELS: Final[dict[str, str]] = {
    "sse": "SSE + POST",
    "sio-websocket": "Socket.IO WebSocket",
    "sio-default": "Socket.IO (default: polling, upgrade tried)",
    "sio-polling": "Socket.IO polling",
    "auto": "auto (SSE + POST at once, moved to WebSocket when allowed)",
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
    # What serves the cell: the gateway, or a calibration cell's reference server
    # (comparison/bench/servers: Node's socket.io, the raw SSE server), whose own cost is tiny,
    # so the cell measures the load generator's floor at that load.
    server: Server = "gateway"

    @property
    def calibration(self) -> bool:
        return self.server != "gateway"

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
    # The real nginx with comparison/nginx/block-websocket.conf beside the aiohttp proxy's profile.
    CellKind("sio-polling-nginx", "sio-polling", "sio-default", "nginx-block-websocket",
             "Socket.IO (default client) behind nginx that drops Upgrade: polling fallback"),
    CellKind("sse-nginx", "sse", "sse", "nginx-block-websocket", "SSE + POST behind nginx that drops Upgrade"),
    # auto: the session opens on SSE + POST and moves to WebSocket when the proxy lets it through.
    CellKind("auto-direct", "auto", "auto", "passthrough", "auto, WebSocket allowed: moves to WebSocket"),
    CellKind("auto-block", "auto", "auto", "block-websocket", "auto behind a WebSocket-blocking proxy: stays on SSE"),
    CellKind("auto-drop", "auto", "auto", "drop", "auto, proxy cuts every connection after 2-6 s", fault=True,
             proxy_options=DROP_OPTIONS),
    CellKind("auto-nginx", "auto", "auto", "nginx-block-websocket", "auto behind nginx that drops Upgrade"),
    # Calibration: the same users against a reference server, through the same proxy hop.
    CellKind("sse-reference", "sse", "sse", "passthrough",
             "Calibration: the SSE + POST users against the raw SSE reference server", server="raw-sse"),
    CellKind("sio-websocket-reference", "sio-websocket", "sio-websocket", "passthrough",
             "Calibration: the Socket.IO WebSocket users against Node's socket.io", server="node-socketio"),
    CellKind("sio-polling-reference", "sio-polling", "sio-polling", "passthrough",
             "Calibration: the Socket.IO polling users against Node's socket.io", server="node-socketio"),
)
CALIBRATION_KINDS: Final = tuple(k.key for k in KINDS if k.calibration)
KINDS_BY_KEY: Final = {kind.key: kind for kind in KINDS}
FAMILY_LABELS: Final = {"sse": "SSE + POST", "sio-websocket": "Socket.IO WebSocket", "sio-polling": "Socket.IO polling",
                        "auto": "auto"}


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
    # Seconds at the start of each repeat in which the users only spawn, connect and join
    # (Locust's ``--settle``): nothing is published then, and the measured window starts after it.
    settle: float = 0.0


@dataclass(frozen=True, slots=True)
class Preset:
    name: Literal["quick", "full"]
    users: tuple[int, ...]
    timing: Timing
    kinds: tuple[str, ...] = field(default_factory=lambda: tuple(k.key for k in KINDS))
    fault_users: int | None = None  # fault cells run at this load (default: the lowest)
    ladders: bool = False  # add the load ladders (``ladders()``) after the matrix


PRESETS: Final[dict[str, Preset]] = {
    # A smoke test: most cells once, short. Its numbers say every cell runs, not who wins.
    "quick": Preset("quick", users=(10, 40), timing=Timing(duration=5, warmup=1, repeats=1),
                    kinds=("sio-websocket-direct", "sse-direct", "sio-polling-direct", "sio-polling-block",
                           "sse-block", "sse-drop", "auto-direct", "auto-block", "sse-reference",
                           "sio-websocket-reference")),
    # What docs/report is made with; the runner prints its planned length and records the real one.
    "full": Preset("full", users=(20, 100), timing=Timing(duration=20, warmup=2, repeats=3), ladders=True),
}


@dataclass(frozen=True, slots=True)
class Rung:
    """A cell's place on a load ladder: ``series`` steps up until a step passes the bound."""

    series: str  # e.g. "sse-block rooms of 10"
    step: int  # 1, 2, ...
    bound_ms: float  # p99 delivery above this (or any loss) ends the ladder


@dataclass(frozen=True, slots=True)
class Cell:
    kind: CellKind
    load: Load
    timing: Timing
    direct_via: DirectVia = "passthrough"
    rung: Rung | None = None

    @property
    def id(self) -> str:
        if self.rung is not None:
            rate = f"{self.load.publish_rate * self.load.users:g}".replace(".", "_")
            return f"ladder-{self.kind.key}-r{self.load.room_size}-u{self.load.users}-p{rate}"
        return f"{self.kind.key}-u{self.load.users}"

    @property
    def uses_proxy(self) -> bool:
        return not (self.kind.direct and self.direct_via == "none")

    @property
    def seconds(self) -> float:
        """Load seconds this cell needs (the runner adds its own overhead per repeat)."""
        return self.timing.repeats * (self.timing.settle + self.timing.duration + self.timing.warmup)


# The load ladders: per transport and proxy profile, the load steps up until p99 delivery passes
# BOUND_MS, a delivery is lost, the proxy in front saturates or the generator falls behind.
# Rooms of 10: more users, each publishing twice a second. One room of 1,000: the same 1,000
# users, more publishes a second in total (each one fans out to 999).
#
# Each step measures steady fan-out only: the users spawn (over SPAWN_SECONDS) and join first,
# JOIN_MARGIN more seconds are left for the last joins, and only then does publishing start and
# the measured window (LADDER_TIMING.duration) open; the join storm's own figures are its connects.
#
# Behind a WebSocket-blocking proxy the ladders go through the real nginx (block-websocket.conf):
# the aiohttp proxy used as much CPU as the gateway at the knee, so its ladder measured the proxy
# (``--ladder-kinds sse-block,sio-polling-block`` still runs them). With WebSocket allowed there is
# nothing to block: those ladders connect straight to the gateway, with no proxy in the path.
BOUND_MS: Final = 250.0
LADDER_KINDS: Final = ("sse-nginx", "sio-polling-nginx", "sse-direct", "sio-websocket-direct", "sio-polling-direct")
# Users, at 2 publishes/s each: 800 users is 14,400 deliveries/s, about what one generator core
# can read (its CPU ends the ladder above that).
ROOMS_OF_10: Final = (100, 200, 400, 800)
ONE_ROOM_USERS: Final = 1000
ONE_ROOM_RATES: Final = (1.0, 4.0, 16.0)  # publishes/s across the room
LADDER_TIMING: Final = Timing(duration=6, warmup=0, repeats=1)
SPAWN_SECONDS: Final = 4.0  # a step's users spawn over this long (at least 10 a second)
JOIN_MARGIN: Final = 2.0  # seconds after the last spawn before the measured window opens (join p99: 0.1-0.5 s)


def settle_seconds(users: int, spawn_rate: float, margin: float = JOIN_MARGIN) -> float:
    """How long a step's users take to spawn and join before its measured window opens."""
    return round(users / spawn_rate + margin, 1)


def ladders(kinds: Sequence[str] = LADDER_KINDS, timing: Timing = LADDER_TIMING, payload_bytes: int = 64,
            users: Sequence[int] = ROOMS_OF_10, one_room_rates: Sequence[float] = ONE_ROOM_RATES,
            one_room_users: int = ONE_ROOM_USERS, bound_ms: float = BOUND_MS,
            join_margin: float = JOIN_MARGIN) -> list[Cell]:
    """Every ladder's steps, in order; the runner skips a ladder's steps after the one that ended it."""
    out: list[Cell] = []

    def step(kind: CellKind, load: Load, rung: Rung) -> Cell:
        settled = replace(timing, settle=settle_seconds(load.users, load.spawn_rate, join_margin))
        return Cell(kind, load, settled, "none" if kind.direct else "passthrough", rung)

    for key in kinds:
        kind = KINDS_BY_KEY[key]
        series = f"{key} rooms of 10"
        for number, n in enumerate(users, 1):
            load = Load(n, 10, 2.0, payload_bytes, spawn_rate=max(10.0, n / SPAWN_SECONDS))
            out.append(step(kind, load, Rung(series, number, bound_ms)))
        if one_room_users:
            series = f"{key} one room of {one_room_users}"
            for number, rate in enumerate(one_room_rates, 1):
                load = Load(one_room_users, one_room_users, rate / one_room_users, payload_bytes,
                            spawn_rate=max(10.0, one_room_users / SPAWN_SECONDS))
                out.append(step(kind, load, Rung(series, number, bound_ms)))
    return out


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
    ladder: bool | None = None,
    ladder_options: dict[str, Any] | None = None,
) -> list[Cell]:
    """The cells to run, in order: each load level in turn, every kind at it; fault cells once;
    then the load ladders (``ladder``, default: the preset's)."""
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
    if ladder if ladder is not None else preset.ladders:
        out += ladders(payload_bytes=payload_bytes, **(ladder_options or {}))
    return out
