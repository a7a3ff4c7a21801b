"""Short, bounded headless Locust runs of loadtests/ against a real gateway and the proxy.

Every run is distributed (``--processes 2``: a master and two workers), as the comparison runs
Locust, so the numbers checked here are the ones aggregated on the master.
"""

from __future__ import annotations

import asyncio
import csv
import pathlib
import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from comparison.children import free_port
from comparison.proxy import ProxyProcess, read_stats

from .servers import ROOT, NginxProcess, ThreadedGateway, timeout

pytestmark = pytest.mark.serial  # a load generator or throughput figures: runs alone

NAMES = {"sse", "sio-websocket", "sio-default", "sio-polling", "auto"}


@pytest.fixture(scope="module")
def gateway():
    gw = ThreadedGateway(ping_interval=1.0, ping_timeout=1.0).start()
    yield gw
    gw.stop()


async def locust(tmp_path: pathlib.Path, host: str, *extra: str, users: int = 8, seconds: int = 4) -> dict:
    prefix = tmp_path / "run"
    port = free_port()  # the master's own: another Locust on the machine may hold the default
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "locust", "-f", "loadtests", "--headless", "-u", str(users), "-r", str(users),
        "-t", f"{seconds}s", "--stop-timeout", "5", "--host", host, "--csv", str(prefix), "--only-summary",
        "--room-size", "4", "--publish-rate", "5", "--exit-code-on-error", "0", "--processes", "2",
        "--master-bind-port", str(port), "--master-port", str(port), *extra,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout(seconds + 40))
    assert proc.returncode == 0, out.decode()[-3000:]
    stats = {(r["Type"], r["Name"]): r for r in _csv_rows(f"{prefix}_stats.csv") if r["Type"]}
    failures = [(r["Method"], r["Name"], r["Error"], int(r["Occurrences"])) for r in _csv_rows(f"{prefix}_failures.csv")]
    return {"stats": stats, "failures": failures, "output": out.decode()}


def failure_count(result: dict, kind: str, name: str) -> tuple[int, list]:
    """A stats row's failures, and the failures' messages (what an assertion should show)."""
    return count(result, kind, name, "Failure Count"), [f for f in result["failures"] if f[:2] == (kind, name)]


def _csv_rows(path: str) -> list[dict[str, str]]:
    """A CSV file Locust wrote, once it has exited (small: read in one go)."""
    with open(path) as f:
        return list(csv.DictReader(f))


def count(result: dict, kind: str, name: str, field: str = "Request Count") -> int:
    row = result["stats"].get((kind, name))
    return int(row[field]) if row else 0


def delivery_failures(result: dict) -> list:
    return [f for f in result["failures"] if f[0] == "delivery"]


async def test_passthrough_every_transport_delivers_without_loss(gateway, tmp_path):
    with ProxyProcess(gateway.url, "passthrough") as proxy:
        result = await locust(tmp_path, gateway.url, "--target", "proxy", "--proxy-url", proxy.url)
        stats = read_stats(proxy.url)
    for name in NAMES:
        for kind in ("connect", "publish", "deliver"):
            assert count(result, kind, name) > 0, (kind, name, result["output"][-2000:])
            assert failure_count(result, kind, name)[0] == 0, failure_count(result, kind, name)
        assert float(result["stats"][("deliver", name)]["Median Response Time"]) > 0  # never a zero
    assert count(result, "upgrade", "sio-default: websocket") > 0
    # auto opened on SSE and moved every session to WebSocket, losing and repeating nothing.
    assert count(result, "upgrade", "auto: websocket") == count(result, "connect", "auto") > 0
    assert delivery_failures(result) == []  # zero lost, duplicated, out of order, gaps
    assert stats.classes["sse-post"].requests > 0
    # The generator measures its own lag beside what it measures of the gateway.
    assert count(result, "generator", "send lag") > 0 and count(result, "generator", "receive-to-record") > 0


async def test_block_websocket_outcomes(gateway, tmp_path):
    with ProxyProcess(gateway.url, "block-websocket") as proxy:
        result = await locust(tmp_path, gateway.url, "--target", "proxy", "--proxy-url", proxy.url)
        stats = read_stats(proxy.url)
    assert count(result, "connect", "sio-websocket") == count(result, "connect", "sio-websocket", "Failure Count") > 0
    assert count(result, "upgrade", "sio-default: refused") > 0  # stayed on polling
    assert count(result, "upgrade", "sio-default: websocket") == 0
    assert count(result, "upgrade", "auto: refused") > 0  # stayed on SSE + POST
    assert count(result, "upgrade", "auto: websocket") == 0
    for name in ("sse", "sio-default", "sio-polling", "auto"):
        assert count(result, "deliver", name) > 0 and count(result, "connect", name, "Failure Count") == 0
    assert stats.classes["socketio-websocket"].upgrades_refused > 0
    assert delivery_failures(result) == []


@pytest.mark.skipif(not pathlib.Path("/usr/sbin/nginx").exists(), reason="needs nginx at /usr/sbin/nginx")
async def test_real_nginx_block_websocket_outcomes(gateway, tmp_path):
    """The comparison's nginx cells: comparison/nginx/block-websocket.conf drops Upgrade, so
    Socket.IO's default client stays on polling, auto stays on SSE + POST, and what streams over
    plain HTTP arrives every message, once and in order."""
    nginx = NginxProcess(gateway.port, tmp_path / "nginx")
    try:
        result = await locust(tmp_path, gateway.url, "--target", "proxy", "--proxy-url", nginx.url,
                              "--transport-mix", "sse=1,sio-default=1,auto=1", users=6)
    finally:
        nginx.stop()
    assert count(result, "upgrade", "sio-default: refused") > 0  # the upgrade never reached the gateway
    assert count(result, "upgrade", "sio-default: websocket") == 0
    assert count(result, "upgrade", "auto: websocket") == 0
    for name in ("sse", "sio-default", "auto"):
        for kind in ("connect", "publish", "deliver"):
            assert count(result, kind, name) > 0, (kind, name, result["output"][-2000:])
            assert failure_count(result, kind, name)[0] == 0, failure_count(result, kind, name)
    assert delivery_failures(result) == []  # zero lost, duplicated, out of order, gaps


