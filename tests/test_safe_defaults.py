"""Safe by default: no built-in secret, the demo only when asked, browsers of other
origins turned away on both transports, credentials kept out of logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import httpx
import pytest
import websockets
from pydantic import ValidationError

from gateway.app import create_app
from gateway.settings import Settings

from .drivers import expect_error, make_driver
from .servers import SubprocessGateway, ThreadedGateway, timeout

EVIL = "http://evil.example"
APP = "http://app.example"


@pytest.fixture(scope="module")
def plain() -> Iterator[ThreadedGateway]:
    """The demo gateway with every default: no admin token, no JWT, no CORS origins."""
    gw = ThreadedGateway(ping_interval=1.0).start()
    yield gw
    gw.stop()


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"admin_token": "change-me"}, "placeholder"),
        ({"api_token": "secret"}, "placeholder"),
        ({"admin_token": "short"}, "at least 16"),
        ({"jwt_secret": "sixteen-chars-xx"}, "at least 32"),
        ({"jwt_secret": "x" * 40, "jwt_public_key": "key.pem"}, "not both"),
        ({"cors_origins": ["evil.example"]}, "https://app.example.com"),
    ],
)
def test_unsafe_settings_are_refused(settings, fragment) -> None:
    with pytest.raises(ValidationError, match=fragment):
        Settings(**settings)


def test_the_gateway_refuses_to_start_with_a_placeholder_secret() -> None:
    gw = SubprocessGateway(env={"GATEWAY_ADMIN_TOKEN": "change-me"})
    with pytest.raises(RuntimeError, match="exited"):
        gw.start()
    assert any("well-known placeholder" in line for line in gw.output)


async def test_without_an_admin_token_there_is_no_admin(plain: ThreadedGateway) -> None:
    for transport in ("socketio-websocket", "sse-post"):
        await expect_error("unknown_namespace", make_driver(transport, plain.url).connect("/admin"))
        guest = make_driver(transport, plain.url)
        await guest.connect("/chat")
        await expect_error("forbidden_room", guest.join("private:ops"))
        await guest.close()
    async with httpx.AsyncClient(base_url=plain.url) as http:
        answer = await http.post("/demo/token", json={"password": "anything at all"})
    assert answer.status_code == 403 and "GATEWAY_ADMIN_TOKEN" in answer.json()["detail"]


async def test_the_demo_token_endpoint_checks_the_password() -> None:
    gw = ThreadedGateway(admin_token="a-real-admin-password").start()
    try:
        async with httpx.AsyncClient(base_url=gw.url) as http:
            wrong = await http.post("/demo/token", json={"password": "a-wrong-admin-password"})
            assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_token"
            odd = await http.post("/demo/token", json={"password": "é" * 20})
            assert odd.status_code == 401
            right = await http.post("/demo/token", json={"password": "a-real-admin-password"})
            assert right.status_code == 200 and right.json()["expiresIn"] > 0
    finally:
        gw.stop()


async def test_an_application_gets_no_demo() -> None:
    def declare(gw) -> None:
        gw.namespace("/app")

    gw = ThreadedGateway.__new__(ThreadedGateway)
    ThreadedGateway.__init__(gw)
    gw.app = create_app(Settings(ping_interval=1.0), declare=declare)
    gw.server.config.app = gw.app
    gw.start()
    try:
        async with httpx.AsyncClient(base_url=gw.url) as http:
            assert (await http.get("/")).status_code == 404
            assert (await http.get("/client/rtgateway.js")).status_code == 200  # the client library stays
            assert (await http.post("/demo/token", json={"password": "x"})).status_code == 404
        await expect_error("unknown_namespace", make_driver("sse-post", gw.url).connect("/chat"))
        c = make_driver("sse-post", gw.url)
        await c.connect("/app")
        await c.close()
    finally:
        gw.stop()


async def _websocket_status(url: str, origin: str | None) -> int:
    """101 if the WebSocket upgrade was accepted, else the HTTP status it was refused with."""
    uri = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    try:
        async with websockets.connect(uri, origin=origin, open_timeout=timeout(5)):  # type: ignore[arg-type]
            return 101
    except websockets.exceptions.InvalidStatus as exc:
        return exc.response.status_code


async def test_other_origins_are_refused_on_both_transports(plain: ThreadedGateway) -> None:
    async with httpx.AsyncClient(base_url=plain.url) as http:
        for method, path in (("GET", "/sse/connect?namespace=/chat"), ("POST", "/sse/sessions/x/join"),
                             ("OPTIONS", "/sse/sessions/x/join"), ("GET", "/socket.io/?EIO=4&transport=polling")):
            r = await http.request(method, path, headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
            assert r.status_code == 403 and r.json()["code"] == "forbidden_origin", (method, path, r.text)
            assert "access-control-allow-origin" not in r.headers
        same = await http.get("/socket.io/?EIO=4&transport=polling", headers={"Origin": plain.url})
        assert same.status_code == 200
    assert await _websocket_status(plain.url, EVIL) == 403
    assert await _websocket_status(plain.url, plain.url) == 101  # the gateway's own pages
    assert await _websocket_status(plain.url, None) == 101  # not a browser: no Origin


async def test_listed_origins_get_cors_headers_and_never_credentials() -> None:
    listed = ThreadedGateway(cors_origins=[APP], ping_interval=1.0).start()
    anyone = ThreadedGateway(cors_origins=["*"], ping_interval=1.0).start()
    try:
        preflight = {"Origin": APP, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "content-type,x-session-key"}
        async with httpx.AsyncClient() as http:
            r = await http.options(f"{listed.url}/sse/sessions/x/publish", headers=preflight)
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == APP
            assert "x-session-key" in r.headers["access-control-allow-headers"].lower()
            assert "access-control-allow-credentials" not in r.headers
            polling = await http.get(f"{listed.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": APP})
            assert polling.status_code == 200 and polling.headers["access-control-allow-origin"] == APP
            assert "access-control-allow-credentials" not in polling.headers
            assert (await http.get(f"{listed.url}/healthz", headers={"Origin": EVIL})).status_code == 403
            for url in (f"{anyone.url}/sse/sessions/x/publish",):
                r = await http.options(url, headers={**preflight, "Origin": EVIL})
                assert r.headers["access-control-allow-origin"] == "*"
                assert "access-control-allow-credentials" not in r.headers
            polling = await http.get(f"{anyone.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": EVIL})
            assert polling.status_code == 200 and "access-control-allow-credentials" not in polling.headers
        assert await _websocket_status(listed.url, APP) == 101
        assert await _websocket_status(listed.url, EVIL) == 403
    finally:
        listed.stop(), anyone.stop()


async def test_credentials_in_a_url_stay_out_of_the_access_log() -> None:
    """``uvicorn gateway.main:app`` as is: its access log redacts token and cursor parameters."""
    gw = SubprocessGateway(env={"GATEWAY_LOG_LEVEL": "INFO"}).start()
    try:
        secret = "do-not-log-this-token-value"
        async with httpx.AsyncClient(base_url=gw.url) as http:
            r = await http.get("/sse/connect", params={"namespace": "/nowhere", "token": secret,
                                                       "lastEventId": f"sid:{secret};"})
            assert r.status_code in (400, 404)
            await http.get("/healthz")  # the access log line of the first request is out once this answers
        for _ in range(50):
            if any("/healthz" in line for line in gw.output):
                break
            await asyncio.sleep(0.05)
        logged = "".join(gw.output)
        assert "/sse/connect?" in logged and "token=[redacted]" in logged
        assert secret not in logged
    finally:
        gw.terminate()


def test_a_demo_reachable_from_other_machines_says_so(monkeypatch, caplog) -> None:
    import uvicorn

    from gateway import __main__ as entry

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)  # not starting a server
    with caplog.at_level(logging.WARNING, logger="gateway"):
        entry.main(["--host", "127.0.0.1"])
        assert not caplog.records
        entry.main(["--host", "0.0.0.0"])
    assert any("reachable from other machines" in r.getMessage() for r in caplog.records)
