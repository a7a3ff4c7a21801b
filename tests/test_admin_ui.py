"""The operator view (/admin/ui, GET /admin/api/overview) over real gateways and clients.

Its credential (GATEWAY_ADMIN_TOKEN as a bearer token), that its figures are those of
/metrics, that it sees SSE and Socket.IO sessions, rooms and deliveries as they happen,
that on Redis it is cluster-wide and a dead node leaves it after its snapshot's TTL, the
page in Chromium (with a screenshot), and the Grafana dashboard against /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.admin import SNAPSHOT_LIFETIME
from gateway.problems import MEDIA_TYPE as PROBLEM
from rtclient import SocketIOClient, SseClient

from .servers import REDIS_URL, SubprocessGateway, ThreadedGateway, timeout

ROOT = pathlib.Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = pathlib.Path("/usr/bin/chromium")
ADMIN = "operator-view-admin-token-0123456789"
PERIOD = 0.2  # seconds between snapshots in these tests (the default is 1)
BEARER = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def node() -> Iterator[ThreadedGateway]:
    """A gateway of its own (memory broker): the view's counts are exact."""
    gw = ThreadedGateway(ping_interval=1.0, ping_timeout=1.0, admin_token=ADMIN, admin_snapshot_period=PERIOD).start()
    yield gw
    gw.stop()


@pytest.fixture
async def closing() -> AsyncIterator[list[Any]]:
    """Clients to close after the test, whatever happens."""
    made: list[Any] = []
    yield made
    for client in made:
        await asyncio.wait_for(client.close(), timeout(5))


async def overview_until(
    url: str, check: Callable[[dict[str, Any]], bool], what: str, wait: float = 10
) -> dict[str, Any]:
    """Poll the overview (server state: there is no event to await) until ``check`` holds."""
    deadline = time.monotonic() + timeout(wait)
    async with httpx.AsyncClient(base_url=url, headers=BEARER) as http:
        while True:
            response = await http.get("/admin/api/overview")
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            if check(body):
                return body
            assert time.monotonic() < deadline, f"{what}: {body}"
            await asyncio.sleep(0.05)


def room_size(body: dict[str, Any], namespace: str, room: str) -> int | None:
    sizes = [r["size"] for r in body["rooms"]["top"] if (r["namespace"], r["room"]) == (namespace, room)]
    return sizes[0] if sizes else None


def nonzero(counts: dict[str, float]) -> dict[str, float]:
    return {key: value for key, value in counts.items() if value}


def live(body: dict[str, Any], namespace: str, transport: str) -> float:
    return float(body["byNamespace"].get(namespace, {}).get(transport, 0))


# -- the credential --------------------------------------------------------------


async def test_the_api_refuses_without_and_with_a_wrong_token(node: ThreadedGateway) -> None:
    async with httpx.AsyncClient(base_url=node.url) as http:
        refused: list[tuple[dict[str, Any], str]] = [
            ({}, "unauthorized"),
            ({"Authorization": f"Basic {ADMIN}"}, "unauthorized"),
            ({"Authorization": "Bearer not-the-admin-token"}, "invalid_token"),
            ({"Authorization": f"Bearer {ADMIN}x"}, "invalid_token"),
            ({"Authorization": "Bearer \u00e9t\u00e9".encode()}, "invalid_token"),  # not ASCII
        ]
        for headers, code in refused:
            response = await http.get("/admin/api/overview", headers=headers)
            assert response.status_code == 401, (headers, response.text)
            assert response.headers["content-type"] == PROBLEM
            assert response.json()["code"] == code
            assert ADMIN not in response.text
        ok = await http.get("/admin/api/overview", headers=BEARER)
        assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"
        assert ok.json()["node"] == node.gateway.broker.node and ok.json()["partial"] is False
        page = await http.get("/admin/ui")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert 'src="/client/admin.js"' in page.text
    # The refusals are counted like any, and the view shows that very count.
    body = await overview_until(node.url, lambda b: b["counters"]["rejected"].get("invalid_token") == 3,
                                "the refusals in the overview")
    assert body["counters"]["rejected"]["unauthorized"] == 2


