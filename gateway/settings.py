"""Every knob of the gateway, read from ``GATEWAY_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets copied from examples and tutorials: refused, so a deployment cannot run on one.
PLACEHOLDERS = frozenset({
    "change-me", "changeme", "change_me", "changeit", "secret", "password", "admin", "token",
    "default", "example", "test", "s3cret", "your-secret", "your-secret-key", "secret-key",
    "supersecret", "please-change-me", "replace-me", "xxx",
})


def _check_secret(name: str, value: str, minimum: int) -> str:
    if value.strip().lower() in PLACEHOLDERS:
        raise ValueError(f"{name} is a well-known placeholder; set a random value (e.g. `openssl rand -hex 32`)")
    if len(value) < minimum:
        raise ValueError(f"{name} must be at least {minimum} characters (e.g. `openssl rand -hex 32`)")
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"{name} must be printable ASCII")
    return value


class Settings(BaseSettings):
    """Gateway configuration. Defaults work out of the box on one machine."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    # Liveness, advertised in the handshake of both transports (seconds).
    ping_interval: float = Field(25.0, gt=0)
    ping_timeout: float = Field(20.0, gt=0)
    # Largest accepted client frame, in bytes (Socket.IO's maxHttpBufferSize, HTTP 413 for POST).
    max_payload: int = Field(1_000_000, gt=0)
    # Binary attachments one Socket.IO packet may announce (socket.io-parser's maxAttachments is
    # also 10); the ones held for a socket until its packet's last arrives may total max_payload
    # bytes. Past either, the socket is ended (gateway/fences/socketio_attachments.py).
    max_binary_attachments: int = Field(10, gt=0)

    # A detached session keeps its sid, rooms and missed events this long (seconds).
    recovery_window: float = Field(120.0, ge=0)
    # Per-room delivery log bounds: whichever is hit first trims the oldest entries.
    log_max_length: int = Field(1000, gt=0)
    log_max_age: float = Field(300.0, gt=0)
    # clientEventId deduplication window (seconds).
    dedup_window: float = Field(300.0, gt=0)

    # Events queued for one connection before the session is cut as a slow consumer.
    session_queue_size: int = Field(1000, gt=0)
    # Items (broadcasts, frames, room changes) waiting for this node's Socket.IO sender;
    # past it, their recipients are cut and resume from the delivery log.
    socketio_outbox_size: int = Field(100_000, gt=0)
    # Socket.IO connection-state recovery for namespaces that do not say (Namespace(recovery=...)):
    # the official socket.io-client gets its session, rooms and missed events back by itself.
    socketio_recovery: bool = False
    # Room events remembered per Socket.IO session with recovery on, to place the client's last
    # offset among its rooms (a pointer each: one entry per broadcast is shared by its members). A client whose last
    # event is further back than this (events in flight when cut) is not recovered; it should
    # cover session_queue_size, the most a connection can have waiting.
    socketio_recovery_trail: int = Field(1024, gt=0)
    # Default timeout of server->client calls (seconds).
    call_timeout: float = Field(10.0, gt=0)
    # Rooms one session may be in (its personal room aside). Bounds per-session state and
    # the SSE resume cursor, which travels as Last-Event-ID: ~30 bytes a room, and proxies
    # cap a header line (nginx: 8 KB by default).
    max_rooms_per_session: int = Field(100, gt=0)
    # Bytes of the auth payload a client connects with (Socket.IO auth, SSE query and token).
    max_auth_bytes: int = Field(8192, gt=0)
    # Publishing to a room the session has not joined is refused unless this is set.
    allow_publish_unjoined: bool = False

    # "memory" (one process) or a redis:// URL (several nodes).
    broker: str = "memory"
    redis_prefix: str = "rtgw"
    # How long a POST routed to the node holding its session may take (seconds).
    route_timeout: float = Field(5.0, gt=0)

    # The demo's admin password: exchanged at POST /demo/token for a JWT that grants /admin
    # and private: rooms. Empty (the default): no /admin, no private: rooms.
    admin_token: SecretStr = SecretStr("")
    # The operator view (/admin/ui, Bearer GATEWAY_ADMIN_TOKEN; off without it): seconds between
    # a node's snapshots. A snapshot lives three periods in the broker, so a node that
    # dies leaves the cluster-wide view within that.
    admin_snapshot_period: float = Field(1.0, ge=0.05, le=60)
    # Bearer token of the server-side publish API (POST /api/publish); empty disables it.
    api_token: SecretStr = SecretStr("")

    # JWT authentication on both transports (gateway/core/jwt_auth.py): HS256 with a shared
    # secret, or RS256/ES256 with a public key (PEM text or a file path). Neither: off.
    jwt_secret: SecretStr | None = None
    jwt_public_key: str = ""
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_leeway: float = Field(0.0, ge=0)
    # The claim that restricts which rooms a session may join (exact names, "prefix*").
    jwt_rooms_claim: str = "rooms"

    # Seconds streams get to say goodbye when the server shuts down.
    shutdown_grace: float = Field(2.0, ge=0)
    # Socket.IO over WebSocket: permessage-deflate costs CPU and memory per connection.
    websocket_compression: bool = False

    # Browser origins allowed besides the gateway's own (both transports, HTTP and
    # WebSocket), e.g. ["https://app.example.com"]; ["*"] for any (never with credentials).
    cors_origins: list[str] = []

    # Allocations between young-generation collections (CPython's default is 700). Applied
    # by ``python -m gateway`` (process-wide: an app built with create_app leaves it alone).
    gc_threshold: int = Field(100_000, gt=0)

    log_level: str = "WARNING"
    log_json: bool = True

    @field_validator("admin_token", "api_token")
    @classmethod
    def _token(cls, value: SecretStr, info: object) -> SecretStr:
        secret = value.get_secret_value()
        if secret:
            _check_secret(f"GATEWAY_{getattr(info, 'field_name', 'token').upper()}", secret, 16)
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _jwt_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            # RFC 7518 3.2: an HS256 key is at least as long as the hash (256 bits).
            _check_secret("GATEWAY_JWT_SECRET", value.get_secret_value(), 32)
            return value
        return None

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and ("://" not in origin or origin.endswith("/")):
                raise ValueError(f"a CORS origin looks like https://app.example.com, not {origin!r}")
        return value

    @model_validator(mode="after")
    def _presence_expiry(self) -> Settings:
        if self.presence_expiry <= self.presence_heartbeat:
            raise ValueError("GATEWAY_PRESENCE_EXPIRY must be longer than GATEWAY_PRESENCE_HEARTBEAT")
        return self

    @model_validator(mode="after")
    def _one_jwt_key(self) -> Settings:
        if self.jwt_secret is not None and self.jwt_public_key:
            raise ValueError("set GATEWAY_JWT_SECRET or GATEWAY_JWT_PUBLIC_KEY, not both")
        return self

    # -- rate and connection limits (issue 12) ------------------------------------------
    # Over one: 429 rate_limited with Retry-After (Socket.IO: the same code, with retryAfter).
    # 0 turns a limit off. The client address is the ASGI scope's "client": behind a reverse
    # proxy, the proxy's own unless uvicorn trusts it for X-Forwarded-For (FORWARDED_ALLOW_IPS;
    # by default 127.0.0.1 only). gateway/core/limits.py, README "Configuration".
    # Connections (SSE streams, Socket.IO namespace connections) open at once from one address:
    # a whole office behind one NAT is one address.
    address_max_connections: int = Field(1000, ge=0)
    # New sessions (a resume is not one) per second from one address, and the burst allowed:
    # after a restart of a node on the memory broker, every client starts a new session, and
    # those behind one NAT come back over burst / rate seconds (the clients honour Retry-After).
    # The conformance and client suites peak at 25 a second (37 in 10 s) from 127.0.0.1.
    address_session_rate: float = Field(20.0, ge=0)
    address_session_burst: int = Field(100, ge=1)
    # Publishes and application emits per second of one session, and the burst allowed.
    session_publish_rate: float = Field(50.0, ge=0)
    session_publish_burst: int = Field(100, ge=1)
    # Sessions one node holds, connected or recoverable (~15-50 KB each, see Performance).
    max_sessions: int = Field(50_000, ge=0)
    # Sessions one multiplexed SSE stream (a browser's tabs sharing one connection,
    # transports/sse_multiplex.py) may carry at once; each is one connection of its address too.
    multiplex_max_sessions: int = Field(64, ge=0)

    # -- memory bounds in bytes (issue 12)
    # An event weighs its encoded envelope. One room's delivery log, besides log_max_length and
    # log_max_age (a room always keeps its newest event). Redis: the same bound on each stream.
    log_max_bytes: int = Field(8 * 1024 * 1024, gt=0)
    # Every room log of this node together (memory broker): past it the oldest entries of
    # any room go first, down to 7/8 of it; a resume that needed them is told of a gap.
    logs_max_bytes: int = Field(64 * 1024 * 1024, gt=0)
    # The dedup window's acks of this node together (memory broker), oldest out first.
    dedup_max_bytes: int = Field(16 * 1024 * 1024, gt=0)
    # The largest ack kept for deduplication (both brokers): a larger handler result is not
    # kept, and a retransmission of its clientEventId runs the handler again.
    dedup_entry_max_bytes: int = Field(64 * 1024, gt=0)
    # Bytes one connection may have waiting to be written (SSE frames queued or being
    # written, Socket.IO packets queued) before it is cut as a slow consumer, as with
    # session_queue_size. Keep it above max_payload: one largest event must fit (1 MiB, as
    # Centrifugo's client_queue_max_size; an event of max_payload leaves ~45 KB beside it).
    session_queue_bytes: int = Field(1024 * 1024, gt=0)
    # A volatile event (not logged: docs/protocol.md) goes to a connection only while it has
    # fewer bytes than this waiting and its socket took its last write; otherwise it is dropped
    # for that connection (gateway_dropped_total{reason="volatile_not_ready"}). An idle
    # connection takes any one event.
    volatile_backlog_bytes: int = Field(64 * 1024, gt=0)

    # -- presence (gateway/core/presence.py) ----------------------------------------------
    # Members listed per page of a presence answer; past it, the answer's "next" is the cursor.
    presence_page_size: int = Field(100, gt=0, le=1000)
    # Redis broker: every node says it is alive this often (seconds) ...
    presence_heartbeat: float = Field(5.0, gt=0)
    # ... and a node silent this long (seconds) is dead: its sessions leave every presence
    # answer at once, and presence.leave is announced by the next live node's heartbeat.
    presence_expiry: float = Field(15.0, gt=0)
    # presence.join / presence.leave (namespaces that turn them on) gather the changes of this
    # many seconds into one event per room and kind (a leave and a join again cancel out).
    presence_event_window: float = Field(0.2, gt=0)

    # What all SSE streams of this node together may have waiting: past it, a stream whose
    # write has to wait (its socket is full) is cut as a slow consumer. A client stalls at
    # most session_queue_bytes plus what the kernel buffers; this bounds many of them at once.
    output_max_bytes: int = Field(32 * 1024 * 1024, gt=0)
