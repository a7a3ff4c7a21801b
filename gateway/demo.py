"""The built-in demo application: a chat, an admin console, and the default namespace."""

from __future__ import annotations

import hmac
from typing import Any

from .errors import InvalidToken, MalformedToken, Unauthorized, ValidationFailed
from .hub import Gateway
from .sessions import Session


def _token(auth: dict[str, Any]) -> str | None:
    token = auth.get("token")
    if token is None:
        return None
    if not isinstance(token, str) or not token.strip() or len(token) > 512:
        raise MalformedToken("token must be a non-empty string of at most 512 characters")
    return token


def install(gateway: Gateway) -> None:
    """Declare the demo namespaces on ``gateway`` (both transports serve them)."""
    admin_token = gateway.settings.admin_token

    def is_admin(token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, admin_token)

    # -- "/": echo ----------------------------------------------------------------
    root = gateway.namespace("/")

    @root.on("echo")
    async def root_echo(session: Session, data: Any) -> Any:
        return data

    # -- "/chat": rooms, publish, RPC ---------------------------------------------
    chat = gateway.namespace("/chat")

    @chat.use
    async def chat_auth(session: Session, auth: dict[str, Any]) -> None:
        token = _token(auth)
        if token is not None and not is_admin(token):
            raise InvalidToken("wrong token for /chat (connect without one to chat anonymously)")
        if token is not None:
            session.user = "admin"
            session.claims["private"] = True
        name = auth.get("name")
        session.claims["name"] = name if isinstance(name, str) and name else session.sid[:6]

    @chat.authorize_join
    def chat_rooms(session: Session, room: str) -> bool:
        return not room.startswith("private:") or bool(session.claims.get("private"))

    @chat.on("echo")
    async def chat_echo(session: Session, data: Any) -> Any:
        return data

    @chat.on("whoami")
    async def whoami(session: Session, data: Any) -> dict[str, Any]:
        return {
            "sid": session.sid,
            "name": session.claims.get("name"),
            "rooms": sorted(r for r in session.rooms if r not in (session.sid, "*")),
        }

    @chat.on("sum")
    async def add(session: Session, data: Any) -> float:
        if not isinstance(data, list) or not all(isinstance(x, (int, float)) for x in data):
            raise ValidationFailed("sum expects a list of numbers")
        return sum(data)

    # -- "/admin": token required; can emit to any room of /chat ------------------
    admin = gateway.namespace("/admin")

    @admin.use
    async def admin_auth(session: Session, auth: dict[str, Any]) -> None:
        token = _token(auth)
        if token is None:
            raise Unauthorized("/admin needs a token")
        if not is_admin(token):
            raise InvalidToken("wrong token for /admin")
        session.user = "admin"

    @admin.on("broadcast")
    async def broadcast(session: Session, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or not isinstance(data.get("room"), str):
            raise ValidationFailed("broadcast expects {room, event, data}")
        offset = await gateway.emit(
            "/chat", data.get("event", "announcement"), data.get("data"), to=data["room"]
        )
        return {"room": data["room"], "offset": offset}
