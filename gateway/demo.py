"""The built-in demo application: a chat, an admin console, and the default namespace.

Served only when asked (``create_app(demo=True)``: ``gateway.main:app`` and
``python -m gateway`` do). Anyone may chat anonymously. The admin side exists only
once ``GATEWAY_ADMIN_TOKEN`` is set: ``POST /demo/token`` exchanges that password for
a short-lived JWT (``sub: admin``, ``admin: true``), and that token — verified by the
gateway's JWT authentication like any other — is what ``/admin`` and the ``private:``
rooms of ``/chat`` require.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import Field

from gateway import client_files
from gateway.core.hub import Gateway
from gateway.core.jwt_auth import HMAC_ALGORITHMS, JwtAuth
from gateway.core.sessions import Session, hash_key, key_matches
from gateway.messages import Body
from gateway.problems import documented
from gateway.transports.sse import require_json
from gateway.wire.errors import Forbidden, InvalidToken, ValidationFailed

TOKEN_LIFETIME = 900  # seconds: the page asks for a fresh one when the gateway says it expired
ADMIN_DISABLED = "the demo's admin is off: start the gateway with GATEWAY_ADMIN_TOKEN set (16+ random characters)"


class Login(Body):
    password: str = Field(max_length=512)


def _signing_key(password: str) -> str:
    # Without a JWT key of the operator's, the demo derives one from its password, so
    # every node of a deployment agrees on it and nothing secret is built in.
    return hmac.new(password.encode(), b"rtgateway demo tokens", hashlib.sha256).hexdigest()


def install(gateway: Gateway) -> None:
    """Declare the demo namespaces on ``gateway`` (both transports serve them)."""
    password = gateway.settings.admin_token.get_secret_value()
    if password and gateway.jwt is None:
        gateway.jwt = JwtAuth(_signing_key(password), HMAC_ALGORITHMS)

    def is_admin(session: Session) -> bool:
        # claims come from a verified token only: the demo's middleware never sets "admin"
        return session.claims.get("admin") is True

    # -- "/": echo ----------------------------------------------------------------
    root = gateway.namespace("/", anonymous=True, recovery=True)

    @root.on("echo")
    async def root_echo(session: Session, data: Any) -> Any:
        return data

    # -- "/bench": what the comparison and the benchmarks load ---------------------
    # Rooms, publish and echo as on /chat, without presence announcements: a join to a room of
    # N would otherwise cost N frames, and a join storm of N users N^2/2, which would be measured
    # as the transports' latency. The reference servers (comparison/bench/servers) serve it too.
    bench = gateway.namespace("/bench", anonymous=True, recovery=True)

    @bench.on("echo")
    async def bench_echo(session: Session, data: Any) -> Any:
        return data

    # -- "/chat": rooms, publish, RPC ---------------------------------------------
    # The page's presence list shows each member's chosen name, and follows joins and leaves.
    chat = gateway.namespace(
        "/chat", anonymous=True, recovery=True, presence_claims=("name",), presence_events=True
    )

    @chat.use
    async def chat_name(session: Session, auth: dict[str, Any]) -> None:
        name = auth.get("name")
        if isinstance(name, str) and name.strip():
            session.claims["name"] = name.strip()[:40]
        else:
            session.claims.setdefault("name", session.user or session.sid[:6])

    @chat.authorize_join
    def chat_rooms(session: Session, room: str) -> bool:
        return not room.startswith("private:") or is_admin(session)

    @chat.on("echo")
    async def chat_echo(session: Session, data: Any) -> Any:
        return data

    @chat.on("whoami")
    async def whoami(session: Session, data: Any) -> dict[str, Any]:
        return {
            "sid": session.sid,
            "user": session.user,
            "name": session.claims.get("name"),
            "rooms": sorted(r for r in session.rooms if r not in (session.sid, "*")),
        }

    @chat.on("sum")
    async def add(session: Session, data: Any) -> float:
        if not isinstance(data, list) or not all(isinstance(x, (int, float)) for x in data):
            raise ValidationFailed("sum expects a list of numbers")
        total = sum(data)
        if not math.isfinite(total) or abs(total) >= 2**63:
            raise ValidationFailed("the sum is too large to send")
        return total

    if not password:
        return  # no /admin at all: connecting to it answers unknown_namespace

    # -- "/admin": an admin token required; can emit to any room of /chat ---------
    admin = gateway.namespace("/admin")

    @admin.use
    async def admin_only(session: Session, auth: dict[str, Any]) -> None:
        if not is_admin(session):
            raise Forbidden("/admin needs an admin token (POST /demo/token)")

    @admin.on("broadcast")
    async def broadcast(session: Session, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or not isinstance(data.get("room"), str):
            raise ValidationFailed("broadcast expects {room, event, data}")
        offset = await gateway.emit(
            "/chat", data.get("event", "announcement"), data.get("data"), to=data["room"]
        )
        return {"room": data["room"], "offset": offset}


def router(gateway: Gateway) -> APIRouter:
    """The demo page at ``/`` and its token endpoint."""
    api = APIRouter(tags=["demo"])
    password = gateway.settings.admin_token.get_secret_value()
    password_hash = hash_key(password) if password else ""

    @api.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(client_files.INDEX, media_type="text/html", headers=client_files.HEADERS)

    @api.post("/demo/token", summary="Exchange the demo's admin password for a short-lived JWT",
              responses=documented(401, 403, 415, 422),
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": Login.model_json_schema()}}}})
    async def token(request: Request) -> dict[str, Any]:
        if not password_hash:
            raise Forbidden(ADMIN_DISABLED)
        require_json(request)
        given = Login.parse(await request.body()).password
        if not key_matches(given, password_hash):
            raise InvalidToken("wrong admin password")
        verifier = gateway.jwt
        if verifier is None or not verifier.can_sign:
            raise Forbidden("this gateway verifies tokens with a public key: get one from your identity provider")
        claims = {"sub": "admin", "admin": True, "name": "admin"}
        return {"token": verifier.sign(claims, TOKEN_LIFETIME), "expiresIn": TOKEN_LIFETIME}

    return api