async def test_the_view_is_off_without_an_admin_token(server: ThreadedGateway) -> None:
    assert not server.settings.admin_token.get_secret_value()
    async with httpx.AsyncClient(base_url=server.url) as http:
        for path, headers in [("/admin/api/overview", BEARER), ("/admin/api/overview", {}), ("/admin/ui", {})]:
            response = await http.get(path, headers=headers)
            assert response.status_code == 403, response.text
            assert response.headers["content-type"] == PROBLEM
            problem = response.json()
            assert problem["code"] == "forbidden" and "GATEWAY_ADMIN_TOKEN" in problem["detail"]
    # ... and no node publishes a snapshot: the broker holds none.
    assert server.run(server.gateway.broker.snapshots()) == []


# -- what it shows -----------------------------------------------------------------


async def test_the_overview_shows_sessions_rooms_and_deliveries(node: ThreadedGateway, closing: list[Any]) -> None:
    room = f"ops-{uuid.uuid4().hex[:8]}"
    sse, sio, other = SseClient(node.url, "/chat"), SocketIOClient(node.url, "/chat"), SocketIOClient(node.url, "/")
    closing += [sse, sio, other]
    got = asyncio.Event()
    received: list[Any] = []

    def on_event(event: Any) -> None:
        received.append(event)
        got.set()

    sio.on("event", on_event)
    for client in (sse, sio, other):
        await client.connect()
    await sse.join(room)
    await sio.join(room)

    body = await overview_until(
        node.url,
        lambda b: room_size(b, "/chat", room) == 2 and live(b, "/", "socketio") == 1,
        "two /chat members and one / session",
    )
    assert live(body, "/chat", "sse") == 1 and live(body, "/chat", "socketio") == 1
    assert nonzero(body["byTransport"]) == {"sse": 1, "socketio": 2}
    assert body["sessions"]["connected"] == 3
    [only] = body["nodes"]
    assert only["node"] == body["node"] and only["broker"] == "memory" and only["ready"] is True
    assert only["sessions"] == 3 and only["rooms"] == 1
    # Personal rooms and the namespace-wide one are sessions, not rooms.
    assert [r["room"] for r in body["rooms"]["top"]] == [room]

    # SSE publishes steadily; Socket.IO receives: deliveries and their rate appear.
    async with publishing(sse, room) as acked:
        busy = await overview_until(node.url, lambda b: b["rates"]["delivered"] > 0 and b["rates"]["published"] > 0,
                                    "a delivery rate")
    sent = acked[0]
    assert busy["nodes"][0]["deliveredPerSecond"] > 0
    await asyncio.wait_for(_until(lambda: len(received) >= sent, got), timeout(5))
    # Once traffic settles, the view's totals are /metrics' own (a snapshot is at most a period late).
    async with httpx.AsyncClient(base_url=node.url) as http:
        deadline = time.monotonic() + timeout(10)
        while True:
            metrics = (await http.get("/metrics")).text
            view = (await http.get("/admin/api/overview", headers=BEARER)).json()
            delivered = _sample(metrics, "gateway_delivered_total", transport="socketio")
            published = _sample(metrics, "gateway_published_total")
            if (view["counters"]["delivered"].get("socketio"), view["counters"]["events"]["published"]) == (
                delivered, published
            ):
                break
            assert time.monotonic() < deadline, (delivered, published, view["counters"])
            await asyncio.sleep(0.05)
    assert delivered >= sent and published >= sent  # SSE's publishes, and whatever else the room got
    await overview_until(node.url, lambda b: b["rates"]["published"] == 0, "the rate back to 0")

    await sio.leave(room)
    await overview_until(node.url, lambda b: room_size(b, "/chat", room) == 1, "the room one smaller")


@contextlib.asynccontextmanager
async def publishing(client: Any, room: str) -> AsyncIterator[list[int]]:
    """Publish to ``room`` 25 times a second (under a session's publish rate) while inside;
    yields a one-item list: how many publishes were acknowledged (final once it exits)."""
    stop = asyncio.Event()
    acked = [0]

    async def run() -> None:
        while not stop.is_set():
            await client.publish(room, {"n": acked[0]})
            acked[0] += 1
            await asyncio.sleep(0.04)  # pacing a load, not waiting for an event

    task = asyncio.create_task(run())
    try:
        yield acked
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout(5))


