"""``import rtclient`` loads no server library; the python-engineio internals rtclient uses exist."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .servers import ROOT

# What the clients may load besides the standard library: httpx and what it imports (its
# command line's click, rich and pygments among them, when installed), orjson, and the wire
# format of the gateway (gateway, gateway.wire, gateway.wire.*: nothing of the server).
ALLOWED = {
    "rtclient", "gateway", "orjson",
    "httpx", "httpcore", "h11", "h2", "hpack", "hyperframe", "anyio", "sniffio", "idna", "certifi",
    "brotli", "_brotli", "brotlicffi", "zstandard", "socksio",
    "click", "rich", "pygments", "markdown_it", "mdurl", "typing_extensions", "exceptiongroup",
}
SERVER = {"fastapi", "starlette", "uvicorn", "sse_starlette", "socketio", "engineio", "redis",
          "prometheus_client", "pydantic", "pydantic_settings", "jwt"}

PROBE = """
import json, sys, time
start = time.perf_counter()
import rtclient, rtclient.blocking
took = time.perf_counter() - start
print(json.dumps({"modules": sorted(sys.modules), "took": took, "stdlib": sorted(sys.stdlib_module_names)}))
"""


def test_import_rtclient_loads_no_server_library():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)
    probe = json.loads(out.stdout)
    modules: list[str] = probe["modules"]
    top = {m.split(".")[0] for m in modules} - set(probe["stdlib"])
    # The interpreter's own (``__main__``, editable-install finders, setuptools' distutils shim).
    top = {m for m in top if not m.startswith("__") and m != "_distutils_hack"}
    print(f"\nimport rtclient, rtclient.blocking: {probe['took']:.3f} s, {len(modules)} modules")
    assert not top & SERVER, f"server libraries loaded: {sorted(top & SERVER)}"
    assert top <= ALLOWED, f"unexpected third-party modules: {sorted(top - ALLOWED)}"
    gateway = {m for m in modules if m == "gateway" or m.startswith("gateway.")}
    assert gateway and all(m in ("gateway", "gateway.wire") or m.startswith("gateway.wire.") for m in gateway), gateway


@pytest.mark.parametrize("client", ["AsyncClient", "Client"])
def test_the_engineio_internals_rtclient_uses_exist(client: str):
    """rtclient/_engineio_fence.py's list: if python-engineio renames one, this fails."""
    import socketio
    from engineio.payload import Payload

    from rtclient import _engineio_fence as fence

    eio = getattr(socketio, client)(reconnection=False).eio
    for name in (*fence.ABANDON_ATTRIBUTES, *fence.TRIGGER_ATTRIBUTES):
        assert hasattr(eio, name), f"python-engineio's {client} has no {name!r} any more"
    assert callable(eio._trigger_event) and isinstance(eio.handlers, dict)
    assert fence.event_trigger(eio) is not None
    assert isinstance(Payload.max_decode_packets, int)
    fence.allow_long_payloads()
    assert Payload.max_decode_packets >= fence.MAX_DECODE_PACKETS
