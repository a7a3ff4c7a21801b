"""Which file answers a browser: the demo page at ``/``, the JavaScript client under ``/client/``.

``rtgateway.js`` and the demo's files live in ``gateway/static``. The official
``socket.io-client`` is not copied into the repository: ``npm ci`` installs it in
``node_modules`` and it is served from there. Without it, its URL answers a 404 problem
and the demo page offers SSE + POST only, saying how to get the rest.
(``app.py`` turns these paths into responses; this module knows no web framework.)
"""

from __future__ import annotations

from pathlib import Path

from gateway.wire.errors import NotFound

STATIC = Path(__file__).resolve().parent / "static"
INDEX = STATIC / "index.html"
SOCKETIO_DIST = Path(__file__).resolve().parents[1] / "node_modules" / "socket.io-client" / "dist"
SOCKETIO_FILES = frozenset({"socket.io.esm.min.js", "socket.io.esm.min.js.map"})
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".map": "application/json"}
# Small files that change with the code: revalidate rather than run a stale copy.
HEADERS = {"Cache-Control": "no-cache"}


def client_file(name: str) -> tuple[Path, str]:
    """The file and media type for ``/client/{name}``; ``NotFound`` (a 404 problem) otherwise."""
    if name in SOCKETIO_FILES:
        path = SOCKETIO_DIST / name
        if not path.is_file():
            raise NotFound(
                "socket.io-client is not installed: run `npm ci` (or `make serve`, which does it)",
                file=name,
            )
        return path, MEDIA_TYPES[path.suffix]
    if len(name) > 128:  # longer than any file here, and than some file systems take
        raise NotFound("no client file by that name", file=name[:64])
    path = STATIC / name
    # ``name`` is a single path segment; the parent check keeps ".." out all the same.
    if path.parent != STATIC or not path.is_file() or path.suffix not in MEDIA_TYPES:
        raise NotFound(f"no client file {name!r}", file=name)
    return path, MEDIA_TYPES[path.suffix]
