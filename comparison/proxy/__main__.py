"""``python -m comparison.proxy --profile PROFILE --listen 127.0.0.1:8080 --upstream http://127.0.0.1:8000``.

Prints one line, ``listening on http://HOST:PORT``, once the socket accepts connections
(``--listen 127.0.0.1:0`` picks a free port: read it from that line), then serves until
SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from .profiles import PROFILES, Profile, ProfileOptions, make_profile
from .server import Proxy


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m comparison.proxy",
        description="A reverse proxy in front of the gateway that behaves like the proxies clients meet.",
    )
    p.add_argument("--profile", default="passthrough",
                   help=f"one of {', '.join(PROFILES)}, or several joined by '+' (default: passthrough)")
    p.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 8080), metavar="HOST:PORT",
                   help="where to listen (default 127.0.0.1:8080; port 0 picks one)")
    p.add_argument("--upstream", default="http://127.0.0.1:8000", help="the gateway's base URL")
    p.add_argument("--buffer-kib", type=int, default=64, help="buffering: bytes held per response, KiB (64)")
    p.add_argument("--idle-timeout", type=float, default=60.0,
                   help="idle-timeout: seconds without traffic before a connection is cut (60)")
    p.add_argument("--drop-min", type=float, default=5.0, help="drop: shortest connection lifetime, s (5)")
    p.add_argument("--drop-max", type=float, default=30.0, help="drop: longest connection lifetime, s (30)")
    p.add_argument("--seed", type=int, default=None, help="drop: random seed (default: unseeded)")
    p.add_argument("--log-level", default="WARNING")
    return p


async def serve(profile: Profile, upstream: str, host: str, port: int) -> None:
    proxy = Proxy(profile, upstream, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with proxy:
        print(f"listening on {proxy.url} (profile {profile.name}, upstream {upstream})", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    options = ProfileOptions(buffer_kib=args.buffer_kib, idle_timeout=args.idle_timeout,
                             drop_min=args.drop_min, drop_max=args.drop_max, seed=args.seed)
    try:
        profile = make_profile(args.profile, options)
    except ValueError as exc:
        parser().error(str(exc))
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    host, port = args.listen
    try:
        import uvloop  # installed with uvicorn[standard]; relaying is a little cheaper on it
    except ImportError:
        asyncio.run(serve(profile, args.upstream, host, port))
    else:
        uvloop.run(serve(profile, args.upstream, host, port))


if __name__ == "__main__":
    main()
