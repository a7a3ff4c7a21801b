"""``python -m comparison.bench [--quick] [--servers ...] [--n ...] [--out FILE]``: see ``--help``."""

from __future__ import annotations

import argparse
import datetime
import signal
import sys
from pathlib import Path
from types import FrameType

from . import report
from .runner import Config, run
from .servers import DEFAULT_SERVERS, ROOT, SERVERS, kill_all

PROFILES = {"c100k": "100,000 connections on one process (comparison/bench/c100k.py; its own --help)"}


def _list(kind: type, value: str) -> list:  # type: ignore[type-arg]
    try:
        return [kind(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m comparison.bench",
        description="Room fan-out benchmark: the gateway's SSE + POST and Socket.IO paths against "
                    "python-socketio and Node socket.io, one load generator, server and generator "
                    "pinned to their own cores.",
    )
    p.add_argument("--servers", type=lambda v: _list(str, v), default=list(DEFAULT_SERVERS),
                   help=f"comma-separated, from {', '.join(SERVERS)} (default: {','.join(DEFAULT_SERVERS)})")
    p.add_argument("--n", type=lambda v: _list(int, v), default=None,
                   help="subscriber counts (default 100,1000,5000; --quick: 50)")
    p.add_argument("--deliveries", type=lambda v: _list(float, v), default=None,
                   help="open-loop rates as deliveries/s, i.e. publishes/s x N (default 5000,20000,50000)")
    p.add_argument("--phase-seconds", type=float, default=None, help="each open-loop phase (default 6; --quick 2)")
    p.add_argument("--saturation-seconds", type=float, default=None, help="the closed loop (default 8; --quick 2)")
    p.add_argument("--min-messages", type=int, default=10, help="publishes per open-loop phase, at least (10)")
    p.add_argument("--windows", type=lambda v: _list(int, v), default=None,
                   help="one closed loop per window of unacknowledged publishes (default 1,4,16; --quick: 4)")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of every (server, N), the servers interleaved; the report gives medians (1)")
    p.add_argument("--baseline", default="node-socketio-ws",
                   help="the report sets every other server's medians side by side with this one's "
                        "(default node-socketio-ws)")
    p.add_argument("--max-outstanding", type=int, default=10_000,
                   help="closed loop: undelivered deliveries before the publisher waits (10000)")
    p.add_argument("--connect-concurrency", type=int, default=100, help="subscriber handshakes at once (100)")
    p.add_argument("--drain-timeout", type=float, default=None, help="after each phase (default 10; --quick 5)")
    p.add_argument("--server-cpu", type=int, default=0, help="core for the servers (0)")
    p.add_argument("--generator-cpu", type=int, default=1, help="core for the load generator (1)")
    p.add_argument("--uvicorn-ws", default=None,
                   help="uvicorn --ws for the Python servers (default: uvicorn's own, websockets-sansio)")
    p.add_argument("--quiet-wait", type=float, default=None,
                   help="before each run, wait up to this many seconds for the rest of the machine to go "
                        "idle (default 20; --quick 0)")
    p.add_argument("--retry-noisy", type=int, default=None,
                   help="run again, up to this many times, a run that other load on the machine disturbed, "
                        "keeping the quietest (default 0)")
    p.add_argument("--sink", choices=("c", "python"), default="c",
                   help="how the generator reads sse and sio-ws subscribers: c (an epoll loop in C, kernel "
                        "receive stamps; the Python path if no C compiler) or python (asyncio protocols)")
    p.add_argument("--latency-sample", type=int, default=8,
                   help="C sink: latency from every k-th subscriber in connect order, read as soon as it is "
                        "readable; the others are read every 35 ms and only counted (deliveries, losses); "
                        "1: all (default 8)")
    p.add_argument("--phases", default="open,closed", help="open, closed, both, or none (idle memory only)")
    p.add_argument("--profile", choices=PROFILES, help="; ".join(f"{k}: {v}" for k, v in PROFILES.items()))
    p.add_argument("--quick", action="store_true", help="CI smoke: N=50, about 2 s per phase")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON results (default results/bench/bench-<timestamp>.json)")
    return p


def config_from(args: argparse.Namespace) -> Config:
    unknown = [s for s in args.servers if s not in SERVERS]
    if unknown:
        raise SystemExit(f"unknown server(s) {', '.join(unknown)}; choose from {', '.join(SERVERS)}")
    if args.baseline not in SERVERS:
        raise SystemExit(f"unknown --baseline {args.baseline}; choose from {', '.join(SERVERS)}")
    if args.repeat < 1 or args.latency_sample < 1 or any(w < 1 for w in args.windows or []):
        raise SystemExit("--repeat, --latency-sample and every --windows value must be at least 1")
    quick = args.quick
    phases = {p.strip() for p in args.phases.split(",")}
    return Config(
        servers=args.servers,
        ns=args.n or ([50] if quick else [100, 1000, 5000]),
        deliveries_per_s=args.deliveries or [5_000.0, 20_000.0, 50_000.0],
        phase_seconds=args.phase_seconds or (2.0 if quick else 6.0),
        saturation_seconds=args.saturation_seconds or (2.0 if quick else 8.0),
        min_messages=min(args.min_messages, 5) if quick else args.min_messages,
        windows=args.windows or ([4] if quick else [1, 4, 16]),
        max_outstanding=args.max_outstanding,
        connect_concurrency=args.connect_concurrency,
        drain_timeout=args.drain_timeout or (5.0 if quick else 10.0),
        settle_seconds=0.3 if quick else 1.0,
        server_cpu=args.server_cpu,
        generator_cpu=args.generator_cpu,
        uvicorn_ws=args.uvicorn_ws,
        quiet_wait=args.quiet_wait if args.quiet_wait is not None else (0.0 if quick else 20.0),
        repeat=args.repeat,
        baseline=args.baseline,
        retry_noisy=args.retry_noisy or 0,
        open_loop="open" in phases,
        closed_loop="closed" in phases,
        sink=args.sink,
        latency_sample=args.latency_sample,
    )


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    profile = argparse.ArgumentParser(add_help=False)
    profile.add_argument("--profile", choices=PROFILES)
    chosen, rest = profile.parse_known_args(argv)
    if chosen.profile == "c100k":  # a profile has its own options: the rest of argv is its
        from . import c100k

        return c100k.main(rest)
    args = parser().parse_args(argv)
    config = config_from(args)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / "results" / "bench" / f"bench-{stamp}.json"
    signal.signal(signal.SIGTERM, _terminated)
    try:
        doc = run(config, argv, out)
    finally:
        kill_all()  # whatever is still running after an error, Ctrl-C or SIGTERM
    print(report.markdown(doc))
    print(f"results: {out}", file=sys.stderr)
    return 0 if all(r.get("status") in ("ok", "skipped") for r in doc["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
