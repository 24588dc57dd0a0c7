"""nowgate: a hardened realtime gateway, NowJS's shared `now` scope over JSON-RPC WebSockets.

The public API for handler authors and applications. The names below load on first use
(PEP 562), so `import nowgate.client` in an application that only talks to a gateway does
not import the server stack (FastAPI, uvicorn, redis, pydantic-settings).
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING

if _TYPE_CHECKING:
    from .application import create_app as create_app
    from .auth import Handshake as Handshake
    from .auth import Principal as Principal
    from .errors import ClientCallError as ClientCallError
    from .errors import Forbidden as Forbidden
    from .errors import InvalidParams as InvalidParams
    from .errors import RpcError as RpcError
    from .policy import Policy as Policy
    from .policy import load_policy as load_policy
    from .scope import Audience as Audience
    from .scope import Client as Client
    from .scope import Context as Context
    from .settings import Settings as Settings

_HOMES = {
    "Audience": "scope",
    "Client": "scope",
    "ClientCallError": "errors",
    "Context": "scope",
    "Forbidden": "errors",
    "Handshake": "auth",
    "InvalidParams": "errors",
    "Policy": "policy",
    "Principal": "auth",
    "RpcError": "errors",
    "Settings": "settings",
    "create_app": "application",
    "load_policy": "policy",
}

__all__ = [
    "Audience",
    "Client",
    "ClientCallError",
    "Context",
    "Forbidden",
    "Handshake",
    "InvalidParams",
    "Policy",
    "Principal",
    "RpcError",
    "Settings",
    "create_app",
    "load_policy",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'nowgate' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
