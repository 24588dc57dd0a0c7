"""Every limit nowgate enforces, as one frozen, typed settings object.

Values come from environment variables prefixed `NOWGATE_` (for example
`NOWGATE_HELLO_TIMEOUT=3`). Lists are comma-separated. Secrets are `SecretStr` so that
neither a log line nor a repr ever shows them. Each default is the safe one; the README's
settings table is generated from the field descriptions here.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIN_PRODUCTION_KEY_LENGTH = 32


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOWGATE_", frozen=True, extra="forbid")

    mode: Literal["development", "production"] = Field(
        "development", description="production refuses unsafe configurations at start-up"
    )
    secret_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        (),
        description="token signing keys, newest first: the newest signs, all verify "
        "(development generates a per-process key when empty)",
    )
    token_max_age: int = Field(86_400, gt=0, description="seconds a signed identity token is valid")
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="exact Origin values allowed to open a WebSocket; empty means the "
        "gateway's own origin only",
    )
    allow_missing_origin: bool | None = Field(
        None,
        description="accept handshakes without an Origin header (non-browser clients); "
        "default: yes in development, no in production",
    )
    ws_path: str = Field("/ws", pattern=r"^/[A-Za-z0-9/_-]*$", description="WebSocket path")
    hello_timeout: float = Field(5.0, gt=0, description="seconds a client has to send now.hello")
    max_message_bytes: int = Field(
        65_536, ge=1024, description="largest inbound frame; larger closes with 1009"
    )
    max_json_depth: int = Field(32, ge=2, le=200, description="deepest JSON nesting accepted")
    max_collection_items: int = Field(
        1_000, ge=1, description="most items in one JSON array or object"
    )
    violation_limit: int = Field(
        20, ge=1, description="protocol violations within the window before a 1008 close"
    )
    violation_window: float = Field(60.0, gt=0, description="seconds of the violation window")
    call_timeout: float = Field(10.0, gt=0, description="seconds a server->client call waits")
    max_pending_calls: int = Field(
        64, ge=1, description="server->client calls awaiting an answer, per connection"
    )
    send_queue_limit: int = Field(
        1_024, ge=1, description="queued outbound messages per client before a 1013 close"
    )
    connection_rate: str = Field(
        "200/second", description="inbound messages per connection (limits syntax)"
    )
    connect_rate_per_address: str = Field(
        "60/minute", description="new WebSocket connections per client address; 1013 past it"
    )
    http_rate: str = Field("300/minute", description="HTTP requests per client address")
    redis_url: str | None = Field(
        None, description="Redis URL of the backplane that fans out across gateway processes; "
        "unset: one process"
    )
    cluster_heartbeat_interval: float = Field(
        5.0, gt=0, le=300, description="seconds between a node's refreshes of its clients' "
        "presence in Redis; a dead node's clients (and their calls and group membership) "
        "disappear from the cluster within 2 x this"
    )
    cluster_max_remote_calls: int = Field(
        1_024, ge=1, description="server->client calls to clients of other nodes awaiting "
        "an answer on this node"
    )
    rate_limit_storage: str = Field(
        "memory://", description="limits storage URI: memory:// or redis://host:port; while "
        "a shared storage is unreachable, each node counts in its own memory"
    )
    redis_timeout: float = Field(
        1.0, gt=0, description="seconds to connect to Redis or wait for its answer before "
        "it counts as unreachable"
    )
    redis_retry_max: float = Field(
        2.0, ge=0.1, description="longest pause between attempts to reach a lost Redis "
        "(backoff from 0.1 s); a shared rate-limit storage is re-checked as often"
    )
    backplane_buffer_bytes: int = Field(
        8 * 1024 * 1024, ge=0, description="bytes of broadcasts held for "
        "other nodes while Redis is unreachable; past it the oldest are dropped (counted)"
    )
    backplane_buffer_seconds: float = Field(
        30.0, ge=0, description="oldest held message still published when Redis is back; "
        "older ones are dropped (counted)"
    )
    ready_requires_backplane: bool = Field(
        True, description="/readyz answers 503 while the backplane is disconnected"
    )
    idle_timeout: float = Field(
        3600.0, gt=0, description="seconds without a frame from the client before the "
        "connection is closed (1000); checked with the credential sweep"
    )
    ping_interval: float = Field(20.0, gt=0, description="seconds between WebSocket pings")
    ping_timeout: float = Field(
        20.0, gt=0, description="seconds to wait for a pong; also the longest a client may "
        "keep its receive window shut while data waits for it (then dropped)"
    )
    client_ping_limit: int = Field(
        30, ge=1, description="pings a client may send per client_ping_window; more closes "
        "with 1008"
    )
    client_ping_window: float = Field(10.0, gt=0, description="seconds of the ping-limit window")
    max_message_fragments: int = Field(
        128, ge=1, description="most frames one fragmented message may span; more closes with "
        "1008 (its bytes, frame headers included, count against max_message_bytes: 1009)"
    )
    message_assembly_timeout: float = Field(
        10.0, gt=0, description="seconds a fragmented message may take to complete; 1008 past it"
    )
    linger_timeout: float = Field(
        2.0, ge=0, description="seconds the gateway reads and discards after a close frame it "
        "sent for the client's fault, so the frame is not lost to a TCP reset (or at a proxy)"
    )
    linger_max_bytes: int = Field(
        32 * 1024 * 1024, ge=0, description="most bytes read and discarded while lingering"
    )
    header_read_timeout: float = Field(
        10.0, gt=0, description="seconds a connection has to send complete HTTP request "
        "headers (from accept, or from the previous response)"
    )
    handshake_timeout: float = Field(
        15.0, gt=0, description="seconds from accept until a WebSocket handshake is answered"
    )
    max_sockets_per_address: int = Field(
        256, ge=1, description="open sockets per client address, counted from accept "
        "(trusted proxies exempt); past it new sockets are dropped"
    )
    audit_aggregation_window: float = Field(
        60.0, gt=0, description="seconds over which repeated refusals and rate-limit hits "
        "from one address are logged as one audit line with a count (the metric counts each)"
    )
    static_dir: Path | None = Field(
        None,
        description="the site's own files, served at / (the browser client is always served "
        "at /nowjs/); unset: none",
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="addresses or networks of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty: none, the socket peer is the client",
    )
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Host header values served (exact, or *.example.com); empty: any"
    )
    log_format: Literal["text", "json"] = Field("text", description="text, or JSON lines")
    metrics_host: str = Field("127.0.0.1", description="address of the metrics listener")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="port of the Prometheus metrics listener; unset: off"
    )
    shutdown_grace: float = Field(
        5.0, ge=0, description="seconds in-flight calls get to finish on SIGTERM before 1001"
    )
    history_size: int = Field(
        10_000, ge=0, description="events kept for missed-message recovery (broadcasts, "
        "messages to one client, variable changes); 0 turns recovery off"
    )
    history_seconds: float = Field(
        120.0, gt=0, description="seconds an event stays recoverable; a client away longer "
        "is told recovery failed and re-reads state"
    )
    history_max_bytes: int = Field(
        8_388_608, ge=0, description="most bytes of message text the recovery history holds "
        "(plus about 200 bytes per event)"
    )
    resume_probe_timeout: float = Field(
        3.0, gt=0, description="seconds a resume waits for a pong from a connection that "
        "still holds its identity; none: that connection is replaced (closed 4000)"
    )
    credential_check_interval: float = Field(
        30.0, gt=0, description="seconds between checks that close connections whose "
        "token or application credential expired (1008)"
    )

    @field_validator(
        "secret_keys", "allowed_origins", "trusted_proxies", "allowed_hosts", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # uvicorn silently ignores an entry it cannot parse, which would make every client
        # look like the proxy: refuse it here instead.
        for entry in value:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.mode != "production":
            return self
        problems = []
        if not self.secret_keys:
            problems.append("set NOWGATE_SECRET_KEYS to a random key of 32+ characters")
        elif any(len(k.get_secret_value()) < MIN_PRODUCTION_KEY_LENGTH for k in self.secret_keys):
            problems.append(
                f"every key in NOWGATE_SECRET_KEYS must be {MIN_PRODUCTION_KEY_LENGTH}+ characters"
            )
        if not self.allowed_origins:
            problems.append("set NOWGATE_ALLOWED_ORIGINS to your site's exact origin(s)")
        if self.allow_missing_origin:
            problems.append("unset NOWGATE_ALLOW_MISSING_ORIGIN (browsers always send Origin)")
        if any(
            entry == "*" or ipaddress.ip_network(entry, strict=False).prefixlen == 0
            for entry in self.trusted_proxies
        ):
            problems.append(
                "NOWGATE_TRUSTED_PROXIES must list your proxies' addresses, not '*' or a "
                "network of every address (then any client can forge X-Forwarded-For)"
            )
        if problems:
            raise ValueError("production mode refuses to start: " + "; ".join(problems))
        return self

    @property
    def missing_origin_allowed(self) -> bool:
        if self.allow_missing_origin is None:
            return self.mode == "development"
        return self.allow_missing_origin

    def signing_keys(self) -> list[str]:
        """Keys newest first; development without keys gets one per process."""
        if self.secret_keys:
            return [key.get_secret_value() for key in self.secret_keys]
        return [_process_key()]


_PROCESS_KEY: list[str] = []


def _process_key() -> str:
    if not _PROCESS_KEY:
        _PROCESS_KEY.append(secrets.token_urlsafe(32))
    return _PROCESS_KEY[0]
