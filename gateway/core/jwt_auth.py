"""JSON Web Tokens as connect authentication, on both transports (PyJWT).

Switched on in ``Settings``: ``GATEWAY_JWT_SECRET`` (HS256) or ``GATEWAY_JWT_PUBLIC_KEY``
(RS256 / ES256, a PEM or a path to one). The hub verifies the token a client connects
with before the namespace's own middleware runs: ``sub`` becomes ``session.user`` (so
resume and deduplication follow the user), the verified claims become
``session.claims``, and ``exp`` ends the connection with ``close {reason:
token_expired}`` when it passes. An optional claim (``rooms`` by default) restricts the
rooms the session may join: exact names, ``prefix*`` for a prefix, ``*`` for any.

The accepted algorithms are fixed by the kind of key, never read from the token:
``alg: none`` and HS256-signed-with-the-public-key forgeries are refused.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from gateway.settings import Settings
from gateway.wire.errors import InvalidToken, MalformedToken, TokenExpired

HMAC_ALGORITHMS = ("HS256",)
PUBLIC_KEY_ALGORITHMS = ("RS256", "ES256")
MAX_TOKEN_LENGTH = 8192


@dataclass(frozen=True, slots=True)
class JwtAuth:
    """Verifies (and, with a shared secret, signs) the tokens sessions connect with."""

    key: str
    algorithms: tuple[str, ...]
    audience: str | None = None
    issuer: str | None = None
    leeway: float = 0.0
    rooms_claim: str = "rooms"

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtAuth | None:
        """The configured verifier, or None when JWT is off (neither key set)."""
        if settings.jwt_public_key:
            key = settings.jwt_public_key
            if not key.lstrip().startswith("-----BEGIN"):
                key = Path(key).read_text()
            algorithms: tuple[str, ...] = PUBLIC_KEY_ALGORITHMS
        elif settings.jwt_secret is not None:
            key, algorithms = settings.jwt_secret.get_secret_value(), HMAC_ALGORITHMS
        else:
            return None
        return cls(
            key,
            algorithms,
            audience=settings.jwt_audience or None,
            issuer=settings.jwt_issuer or None,
            leeway=settings.jwt_leeway,
            rooms_claim=settings.jwt_rooms_claim,
        )

    @property
    def can_sign(self) -> bool:
        return self.algorithms == HMAC_ALGORITHMS

    def sign(self, claims: Mapping[str, Any], lifetime: float) -> str:
        """A token for ``claims`` valid ``lifetime`` seconds (shared-secret setups only:
        with a public key, tokens come from the identity provider that holds the private one)."""
        if not self.can_sign:
            raise RuntimeError("this gateway verifies tokens with a public key and cannot sign them")
        now = int(time.time())
        body: dict[str, Any] = {"iat": now, "exp": now + int(lifetime), **claims}
        if self.audience:
            body.setdefault("aud", self.audience)
        if self.issuer:
            body.setdefault("iss", self.issuer)
        return jwt.encode(body, self.key, algorithm=self.algorithms[0])

    def verify(self, token: object) -> dict[str, Any]:
        """The token's claims, or ``MalformedToken`` / ``InvalidToken`` / ``TokenExpired``."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise MalformedToken(f"the token must be a non-empty string of at most {MAX_TOKEN_LENGTH} characters")
        if not token.isascii() or token.count(".") != 2:
            raise MalformedToken("the token is not a JWT (three base64url parts, ASCII)")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                algorithms=list(self.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("the token has expired: get a fresh one and reconnect") from None
        except jwt.InvalidSignatureError:  # a DecodeError to PyJWT, but the token was readable
            raise InvalidToken("the token's signature does not verify") from None
        except jwt.DecodeError as exc:
            raise MalformedToken(f"the token cannot be read: {exc}") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"the token was refused: {exc}") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidToken("the token's sub must be a non-empty string")
        return claims

    def allows_room(self, claims: Mapping[str, Any], room: str) -> bool:
        """What the token's rooms claim says of ``room`` (no claim: no restriction)."""
        allowed = claims.get(self.rooms_claim)
        if allowed is None:
            return True
        if not isinstance(allowed, list):
            return False  # a claim we cannot read restricts to nothing, never to everything
        for pattern in allowed:
            if not isinstance(pattern, str):
                continue
            if pattern == room or (pattern.endswith("*") and room.startswith(pattern[:-1])):
                return True
        return False
