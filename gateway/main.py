"""``uvicorn gateway.main:app``: the gateway with its built-in demo chat."""

from __future__ import annotations

from gateway.app import create_app

app = create_app(demo=True)
