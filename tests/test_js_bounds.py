"""rtgateway.js under Node against a peer that stopped answering: a loopback server that accepts
and never says a word, and a real gateway SIGSTOPped mid-session. Every promise of the client
(ready, join, leave, publish, emit, close) settles within its bound with a clear error code, a
call's AbortSignal is honoured at once, and a closed client refuses further calls."""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import signal
from typing import Any

import pytest

from .servers import SubprocessGateway, node_outcome, timeout
from .test_js_client import ROOT

SCRIPT = pathlib.Path(__file__).parent / "js" / "bounds.mjs"
TRANSPORTS = ["sse", "socketio", "socketio-polling"]
# What a loaded machine adds to a timer firing and a promise chain settling, in ms.
SLACK = 1500 * timeout(1)

pytestmark = pytest.mark.node
if shutil.which("node") is None or not (ROOT / "node_modules" / "socket.io-client").exists():
    pytestmark = [pytest.mark.node, pytest.mark.skip(reason="needs node and `npm ci` (make setup does both)")]


def spawn(client: pathlib.Path, scenario: str, url: str, transport: str) -> Any:
    return asyncio.create_subprocess_exec(
        "node", str(SCRIPT), scenario, url, transport, cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "RTGW_CLIENT": str(client)},
    )


def assert_bounded(result: dict[str, Any]) -> None:
    calls, bounds = result["calls"], result["bounds"]
    call_bound, close_bound = bounds["callTimeout"] + SLACK, bounds["closeTimeout"] + SLACK
    for name in ("join", "publish", "emit", "leave"):
        assert calls[name]["code"] == "timeout", (name, calls)
        assert calls[name]["ms"] <= call_bound, (name, calls)
    assert calls["shortTimeout"]["code"] == "timeout" and calls["shortTimeout"]["ms"] <= 300 + SLACK, calls
    assert calls["aborted"]["code"] == "aborted" and calls["aborted"]["ms"] <= 200 + SLACK, calls
    assert calls["close"]["code"] == "ok" and calls["close"]["ms"] <= close_bound, calls
    assert calls["afterClose"]["code"] == "client_closed", calls
    assert result["state"] == "closed"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_js_calls_settle_against_a_silent_peer(client_module: pathlib.Path, silent_peer: str, transport: str) -> None:
    """Nothing ever answers: `ready` and every call reject with `timeout` within callTimeout."""
    result = await node_outcome(await spawn(client_module, "silent", silent_peer, transport), 30)
    assert result["calls"]["ready"]["code"] == "timeout", result
    assert result["calls"]["ready"]["ms"] <= result["bounds"]["callTimeout"] + SLACK, result
    assert_bounded(result)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_js_calls_settle_against_a_stopped_gateway(client_module: pathlib.Path, transport: str) -> None:
    """A session open and joined, then the gateway freezes (SIGSTOP): its sockets stay open
    but nothing is read or written; every call still settles within its bound."""
    gateway = SubprocessGateway().start()
    assert gateway.proc is not None
    node = await spawn(client_module, "stopped", gateway.url, transport)
    try:
        assert node.stdout is not None and node.stdin is not None
        line = await asyncio.wait_for(node.stdout.readline(), timeout(20))
        assert line.strip() == b'{"ready":true}', line + (await node.stderr.read() if node.stderr else b"")
        gateway.proc.send_signal(signal.SIGSTOP)
        node.stdin.write(b"stopped\n")
        await node.stdin.drain()
        result = await node_outcome(node, 30)
    finally:
        gateway.proc.send_signal(signal.SIGCONT)
        gateway.kill()
        if node.returncode is None:
            node.kill()
            await node.wait()
    assert_bounded(result)
