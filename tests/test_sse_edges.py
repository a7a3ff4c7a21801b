"""Bad input and edges specific to SSE + POST: HTTP status codes and problem bodies."""

from __future__ import annotations

import httpx
import pytest

from .drivers import SseDriver, expect_error
from .servers import ThreadedGateway

PROBLEM = "application/problem+json"


@pytest.fixture
async def sse(server: ThreadedGateway):
    c = SseDriver(server.url)
    await c.connect("/chat")
    yield c
    await c.close()


def problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["code"] == code and body["status"] == status and body["title"] and body["type"]
    return body


async def test_malformed_json_is_400_and_changes_nothing(sse: SseDriver):
    problem(await sse.post("join", b"{not json"), 400, "malformed_json")
    assert (await sse.emit("whoami"))["rooms"] == []


async def test_validation_problem_lists_fields(sse: SseDriver):
    body = problem(await sse.post("publish", {"room": 5, "surprise": True}), 422, "validation_error")
    fields = {e["field"] for e in body["errors"]}
    assert {"room", "surprise"} <= fields


async def test_payload_over_max_is_413(sse: SseDriver, server: ThreadedGateway):
    big = {"room": "r", "data": "x" * (server.settings.max_payload + 1)}
    problem(await sse.post("publish", big), 413, "payload_too_large")


async def test_unknown_sid_is_404(sse: SseDriver):
    r = await sse.http.post("/sse/sessions/nobody-at-all/join", json={"room": "r"})
    problem(r, 404, "unknown_sid")


async def test_ack_unknown_then_already_used(sse: SseDriver, server: ThreadedGateway):
    problem(await sse.ack("999999", None), 404, "unknown_ack")
    seen: list[str] = []
    sse.answer = lambda event, data: "fine"
    result = await server.arun(server.gateway.call("/chat", sse.sid, "how-are-you", None))
    assert result == "fine"
    [call] = sse.control("call")
    seen.append(call["ackId"])
    problem(await sse.ack(call["ackId"], "again"), 409, "ack_already_used")


async def test_another_sessions_ack_id_is_unknown(server: ThreadedGateway):
    import asyncio

    from .drivers import NO_ANSWER

    a, b = SseDriver(server.url), SseDriver(server.url)
    await a.connect("/chat"), await b.connect("/chat")
    a.answer = lambda event, data: NO_ANSWER
    call = asyncio.ensure_future(server.arun(server.gateway.call("/chat", a.sid, "q", None, timeout=5)))
    await a.until(lambda: bool(a.control("call")))
    ack_id = a.control("call")[0]["ackId"]
    problem(await b.ack(ack_id, "hijack"), 404, "unknown_ack")
    assert (await a.ack(ack_id, "mine")).status_code == 204
    assert await call == "mine"
    await a.close(), await b.close()


@pytest.mark.parametrize("garbage", ["nonsense", "sid-only-no-semicolon", "abc;room=notanoffset", "abc;=1-1"])
async def test_garbage_last_event_id_is_400(server: ThreadedGateway, garbage: str):
    c = SseDriver(server.url)
    await expect_error("bad_last_event_id", c.connect("/chat", headers={"Last-Event-ID": garbage}))
    await c.http.aclose()


async def test_cursor_and_sid_must_agree(sse: SseDriver, server: ThreadedGateway):
    c = SseDriver(server.url)
    cursor = sse.last_event_id
    await expect_error(
        "bad_last_event_id",
        c.connect("/chat", headers={"Last-Event-ID": cursor}, params={"sid": "someone-else"}),
    )
    await c.http.aclose()


async def test_first_connect_can_resume_from_query_cursor(sse: SseDriver, server: ThreadedGateway):
    await sse.join("q-room")
    cursor, sid = sse.last_event_id, sse.sid
    await sse.drop()
    c = SseDriver(server.url)
    info = await c.connect("/chat", params={"lastEventId": cursor})
    assert info["sid"] == sid and info["rooms"] == ["q-room"]
    await c.close()


async def test_every_frame_that_moves_the_cursor_carries_an_id(sse: SseDriver):
    await sse.join("cursor-room")
    await sse.until(lambda: bool(sse.control("joined")))
    assert "cursor-room=" in sse.last_event_id and sse.last_event_id.startswith(f"{sse.sid}:{sse.key};")


async def test_delete_closes_the_session_for_good(server: ThreadedGateway):
    c = SseDriver(server.url)
    await c.connect("/chat")
    sid = c.sid
    assert (await c.http.delete(f"/sse/sessions/{sid}", headers=c.key_header())).status_code == 204
    await c.until(lambda: any(e == "__end__" for e, _ in c.frames), what="stream end")
    r = await c.http.post(f"/sse/sessions/{sid}/join", json={"room": "r"}, headers=c.key_header())
    problem(r, 404, "unknown_sid")
    await c.http.aclose()


async def test_openapi_documents_the_sse_api(server: ThreadedGateway):
    async with httpx.AsyncClient(base_url=server.url) as http:
        spec = (await http.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in ("/sse/connect", "/sse/sessions/{sid}/join", "/sse/sessions/{sid}/publish",
                 "/sse/sessions/{sid}/emit", "/sse/sessions/{sid}/ack", "/sse/sessions/{sid}/leave"):
        assert path in paths, path
    schema = paths["/sse/sessions/{sid}/publish"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"room", "event", "data", "clientEventId", "includeSelf"} <= set(schema["properties"])


async def test_health_ready_and_metrics(sse: SseDriver, server: ThreadedGateway):
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).json()["status"] == "ready"
        metrics = (await http.get("/metrics")).text
    assert "gateway_published_total" in metrics and "gateway_connects_total" in metrics
    connected = [line for line in metrics.splitlines() if line.startswith('gateway_sessions{state="connected"}')]
    assert connected and float(connected[0].split()[-1]) >= 1  # this test's own session, at least


async def test_extra_query_parameters_reach_the_middleware(server: ThreadedGateway):
    c = SseDriver(server.url)
    await c.connect("/chat", params={"name": "Ada"})
    assert (await c.emit("whoami"))["name"] == "Ada"
    await c.close()
