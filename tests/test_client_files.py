"""The files the gateway serves to browsers: the demo page, rtgateway.js, socket.io-client."""

from __future__ import annotations

import pathlib

import httpx
import pytest

from gateway import client_files

from .servers import ThreadedGateway


async def test_demo_page_and_client_are_served(server: ThreadedGateway) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        page = await http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'src="/client/demo.js"' in page.text
        module = await http.get("/client/rtgateway.js")
        assert module.status_code == 200 and module.headers["content-type"].startswith("text/javascript")
        assert "export function connect" in module.text
        for bad in ("/client/nope.js", "/client/index"):
            missing = await http.get(bad)
            assert missing.status_code == 404, bad
            assert missing.json()["code"] == "not_found"
        assert (await http.get("/client/..%2Fclient_files.py")).status_code == 404


async def test_socketio_client_missing_is_a_problem_that_says_npm_ci(
    server: ThreadedGateway, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setattr(client_files, "SOCKETIO_DIST", tmp_path)
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.get("/client/socket.io.esm.min.js")
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found" and "npm ci" in answer.json()["detail"]
