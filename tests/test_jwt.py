"""JWT authentication on both transports: what it admits, what it refuses, and expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.core.jwt_auth import JwtAuth

from .drivers import expect_error, make_driver
from .servers import REDIS_URL, ThreadedGateway

SECRET = "jwt-test-secret-" + "x" * 32


def token(sub: str = "ada", ttl: float = 60, key: Any = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + ttl, **claims}, key, algorithm=algorithm)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A token built by hand, as an attacker would (PyJWT refuses to make these)."""
    head = _b64(orjson.dumps(header)) + "." + _b64(orjson.dumps(claims))
    signature = hmac.new(key, head.encode(), hashlib.sha256).digest() if key is not None else b""
    return head + "." + _b64(signature)


@pytest.fixture(scope="module")
def server(redis_prefix: str) -> Iterator[ThreadedGateway]:
    """Token checks happen before the broker is asked anything; Redis is the one that
    must carry a resumed session's user across nodes, so it backs this suite."""
    broker = REDIS_URL
    gw = ThreadedGateway(
        jwt_secret=SECRET, ping_interval=1.0, ping_timeout=1.0, recovery_window=30.0,
        broker=broker, redis_prefix=redis_prefix, admin_token="jwt-suite-admin-password",
    ).start()
    yield gw
    gw.stop()


async def test_sub_becomes_the_sessions_user(clients, transport):
    c = clients(transport)
    await c.connect("/chat", {"token": token("grace")})
    assert (await c.emit("whoami"))["user"] == "grace"


async def test_a_namespace_that_is_not_anonymous_needs_a_token(clients, transport):
    await expect_error("unauthorized", clients(transport).connect("/admin"))
    await expect_error("forbidden", clients(transport).connect("/admin", {"token": token("ada")}))
    admin = clients(transport)
    await admin.connect("/admin", {"token": token("root", admin=True)})


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (lambda: token(ttl=-30), "token_expired"),
        (lambda: token(nbf=int(time.time()) + 3600), "invalid_token"),  # not yet valid
        (lambda: token(key="another-secret-that-is-long-enough-000"), "invalid_token"),
        (lambda: forged({"alg": "none", "typ": "JWT"}, {"sub": "ada", "exp": int(time.time()) + 60}, None), "invalid_token"),
        (lambda: jwt.encode({"sub": "ada"}, SECRET, algorithm="HS256"), "invalid_token"),  # no exp
        (lambda: token(sub=""), "invalid_token"),
        (lambda: "not.a.jwt", "malformed_token"),
        (lambda: "garbage", "malformed_token"),
        (lambda: "é.é.é", "malformed_token"),  # not ASCII: refused, not a crash
        (lambda: "x" * 10_000, "validation_error"),  # over GATEWAY_MAX_AUTH_BYTES before it is read
    ],
    ids=["expired", "not-yet-valid", "wrong-signature", "alg-none", "no-exp", "empty-sub", "not-base64",
         "not-a-jwt", "not-ascii", "too-long"],
)
@pytest.mark.parametrize("transport", ["socketio-websocket", "sse-post"])  # polling connects as websocket does
async def test_bad_tokens_are_refused_with_their_code(clients, transport, server, bad, code):
    before = len(server.gateway.sessions)
    c = clients(transport)
    if transport == "sse-post" and not bad().isascii():
        attempt = c.connect("/chat", params={"token": bad()})  # a header cannot carry it
    else:
        attempt = c.connect("/chat", {"token": bad()})
    await expect_error(code, attempt)
    assert len(server.gateway.sessions) == before  # a refused connect leaves nothing behind


async def test_the_rooms_claim_restricts_joins(clients, transport):
    c = clients(transport)
    await c.connect("/chat", {"token": token("ada", rooms=["lobby", "team:*"])})
    await c.join("lobby")
    await c.join("team:red")
    await expect_error("forbidden_room", c.join("lobby2"))
    await expect_error("forbidden_room", c.join("elsewhere"))
    assert (await c.emit("whoami"))["rooms"] == ["lobby", "team:red"]


async def test_dedup_follows_the_authenticated_user_across_sessions(clients, transport):
    r = f"dedup-{uuid.uuid4().hex[:8]}"
    a, b = clients(transport), clients("sse-post")
    await a.connect("/chat", {"token": token("same-user")}), await b.connect("/chat", {"token": token("same-user")})
    await a.join(r), await b.join(r)
    first = await a.publish(r, "once", clientEventId="ceid-1")
    again = await b.publish(r, "once", clientEventId="ceid-1")  # the same user retrying from another tab
    assert again == first


async def test_expiry_ends_the_connection_and_a_fresh_token_resumes_the_session(clients, transport, server):
    c = clients(transport)
    await c.connect("/chat", {"token": token("eve", ttl=2)})
    await c.join("expiring")
    await c.until(lambda: bool(c.control("close")), wait=8, what="token_expired")
    assert c.control("close")[-1] == {"reason": "token_expired", "reconnect": True}
    sid = c.sid
    await expect_error("token_expired", c.connect("/chat", {"token": token("eve", ttl=-1)}, resume=True))
    await expect_error("unknown_sid", c.connect("/chat", {"token": token("mallory")}, resume=True))
    info = await c.connect("/chat", {"token": token("eve")}, resume=True)
    assert info["sid"] == sid and info["rooms"] == ["expiring"]


async def test_requests_after_expiry_are_refused(server):
    """Between expiry and the stream's end a POST is still refused."""
    c = make_driver("sse-post", server.url)
    await c.connect("/chat", {"token": token("zed", ttl=1.5)})
    await c.until(lambda: bool(c.control("close")), wait=8, what="token_expired")
    await expect_error("token_expired", c.request("join", {"room": "late"}))
    await c.http.aclose()


def test_public_key_tokens_and_the_hmac_confusion_attack() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    auth = JwtAuth(pem, ("RS256", "ES256"))
    assert auth.verify(token("ada", key=private, algorithm="ES256"))["sub"] == "ada"
    # The public key is public: a token HMAC-signed with it must not pass.
    confused = forged({"alg": "HS256", "typ": "JWT"}, {"sub": "ada", "exp": int(time.time()) + 60}, pem.encode())
    from gateway.wire.errors import InvalidToken

    with pytest.raises(InvalidToken):
        auth.verify(confused)
    assert not auth.can_sign


async def test_a_public_key_gateway_admits_es256_over_every_transport(tmp_path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem_file = tmp_path / "key.pem"
    pem_file.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    gw = ThreadedGateway(jwt_public_key=str(pem_file), jwt_audience="rtgw-tests", ping_interval=1.0).start()
    try:
        for transport in ("socketio-websocket", "sse-post"):
            c = make_driver(transport, gw.url)
            await c.connect("/chat", {"token": token("ada", key=private, algorithm="ES256", aud="rtgw-tests")})
            assert (await c.emit("whoami"))["user"] == "ada"
            await c.close()
            wrong_audience = token("ada", key=private, algorithm="ES256", aud="someone-else")
            await expect_error("invalid_token", make_driver(transport, gw.url).connect("/chat", {"token": wrong_audience}))
    finally:
        gw.stop()
