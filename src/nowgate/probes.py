"""/healthz and /readyz, answered in front of everything else.

Load balancers probe every few seconds, from few addresses: the probes sit outside the
HTTP rate limit, the static files and the security-header middleware's reach.
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
            if self._hub.connections.draining:
                await _json(send, 503, {"status": "draining"})
            else:
                connections = len(self._hub.connections)
                await _json(send, 200, {"status": "ready", "connections": connections})
        else:
            await self._app(scope, receive, send)


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
