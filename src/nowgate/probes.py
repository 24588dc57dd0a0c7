"""/healthz and /readyz, answered in front of everything else.

Load balancers probe every few seconds, from few addresses: the probes sit outside the
HTTP rate limit, the static files and the security-header middleware's reach.

/healthz: the process answers (200 as long as it runs). /readyz: it should get traffic:
503 while draining, and while the Redis backplane is disconnected (the node then delivers
to its own clients only; `NOWGATE_READY_REQUIRES_BACKPLANE=false` keeps it 200). The body
says why, and whether rate limits count cluster-wide or in this process only.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from .hub import Hub


class HealthProbes:
    def __init__(self, app: ASGIApp, hub: Hub) -> None:
        self._app = app
        self._hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path") if scope["type"] == "http" else None
        if path == "/healthz":
            await _json(send, 200, {"status": "ok"})
        elif path == "/readyz":
            await self._ready(send)
        else:
            await self._app(scope, receive, send)

    async def _ready(self, send: Send) -> None:
        hub = self._hub
        # Public and outside the Host check (load balancers call it): no counts here, the
        # metrics listener has them.
        state: dict[str, object] = {
            "backplane": "connected" if hub.backplane.connected else "disconnected",
            "rate_limits": "local" if hub.limiter.counting_locally else "configured",
        }
        if hub.connections.draining:
            await _json(send, 503, {"status": "draining", **state})
        elif not hub.backplane.connected and hub.settings.ready_requires_backplane:
            # Local delivery still works; broadcasts do not reach the other nodes.
            await _json(send, 503, {"status": "backplane disconnected", **state})
        else:
            await _json(send, 200, {"status": "ready", **state})


async def _json(send: Send, status: int, body: dict[str, object]) -> None:
    payload = orjson.dumps(body)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"cache-control", b"no-store")],
    })
    await send({"type": "http.response.body", "body": payload})
