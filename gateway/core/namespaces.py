"""Namespaces: isolated endpoints, each with its middleware, handlers and hooks.

An application declares them once on the ``Gateway``; every transport serves them.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from gateway.core.sessions import Session

Handler = Callable[[Session, Any], Awaitable[Any]]
# Connect middleware: inspects the client's auth payload, may set ``session.user``
# and ``session.claims``, refuses by raising a ``GatewayError`` (e.g. ``InvalidToken``).
Middleware = Callable[[Session, dict[str, Any]], Awaitable[None]]
JoinAuthorizer = Callable[[Session, str], Awaitable[bool] | bool]

F = TypeVar("F", bound=Callable[..., Any])


class Namespace:
    def __init__(
        self,
        name: str,
        *,
        allow_publish_unjoined: bool | None = None,
        anonymous: bool = False,
        recovery: bool | None = None,
        recovery_skips_middleware: bool = False,
        presence_claims: Iterable[str] = (),
        presence_events: bool = False,
        presence_unjoined: bool = False,
    ) -> None:
        if not name.startswith("/"):
            raise ValueError("a namespace name starts with '/'")
        self.name = name
        # With JWT on (Settings.jwt_secret / jwt_public_key), connecting without a token is
        # refused unless the namespace says so; a token that is given is verified either way.
        self.anonymous = anonymous
        self.handlers: dict[str, Handler] = {}
        self.middleware: list[Middleware] = []
        self.join_authorizer: JoinAuthorizer | None = None
        # None: follow Settings.allow_publish_unjoined.
        self.allow_publish_unjoined = allow_publish_unjoined
        # Socket.IO connection-state recovery (docs/protocol.md); None: Settings.socketio_recovery.
        self.recovery = recovery
        # A recovered session keeps the user and claims it had, as Socket.IO's skipMiddlewares
        # (a connect that is not recovered runs the middleware, and JWT check, all the same).
        self.recovery_skips_middleware = recovery_skips_middleware
        # Presence (docs/protocol.md): the claims a member's entry shows besides its sid and user
        # (none by default: claims may be private); whether its rooms' members get presence.join
        # and presence.leave; whether a session may ask who is in a room it is not in (then only
        # where it would be allowed to join, as ``authorize_join`` decides).
        if isinstance(presence_claims, str):  # tuple("name") would show claims "n", "a", "m", "e"
            raise TypeError("presence_claims is a collection of claim names, e.g. ('name',)")
        self.presence_claims = tuple(presence_claims)
        self.presence_events = presence_events
        self.presence_unjoined = presence_unjoined

    def on(self, event: str) -> Callable[[F], F]:
        """Register the handler of a client event; what it returns is the ack."""

        def register(fn: F) -> F:
            self.handlers[event] = fn
            return fn

        return register

    def use(self, middleware: Middleware) -> Middleware:
        """Add connect middleware (runs in the order added)."""
        self.middleware.append(middleware)
        return middleware

    def authorize_join(self, fn: JoinAuthorizer) -> JoinAuthorizer:
        """Set the hook that decides whether a session may join a room (default: allow)."""
        self.join_authorizer = fn
        return fn

    async def may_join(self, session: Session, room: str) -> bool:
        if self.join_authorizer is None:
            return True
        verdict = self.join_authorizer(session, room)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return bool(verdict)