async def _until(check: Callable[[], bool], changed: asyncio.Event) -> None:
    while not check():
        changed.clear()
        await changed.wait()


def _sample(exposition: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no {name} {labels} in /metrics")


# -- cluster-wide on Redis ------------------------------------------------------------


async def test_cluster_wide_on_redis_and_a_dead_node_leaves_after_its_ttl(
    redis_prefix: str, closing: list[Any]
) -> None:
    prefix = f"{redis_prefix}-ops-{uuid.uuid4().hex[:6]}"
    period = 0.5  # a TTL of 1.5 s: a node killed just after its last snapshot is still listed for a second
    a = ThreadedGateway(ping_interval=1.0, ping_timeout=1.0, broker=REDIS_URL, redis_prefix=prefix,
                        admin_token=ADMIN, admin_snapshot_period=period).start()
    b = SubprocessGateway(env={
        "GATEWAY_BROKER": REDIS_URL, "GATEWAY_REDIS_PREFIX": prefix, "GATEWAY_ADMIN_TOKEN": ADMIN,
        "GATEWAY_ADMIN_SNAPSHOT_PERIOD": str(period), "GATEWAY_PING_INTERVAL": "1", "GATEWAY_PING_TIMEOUT": "1",
    }).start()
    try:
        room = f"cluster-{uuid.uuid4().hex[:8]}"
        on_a, on_b = SocketIOClient(a.url, "/chat"), SseClient(b.url, "/chat")
        closing += [on_a]
        for client in (on_a, on_b):
            await client.connect()
            await client.join(room)
        body = await overview_until(
            a.url, lambda o: len(o["nodes"]) == 2 and room_size(o, "/chat", room) == 2,
            "node B and the room across both nodes, seen from node A",
        )
        assert nonzero(body["byTransport"]) == {"socketio": 1, "sse": 1}  # B's SSE session, A's Socket.IO one
        nodes = {n["node"]: n for n in body["nodes"]}
        assert body["node"] == a.gateway.broker.node in nodes
        [b_node] = set(nodes) - {a.gateway.broker.node}
        assert nodes[b_node]["sessions"] == 1 and nodes[a.gateway.broker.node]["sessions"] == 1
        assert all(n["broker"] == "redis" for n in nodes.values())
        # B sees the same cluster.
        from_b = await overview_until(b.url, lambda o: len(o["nodes"]) == 2, "the cluster from node B")
        assert from_b["node"] == b_node

        await on_b.close()
        b.kill()  # no goodbye: its last snapshot stays until its TTL
        killed = time.monotonic()
        still = await overview_until(a.url, lambda o: True, "right after the kill")
        assert b_node in {n["node"] for n in still["nodes"]}, "a dead node's snapshot outlives it until its TTL"
        gone = await overview_until(a.url, lambda o: [n["node"] for n in o["nodes"]] == [a.gateway.broker.node],
                                    "node B gone", wait=SNAPSHOT_LIFETIME * period + 5)
        assert time.monotonic() - killed < timeout(SNAPSHOT_LIFETIME * period + 1)
        assert nonzero(gone["byTransport"]) == {"socketio": 1} and room_size(gone, "/chat", room) == 1
    finally:
        if b.proc is not None and b.proc.poll() is None:
            b.kill()
        a.stop()


async def test_without_the_broker_a_node_still_shows_itself() -> None:
    """Redis unreachable: the overview is this node's own, marked partial, not an error."""
    from .servers import free_port

    gw = ThreadedGateway(broker=f"redis://127.0.0.1:{free_port()}/0", redis_prefix="unreachable",
                         admin_token=ADMIN, admin_snapshot_period=PERIOD).start()
    try:
        body = await overview_until(gw.url, lambda b: bool(b["nodes"]), "the node's own snapshot")
        assert body["partial"] is True
        [only] = body["nodes"]
        assert only["node"] == gw.gateway.broker.node and only["ready"] is False and only["broker"] == "redis"
    finally:
        gw.stop()


# -- the page in Chromium ---------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (make system-deps installs it)")
async def test_the_page_in_chromium(browser: Any, node: ThreadedGateway, closing: list[Any]) -> None:
    from playwright.async_api import expect

    room = "lobby-ops"
    sse, sio = SseClient(node.url, "/chat"), SocketIOClient(node.url, "/chat")
    closing += [sse, sio]
    for client in (sse, sio):
        await client.connect()
        await client.join(room)

    wait = timeout(10) * 1000
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    try:
        page = await context.new_page()
        page.set_default_timeout(wait)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(node.url + "/admin/ui")
        await expect(page.get_by_test_id("view")).to_be_hidden()
        await page.get_by_test_id("token").fill("a-wrong-token-of-some-length")
        await page.get_by_test_id("open").click()
        await expect(page.get_by_test_id("login-error")).to_have_text("wrong GATEWAY_ADMIN_TOKEN", timeout=wait)

        await page.get_by_test_id("token").fill(ADMIN)
        await page.get_by_test_id("open").click()
        await expect(page.get_by_test_id("login")).to_be_hidden()
        await expect(page.get_by_test_id("sessions-connected")).to_have_text("2", timeout=wait)
        rooms = page.get_by_test_id("rooms").locator("tbody tr")
        await expect(rooms).to_have_text([re.compile(rf"/chat\s*{room}\s*2")], timeout=wait)
        sessions = page.get_by_test_id("sessions").locator("tbody tr")  # live ones only
        await expect(sessions).to_have_text([re.compile(r"/chat\s*socketio\s*1"), re.compile(r"/chat\s*sse\s*1")])
        await expect(page.get_by_test_id("nodes").locator("tbody tr")).to_have_count(1)
        await expect(page.get_by_test_id("status")).to_contain_text("1 node", timeout=wait)
        assert await page.evaluate("sessionStorage.getItem('rtgateway.adminToken')") == ADMIN
        async with publishing(sse, room):
            await expect(page.get_by_test_id("rate-delivered")).not_to_have_text("0", timeout=wait)
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "admin-ui.png"), full_page=True)
        await expect(page.get_by_test_id("rejections")).to_contain_text(re.compile(r"invalid_token\s*1"))
        # Live: a third session shows up without touching the page.
        third = SseClient(node.url, "/chat")
        closing.append(third)
        await third.connect()
        await expect(page.get_by_test_id("sessions-connected")).to_have_text("3", timeout=wait)
        # Signing out forgets the token.
        await page.get_by_test_id("sign-out").click()
        await expect(page.get_by_test_id("login")).to_be_visible()
        assert await page.evaluate("sessionStorage.getItem('rtgateway.adminToken')") is None
    finally:
        await context.close()
    assert not errors, errors


# -- the Grafana dashboard ---------------------------------------------------------------


def _metric_names(exposition: str) -> set[str]:
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    # A labelled counter with no sample yet is only in its TYPE line.
    names.update(re.findall(r"^# TYPE (\S+)", exposition, re.M))
    return names


def _expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _expressions(item)


async def test_every_metric_of_the_grafana_dashboard_is_in_metrics(node: ThreadedGateway) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"] and dashboard["title"]
    expressions = list(_expressions(dashboard))
    assert len(expressions) >= len(dashboard["panels"]) - sum(p.get("type") == "row" for p in dashboard["panels"])
    used = {name for expr in expressions for name in re.findall(r"\bgateway_[a-z_]+", expr)}
    async with httpx.AsyncClient(base_url=node.url) as http:
        names = _metric_names((await http.get("/metrics")).text)
    assert used - names == set(), f"the dashboard uses metrics /metrics does not have: {used - names}"
    # It covers what the operator view shows.
    for name in ("gateway_live_sessions", "gateway_rooms", "gateway_delivered_total", "gateway_dropped_total",
                 "gateway_rejected_total", "gateway_recovery_gaps_total"):
        assert name in used, name
