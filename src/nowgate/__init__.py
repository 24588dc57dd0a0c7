"""nowgate: a hardened realtime gateway, NowJS's shared `now` scope over JSON-RPC WebSockets.

The public API for handler authors and applications.
"""

from .application import create_app
from .auth import Handshake, Principal
from .errors import ClientCallError, Forbidden, InvalidParams, RpcError
from .locks import Lease
from .policy import Policy, load_policy
from .scope import Audience, Client, Context, RemoteClient
from .settings import Settings

__all__ = [
    "Audience",
    "Client",
    "ClientCallError",
    "Context",
    "Forbidden",
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
]
