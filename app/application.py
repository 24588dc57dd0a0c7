"""create_app(): the FastAPI application of one gateway process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.middleware import SlowAPIMiddleware
from slowapi.util import get_remote_address
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response

from app.endpoint import websocket_endpoint
from app.headers import SecurityHeadersMiddleware
from app.hub import Hub
from app.policy import Policy
from app.settings import Settings
from app.static import StaticJail


def create_app(settings: Settings, policy: Policy) -> FastAPI:
    hub = Hub(settings, policy)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(hub.sweep_expired())
        try:
            yield
        finally:
            sweeper.cancel()

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.hub = hub

    # slowapi limits every HTTP route (WebSocket traffic is limited by app.ratelimit).
    limiter = Limiter(
        key_func=get_remote_address,
        default_limits=[settings.http_rate],
        storage_uri=settings.rate_limit_storage,
        headers_enabled=False,
    )
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _too_many_requests)  # type: ignore[arg-type]
    app.add_middleware(SlowAPIMiddleware)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """The gateway accepts connections (503 while it drains for a shutdown)."""
        if hub.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        return JSONResponse({"status": "ready", "connections": len(hub.sessions)})

    app.add_api_websocket_route(settings.ws_path, websocket_endpoint)
    app.mount("/", StaticJail(Path(settings.static_dir)), name="static")
    if settings.allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))
    app.add_middleware(SecurityHeadersMiddleware)
    return app


async def _too_many_requests(request: Request, exc: RateLimitExceeded) -> Response:
    return JSONResponse(
        {"error": "Too many requests"}, status_code=429, headers={"Retry-After": "60"}
    )
