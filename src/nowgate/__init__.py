"""nowgate: a hardened realtime gateway, NowJS's shared `now` scope over JSON-RPC WebSockets.

The public API for handler authors and applications. Names load on first use (PEP 562), so
`import nowgate.client` does not load the server stack (FastAPI, uvicorn, redis, metrics).
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

if _TYPE_CHECKING:
    from .application import Gateway, create_app
    from .auth import Handshake, Principal
    from .errors import ClientCallError, Forbidden, InvalidParams, RpcError
    from .locks import Lease
    from .policy import Policy, load_policy
    from .scope import Audience, Client, Context, RemoteClient
    from .server import serve
    from .settings import Settings

# Each public name and the module defining it.
_MODULES = {
    "Audience": ".scope",
    "Client": ".scope",
    "ClientCallError": ".errors",
    "Context": ".scope",
    "Forbidden": ".errors",
    "Gateway": ".application",
    "Handshake": ".auth",
    "InvalidParams": ".errors",
    "Lease": ".locks",
    "Policy": ".policy",
    "Principal": ".auth",
    "RemoteClient": ".scope",
    "RpcError": ".errors",
    "Settings": ".settings",
    "create_app": ".application",
    "load_policy": ".policy",
    "serve": ".server",
}

__all__ = [
    "Audience",
    "Client",
    "ClientCallError",
    "Context",
    "Forbidden",
    "Gateway",
    "Handshake",
    "InvalidParams",
    "Lease",
    "Policy",
    "Principal",
    "RemoteClient",
    "RpcError",
    "Settings",
    "create_app",
    "load_policy",
    "serve",
]


def __getattr__(name: str) -> _Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'nowgate' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
