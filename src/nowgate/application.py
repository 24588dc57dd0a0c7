"""The gateway as parts of a FastAPI application: `Gateway`, and `create_app()` built on it.

Embedding in your own application (the router adds two routes, nothing catches all):

    gateway = Gateway(load_policy("policies/chat.toml"))
    app = FastAPI(lifespan=gateway.lifespan)
    app.include_router(gateway.router)      # the WebSocket at /ws, the browser client at /nowjs/
    gateway.add_middleware(app)             # optional: probes, Host check, headers, HTTP limit

`create_app()` is the stand-alone gateway `nowgate serve` runs: the same parts, plus the
site's own static files at / when `static_dir` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from .endpoint import websocket_endpoint
from .headers import SecurityHeadersMiddleware
from .httplimit import HttpRateLimit
from .hub import Hub
from .policy import Policy
from .probes import HealthProbes
from .settings import Settings
from .static import CLIENT_PREFIX, StaticJail, browser_client_dir


class Gateway:
    """One gateway: its shared state (`hub`), its routes (`router`) and its `lifespan`.

    `lifespan` starts the backplane (with `redis_url`) and the sweeper that closes expired
    and idle connections; without it neither runs. To combine it with your own:

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with gateway.lifespan(app):
                ...  # your start-up
                yield
    """

    def __init__(self, policy: Policy, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self.policy = policy
        self.hub = Hub(self.settings, policy)
        self.router = APIRouter()
        self.router.routes.append(WebSocketRoute(self.settings.ws_path, self.websocket_endpoint))
        # The gateway's own files carry its security headers whatever the host's middleware.
        client = SecurityHeadersMiddleware(
            StaticFiles(StaticJail(browser_client_dir()), prefix=CLIENT_PREFIX)
        )
        self.router.routes.append(Route(f"{CLIENT_PREFIX}/{{path:path}}", client))

    async def websocket_endpoint(self, websocket: WebSocket) -> None:
        await websocket_endpoint(websocket, self.hub)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        hub = self.hub
        await hub.backplane.start(hub.receive_remote)
        await hub.cluster.start()
        sweeper = asyncio.create_task(hub.connections.sweep_expired())
        try:
            yield
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            await hub.cluster.stop()
            await hub.backplane.stop()
            await hub.limiter.aclose()
            if hub.shared_history is not None:
                await hub.shared_history.stop()

    def add_middleware(self, app: Starlette) -> None:
        """The gateway's HTTP layer around all of `app`, outermost first: /healthz and
        /readyz, the security headers (a strict same-origin CSP: check your pages allow
        it), the `allowed_hosts` check, and the per-address HTTP rate limit (`http_rate`).

        Call it after adding your own middleware (the last added is the outermost). To
        take a part only, add it yourself: `nowgate.headers.SecurityHeadersMiddleware`,
        `nowgate.httplimit.HttpRateLimit`, `nowgate.probes.HealthProbes`.
        """
        settings = self.settings
        app.add_middleware(
            HttpRateLimit, rate=settings.http_rate, storage_uri=settings.rate_limit_storage
        )
        if settings.allowed_hosts:
            app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))
        app.add_middleware(SecurityHeadersMiddleware)
        app.add_middleware(HealthProbes, hub=self.hub)  # outside the limit and the headers


def create_app(settings: Settings, policy: Policy) -> FastAPI:
    """The stand-alone gateway: `Gateway`'s routes and HTTP layer, the site at / if set."""
    gateway = Gateway(policy, settings)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=gateway.lifespan)
    app.state.gateway = gateway
    app.include_router(gateway.router)
    if settings.static_dir is not None:
        site = StaticFiles(StaticJail(settings.static_dir))
        app.router.routes.append(Route("/{path:path}", site))  # last: after every other route
    gateway.add_middleware(app)
    return app


class StaticFiles:
    """The static jail as a route endpoint (not a mount), so that a route-aware HTTP
    middleware sees it.

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
