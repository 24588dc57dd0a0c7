"""Running the gateway under uvicorn, with a graceful shutdown that speaks the protocol.

uvicorn's own shutdown closes WebSockets with 1012; PROTOCOL.md promises 1001 ("reconnect
later with your token") after in-flight calls have had `shutdown_grace` seconds to finish.
"""

from __future__ import annotations

import logging
import socket

import uvicorn
from fastapi import FastAPI

from app.hub import Hub
from app.metrics import METRICS
from app.settings import Settings

log = logging.getLogger("nowgate.server")


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self._hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting first, so no one connects to a draining node
        log.info("draining %d connections", len(self._hub.sessions))
        await self._hub.drain(self._hub.settings.shutdown_grace)
        await super().shutdown(sockets)


def uvicorn_config(app: FastAPI, settings: Settings, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
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


def serve(app: FastAPI, settings: Settings, host: str, port: int) -> None:
    if settings.metrics_port is not None:
        METRICS.serve(settings.metrics_host, settings.metrics_port)
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    GatewayServer(uvicorn_config(app, settings, host, port), app.state.hub).run()
