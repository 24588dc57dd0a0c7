"""The HTTP rate limit: slowapi's limiter, one budget per client address for every request.

slowapi counts through `limits`' synchronous storages: with `redis://` each check is a
blocking Redis round trip. On the event loop that also serves every WebSocket, a slow or
paused Redis would stall every connection, so with any storage but memory the check runs
in a worker thread. (WebSocket traffic is limited by `nowgate.ratelimit`, on `limits`'
asyncio storages.)

One budget is shared by all paths, static files and 404s included: a per-path budget could
be dodged by varying the path. Place it inside the health probes, which load balancers
call often from few addresses.
"""

from __future__ import annotations

import functools

import anyio.to_thread
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

RETRY_AFTER_SECONDS = "60"


class HttpRateLimit:
    """Pure ASGI middleware: HTTP requests over `rate` per client address answer 429."""

    def __init__(self, app: ASGIApp, rate: str, storage_uri: str) -> None:
        self._app = app
        self._limiter = Limiter(
            key_func=get_remote_address,
            application_limits=[rate],
            key_style="url",
            storage_uri=storage_uri,
            headers_enabled=False,
            in_memory_fallback_enabled=True,  # Redis lost: count per node, never answer 500
        )
        self._off_loop = not storage_uri.startswith("memory://")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        # What slowapi's own middleware calls, with no route: application limits only.
        check = functools.partial(
            self._limiter._check_request_limit, Request(scope), None, True
        )
        try:
            if self._off_loop:
                await anyio.to_thread.run_sync(check)
            else:
                check()
        except RateLimitExceeded:
            response = JSONResponse(
                {"error": "Too many requests"},
                status_code=429,
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)
