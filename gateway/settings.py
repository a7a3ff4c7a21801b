"""Every knob of the gateway, read from ``GATEWAY_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Gateway configuration. Defaults work out of the box on one machine."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    # Liveness, advertised in the handshake of both transports (seconds).
    ping_interval: float = Field(25.0, gt=0)
    ping_timeout: float = Field(20.0, gt=0)
    # Largest accepted client frame, in bytes (Socket.IO's maxHttpBufferSize, HTTP 413 for POST).
    max_payload: int = Field(1_000_000, gt=0)

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
    # Default timeout of server->client calls (seconds).
    call_timeout: float = Field(10.0, gt=0)
    # Rooms one session may be in (its personal room aside). Bounds per-session state and
    # the SSE resume cursor, which travels as Last-Event-ID: ~30 bytes a room, and proxies
    # cap a header line (nginx: 8 KB by default).
    max_rooms_per_session: int = Field(100, gt=0)
    # Publishing to a room the session has not joined is refused unless this is set.
    allow_publish_unjoined: bool = False

    # "memory" (one process) or a redis:// URL (several nodes).
    broker: str = "memory"
    redis_prefix: str = "rtgw"
    # How long a POST routed to the node holding its session may take (seconds).
    route_timeout: float = Field(5.0, gt=0)

    # Token that grants /admin, and the demo's private: rooms.
    admin_token: str = "change-me"
    # Token for the server-side publish API (POST /api/publish); empty disables it.
    api_token: str = ""

    # Seconds streams get to say goodbye when the server shuts down.
    shutdown_grace: float = Field(2.0, ge=0)
    # Socket.IO over WebSocket: permessage-deflate costs CPU and memory per connection.
    websocket_compression: bool = False

    # Browser origins allowed to call the gateway (both transports); "*" for any.
    cors_origins: list[str] = ["*"]

    # Allocations between young-generation collections (CPython's default is 700).
    gc_threshold: int = Field(100_000, gt=0)

    log_level: str = "WARNING"
    log_json: bool = True
