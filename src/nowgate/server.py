"""Running the gateway under uvicorn: its limits, and a shutdown that speaks the protocol.

`serve(app, gateway, host, port)` runs the stand-alone app or your own app embedding a
`Gateway`. uvicorn is configured with the gateway's frame-size, compression and ping
limits, and every WebSocket scope is marked as served with them (production mode refuses
WebSockets from servers that are not). uvicorn's own shutdown closes WebSockets with 1012;
the protocol promises 1001 ("reconnect later with your token") after in-flight calls have
had `shutdown_grace` seconds to finish.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import socket
from collections.abc import Callable

import uvicorn
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from .admission import AdmissionProtocol
from .application import Gateway
from .endpoint import LIMITS_APPLIED
from .hub import Hub
from .logs import AUDIT_AGGREGATION
from .metrics import METRICS
from .settings import Settings
from .transport import DirectWriteProtocol, GatewayConfig, SocketBudget, TransportLimits

log = logging.getLogger("nowgate.server")


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self._hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting first, so no one connects to a draining node
        log.info("draining %d connections", len(self._hub.connections))
        # Its clients leave cluster presence first, so they can resume on another node.
        await self._hub.cluster.withdraw()
        await self._hub.connections.drain(self._hub.settings.shutdown_grace)
        await super().shutdown(sockets)


class WebSocketFastPath:
    """uvicorn's application: the gateway's WebSocket path straight to its endpoint, the
    rest to the application; every WebSocket scope marked `LIMITS_APPLIED`.

    The HTTP middleware (probes, security headers, rate limit, exception pages) never acts
    on a WebSocket, but each layer's frame would stay alive for the whole connection.
    """

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self._app = app
        settings = gateway.settings
        self._path = settings.ws_path

        async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            await gateway.websocket_endpoint(WebSocket(scope, receive, send))

        self._endpoint: ASGIApp = endpoint
        if settings.allowed_hosts:
            self._endpoint = TrustedHostMiddleware(endpoint, list(settings.allowed_hosts))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self._app(scope, receive, send)
            return
        scope.setdefault("extensions", {})[LIMITS_APPLIED] = {}
        if scope["path"] == self._path:
            await self._endpoint(scope, receive, send)
        else:
            await self._app(scope, receive, send)


def transport_limits(settings: Settings) -> TransportLimits:
    return TransportLimits(
        max_message_bytes=settings.max_message_bytes,
        max_message_fragments=settings.max_message_fragments,
        message_assembly_timeout=settings.message_assembly_timeout,
        client_ping_limit=settings.client_ping_limit,
        client_ping_window=settings.client_ping_window,
        shut_window_timeout=settings.ping_timeout,
        linger_timeout=settings.linger_timeout,
        linger_max_bytes=settings.linger_max_bytes,
        header_read_timeout=settings.header_read_timeout,
        handshake_timeout=settings.handshake_timeout,
        max_sockets_per_address=settings.max_sockets_per_address,
    )


def _is_trusted_proxy(settings: Settings) -> Callable[[str], bool]:
    networks = [
        ipaddress.ip_network(entry, strict=False)
        for entry in settings.trusted_proxies
        if entry != "*"
    ]
    everyone = "*" in settings.trusted_proxies

    def trusted(address: str) -> bool:
        if everyone:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    return trusted


def uvicorn_config(app: ASGIApp, settings: Settings, host: str, port: int) -> uvicorn.Config:
    """uvicorn with the gateway's WebSocket and admission limits; `app` must mark scopes
    LIMITS_APPLIED (WebSocketFastPath does)."""
    AUDIT_AGGREGATION.window = settings.audit_aggregation_window
    return GatewayConfig(
        app,
        limits=transport_limits(settings),
        budget=SocketBudget(settings.max_sockets_per_address, _is_trusted_proxy(settings)),
        host=host,
        port=port,
        http=AdmissionProtocol,
        ws=DirectWriteProtocol,
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ping_interval,
        ws_ping_timeout=settings.ping_timeout,
        # Forwarded headers are believed from the configured proxies only; with none,
        # the socket peer is the client (uvicorn's default would trust 127.0.0.1).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        server_header=False,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace) + 5,
    )


def tune_gc() -> None:
    """Process-wide GC settings for a busy gateway (`nowgate serve --tune-gc`, the default).

    Each connection keeps hundreds of GC-tracked objects alive, and a broadcast allocates
    an event-loop handle and a future per receiver: with the default gen-0 threshold (700)
    those get promoted, and full collections (0.3 s at 5,000 clients) rescan every
    connection. Freeze what start-up built; collect young objects far less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def serve(
    app: ASGIApp,
    gateway: Gateway,
    host: str,
    port: int,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Run `app` (which includes `gateway.router`) until SIGTERM or SIGINT, then drain.

    `sockets`: an already listening socket to accept from (`nowgate serve --workers`)."""
    settings = gateway.settings
    if settings.metrics_port is not None:
        METRICS.serve(settings.metrics_host, settings.metrics_port)
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    config = uvicorn_config(WebSocketFastPath(app, gateway), settings, host, port)
    GatewayServer(config, gateway.hub).run(sockets)
