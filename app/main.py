"""The demo service as a FastAPI application of its own, embedding the gateway.

`nowgate serve --policy policies/demo.toml --static static` runs the same thing stand-alone.
This module is how a team's project embeds nowgate: its own FastAPI app, the gateway's
router, lifespan and HTTP layer in it. Run it with `python -m app.main` (nowgate's uvicorn
configuration: the WebSocket limits, the 1001 drain); under plain `uvicorn app.main:app`
production mode refuses WebSockets, because uvicorn's defaults do not apply the limits.
The policy comes from NOWGATE_POLICY (default: the demo's).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from starlette.routing import Route

import nowgate
from nowgate.application import StaticFiles
from nowgate.static import StaticJail

PROJECT = Path(__file__).resolve().parents[1]

settings = nowgate.Settings()
policy = nowgate.load_policy(
    Path(os.environ.get("NOWGATE_POLICY", PROJECT / "policies" / "demo.toml"))
)
gateway = nowgate.Gateway(policy, settings)
app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=gateway.lifespan)
app.include_router(gateway.router)
# The demo page last: the site's files answer what no route does.
site = StaticFiles(StaticJail(settings.static_dir or PROJECT / "static"))
app.router.routes.append(Route("/{path:path}", site))
gateway.add_middleware(app)

if __name__ == "__main__":
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    nowgate.serve(app, gateway, host, port)
