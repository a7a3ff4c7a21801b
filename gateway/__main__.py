"""``python -m gateway``: serve ``gateway.main:app`` with uvicorn tuned for a real-time gateway.

Same as ``uvicorn gateway.main:app`` but with uvloop and httptools, and WebSocket
permessage-deflate off unless ``GATEWAY_WEBSOCKET_COMPRESSION=true`` (uvicorn turns it on
by default; it costs CPU and memory per connection, and socket.io ships it off).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging

import uvicorn

from gateway.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    settings = Settings()
    if not _loopback(args.host):
        logging.getLogger("gateway").warning(
            "serving the demo chat on %s, reachable from other machines: for your own application "
            "use create_app(declare=...) without demo=True", args.host,
        )
    uvicorn.run(
        "gateway.main:app",
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws_per_message_deflate=settings.websocket_compression,
        log_level=args.log_level,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace) + 1),
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    main()
