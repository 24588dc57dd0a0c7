"""The gateway as an ASGI application, configured from the environment.

`nowgate serve --policy policies/demo.toml --static static` is the supported way to run it
(it applies the WebSocket limits in uvicorn's configuration); this module is for tools that
want an `app` object. The policy comes from NOWGATE_POLICY (default: the demo's).
"""

from __future__ import annotations

import os
from pathlib import Path

from nowgate import Settings, create_app, load_policy

PROJECT = Path(__file__).resolve().parents[1]

settings = Settings(static_dir=Path(os.environ.get("NOWGATE_STATIC_DIR", PROJECT / "static")))
policy = load_policy(Path(os.environ.get("NOWGATE_POLICY", PROJECT / "policies" / "demo.toml")))
app = create_app(settings, policy)