async def test_drop_profile_recovers_without_loss(gateway, tmp_path):
    with ProxyProcess(gateway.url, "drop", "--drop-min", "1", "--drop-max", "2", "--seed", "7") as proxy:
        result = await locust(tmp_path, gateway.url, "--target", "proxy", "--proxy-url", proxy.url,
                              "--transport-mix", "sse=1,sio-polling=1,auto=1", users=6, seconds=6)
        stats = read_stats(proxy.url)
    assert sum(c.cuts_drop for c in stats.classes.values()) > 0  # connections really were cut
    for name in ("sse", "sio-polling", "auto"):
        assert count(result, "deliver", name) > 0, name
    lost_or_doubled = [f for f in delivery_failures(result) if f[1] in ("lost", "duplicate", "out-of-order")]
    assert lost_or_doubled == [], result["failures"]


async def test_idle_timeout_profile_cuts_quiet_connections_and_loses_nothing(gateway, tmp_path):
    # A proxy that cuts a connection quiet for 0.4 s, and traffic with gaps longer than that (a
    # message every ~1.2 s per room, pings every second): streams and polls are cut between events.
    with ProxyProcess(gateway.url, "idle-timeout", "--idle-timeout", "0.4") as proxy:
        result = await locust(tmp_path, gateway.url, "--target", "proxy", "--proxy-url", proxy.url,
                              "--transport-mix", "sse=1,sio-websocket=1,sio-polling=1,auto=1",
                              "--publish-rate", "0.2", users=8, seconds=6)
        stats = read_stats(proxy.url)
    assert sum(c.cuts_idle for c in stats.classes.values()) > 0  # connections really were cut
    assert sum(count(result, "deliver", name) for name in ("sse", "sio-websocket", "sio-polling", "auto")) > 0
    lost_or_doubled = [f for f in delivery_failures(result) if f[1] in ("lost", "duplicate", "out-of-order")]
    assert lost_or_doubled == [], result["failures"]


async def volatile_drops(url: str) -> float:
    """The gateway's ``gateway_dropped_total{reason="volatile_not_ready"}``, from /metrics."""
    async with httpx.AsyncClient(base_url=url) as http:
        text = (await http.get("/metrics")).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "gateway_dropped_total" and sample.labels.get("reason") == "volatile_not_ready")


async def test_volatile_updates_beside_logged_ones(gateway, tmp_path):
    """``--volatile-rate``: every user also sends volatile updates on its connection. They are
    counted apart (the gateway may drop them), and the logged messages beside them still arrive
    every one, once and in order."""
    dropped_before = await volatile_drops(gateway.url)  # presence announcements are volatile too
    with ProxyProcess(gateway.url, "passthrough") as proxy:
        result = await locust(tmp_path, gateway.url, "--target", "proxy", "--proxy-url", proxy.url,
                              "--volatile-rate", "20")
    dropped = await volatile_drops(gateway.url) - dropped_before
    sent, received = count(result, "volatile", "sent"), count(result, "volatile", "received")
    unsent = failure_count(result, "volatile", "sent")
    print(f"volatile: {sent} sent ({unsent[0]} not sent: {unsent[1][:3]}), {received} received, "
          f"{dropped:.0f} dropped by the gateway (volatile_not_ready)")
    for name in NAMES:
        assert count(result, "deliver", f"{name}: volatile") > 0, (name, result["output"][-2000:])
        assert float(result["stats"][("deliver", f"{name}: volatile")]["Median Response Time"]) > 0
        assert count(result, "deliver", name) > 0 and failure_count(result, "publish", name)[0] == 0, name
    # Rooms of 4: each update reaches at most the 3 others; logged ones are at 5 a second, volatile at 20.
    assert 0 < received <= 3 * sent and sent > 2 * sum(count(result, "publish", name) for name in NAMES)
    assert count(result, "volatile", "received", "Failure Count") == 0
    assert delivery_failures(result) == []  # no logged message lost, duplicated, out of order, or in a gap


@pytest.mark.parametrize("sse_mode", ["stream", "auto"])
async def test_buffering_proxy_shows_what_breaks_and_the_fallback(gateway, tmp_path, sse_mode):
    with ProxyProcess(gateway.url, "buffering", "--buffer-kib", "64") as proxy:
        result = await locust(tmp_path, gateway.url, "--target", "proxy", "--proxy-url", proxy.url,
                              "--transport-mix", "sse=2,sio-polling=2", "--sse-mode", sse_mode,
                              users=4, seconds=6)
    # Socket.IO polling ends every response, so a buffering proxy flushes it; an SSE
    # stream never ends, so its small events sit in the buffer -- unless the client
    # notices and switches to poll mode, where the gateway ends each response.
    assert count(result, "deliver", "sio-polling") > 0
    if sse_mode == "stream":
        assert count(result, "deliver", "sse") == 0
    else:
        assert count(result, "deliver", "sse") > 0
        assert [f for f in delivery_failures(result) if f[1] in ("lost", "duplicate", "out-of-order")] == []
