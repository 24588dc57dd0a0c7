"""create_app(): the FastAPI application of one gateway process."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.middleware import SlowAPIMiddleware
from slowapi.util import get_remote_address
from starlette.requests import Request
from starlette.responses import Response

from app.endpoint import websocket_endpoint
from app.headers import SecurityHeadersMiddleware
from app.hub import Hub
from app.policy import Policy, load_policy
from app.scope import Context
from app.settings import Settings
from app.static import StaticJail


def create_app(settings: Settings, policy: Policy) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.hub = Hub(settings, policy)

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
        return {"status": "ok"}

    app.add_api_websocket_route(settings.ws_path, websocket_endpoint)
    app.mount("/", StaticJail(Path(settings.static_dir)), name="static")
    app.add_middleware(SecurityHeadersMiddleware)
    return app


async def _too_many_requests(request: Request, exc: RateLimitExceeded) -> Response:
    return JSONResponse(
        {"error": "Too many requests"}, status_code=429, headers={"Retry-After": "60"}
    )


def app_from_files(settings: Settings, policy_path: Path) -> FastAPI:
    return create_app(settings, load_policy(policy_path, Context))
