"""The bearer tokens of the gateway's own HTTP APIs: the server publish API and the operator view.

A configured token is held as its hash and compared in constant time (``key_matches``);
an empty one turns its API off. Answers, as problem documents: 403 ``forbidden`` when
the API is off (naming the setting that turns it on), 401 ``unauthorized`` without an
``Authorization: Bearer`` header, 401 ``invalid_token`` for a wrong token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pydantic import SecretStr

from gateway.core.sessions import hash_key, key_matches
from gateway.wire.errors import Forbidden, InvalidToken, Unauthorized


class _HasHeaders(Protocol):
    @property
    def headers(self) -> Mapping[str, str]: ...


class BearerToken:
    """Checks ``Authorization: Bearer <token>`` on anything with ``headers`` (a Starlette request)."""

    def __init__(self, token: SecretStr, setting: str, api: str) -> None:
        secret = token.get_secret_value()
        self._hash = hash_key(secret) if secret else ""
        self._setting = setting  # e.g. GATEWAY_API_TOKEN
        self._api = api  # e.g. "the server API"

    @property
    def enabled(self) -> bool:
        return bool(self._hash)

    def check_enabled(self) -> None:
        """Raise 403 ``forbidden`` if no token is configured (the API is off)."""
        if not self._hash:
            raise Forbidden(f"{self._api} is disabled: set {self._setting}")

    def check(self, request: _HasHeaders) -> None:
        """Raise the problem the request earns, or nothing if it carries the token."""
        self.check_enabled()
        given = request.headers.get("authorization", "")
        if not given.lower().startswith("bearer "):
            raise Unauthorized(f"Authorization: Bearer <{self._setting}> required")
        if not key_matches(given[7:].strip(), self._hash):
            raise InvalidToken(f"wrong {self._setting}")
