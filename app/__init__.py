"""nowgate: a hardened realtime gateway, NowJS's shared `now` scope over JSON-RPC WebSockets.

The public API for handler authors and applications.
"""

from app.application import create_app
from app.auth import Handshake, Principal
from app.errors import ClientCallError, Forbidden, InvalidParams, RpcError
from app.policy import Policy, load_policy
from app.scope import Audience, Client, Context
from app.settings import Settings

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
