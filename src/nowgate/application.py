"""create_app(): the FastAPI application of one gateway process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.middleware import SlowAPIMiddleware
from slowapi.util import get_remote_address
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .endpoint import websocket_endpoint
from .headers import SecurityHeadersMiddleware
from .hub import Hub
from .policy import Policy
from .probes import HealthProbes
from .settings import Settings
from .static import CLIENT_PREFIX, StaticJail, browser_client_dir


def create_app(settings: Settings, policy: Policy) -> FastAPI:
    hub = Hub(settings, policy)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.backplane.start(hub.receive_remote)
        await hub.cluster.start()
        sweeper = asyncio.create_task(hub.connections.sweep_expired())
        try:
            yield
        finally:
            sweeper.cancel()
            await hub.cluster.stop()
            await hub.backplane.stop()

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.hub = hub

    # slowapi limits every HTTP request per client address, one budget shared by all
    # routes and static files (a per-path budget could be dodged by varying the path);
    # WebSocket traffic is limited by app.ratelimit.
    limiter = Limiter(
        key_func=get_remote_address,
        application_limits=[settings.http_rate],
        key_style="url",
        storage_uri=settings.rate_limit_storage,
        headers_enabled=False,
    )
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _too_many_requests)  # type: ignore[arg-type]
    app.add_middleware(SlowAPIMiddleware)

    app.add_api_websocket_route(settings.ws_path, websocket_endpoint)
    app.router.routes.append(
        Route(
            f"{CLIENT_PREFIX}/{{path:path}}",
            _StaticFiles(StaticJail(browser_client_dir()), prefix=CLIENT_PREFIX),
        )
    )
    if settings.static_dir is not None:
        app.router.routes.append(
            Route("/{path:path}", _StaticFiles(StaticJail(settings.static_dir)))
        )
    if settings.allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))
    app.add_middleware(HealthProbes, hub=hub)
    app.add_middleware(SecurityHeadersMiddleware)  # added last: outermost, on every answer
    return app


class _StaticFiles:
    """The static jail as a route endpoint (not a mount), so that slowapi sees and limits it.

    `prefix` is what a Mount would add to `root_path`: the jail strips it from the path.
    """

    __name__ = "static_files"

    def __init__(self, jail: StaticJail, prefix: str = "") -> None:
        self._jail = jail
        self._prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._prefix:
            scope = {**scope, "root_path": scope.get("root_path", "") + self._prefix}
        await self._jail(scope, receive, send)


async def _too_many_requests(request: Request, exc: RateLimitExceeded) -> Response:
    return JSONResponse(
        {"error": "Too many requests"}, status_code=429, headers={"Retry-After": "60"}
    )
