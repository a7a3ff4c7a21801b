"""The blocking client under gevent's monkey-patching (how Locust runs it), in a subprocess."""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys

import pytest

from .servers import ThreadedGateway, timeout

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("transport", ["sse", "websocket", "polling"])
async def test_blocking_client_resumes_under_gevent(server: ThreadedGateway, transport: str):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.gevent_check", server.url, transport,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout(60))
    assert proc.returncode == 0, err.decode()[-2000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["ok"], result
    assert result["got"] == list(range(20))  # every event once, in order, across the drop
    assert result["acked"] == 20 and result["reconnects"] >= 1 and result["sum"] == 3
    if transport != "sse":
        assert result["transport"] == transport
