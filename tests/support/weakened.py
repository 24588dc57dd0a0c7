"""The real gateway with named controls switched off, for the probe's detection tests.

    python -m tests.support.weakened origin,headers,... serve --policy P --host H --port N

Each switch replaces one control with what a careless implementation would do, in this
process only, then runs nowgate's own command line. Controls that are settings (the frame
limit, the connection rate, the violation budget) are switched off with NOWGATE_ variables
instead. Nothing here is importable by the library: it exists to prove the probe sees what a
missing control looks like from outside.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
from itsdangerous import URLSafeTimedSerializer
from pydantic import ConfigDict, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

import nowgate.__main__
import nowgate.application
import nowgate.endpoint
import nowgate.identity
import nowgate.policy
import nowgate.validation
from nowgate.errors import InvalidParams

# The settings that switch off controls which are limits rather than code.
LOOSE_LIMITS = {
    "NOWGATE_MAX_MESSAGE_BYTES": str(8 * 1024 * 1024),
    "NOWGATE_CONNECTION_RATE": "100000/second",
    "NOWGATE_VIOLATION_LIMIT": "100000",
}


def any_origin() -> None:
    nowgate.endpoint.origin_allowed = lambda *args: True  # type: ignore[assignment]


class _NoHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def no_headers() -> None:
    nowgate.application.SecurityHeadersMiddleware = _NoHeaders  # type: ignore[misc]


def unchecked_tokens() -> None:
    """Tokens are decoded, their signature ignored (`loads_unsafe`)."""

    def verify(self: Any, token: object) -> Any:
        if not isinstance(token, str):
            return None
        serializer: URLSafeTimedSerializer = self._serializer
        try:
            _, payload = serializer.loads_unsafe(token)
        except Exception:
            return None
        return nowgate.identity._claims_from(payload)

    nowgate.identity.IdentitySigner.verify = verify  # type: ignore[method-assign]


def writable_identity() -> None:
    """Policies may open identity fields to clients (tests/fixtures/writable_identity.toml)."""
    nowgate.policy.RESERVED_VARIABLES = frozenset()  # type: ignore[misc]


class _GetattrTable(Mapping[str, Any]):
    """The policy table, falling back to attributes of the handler module (the NowJS flaw)."""

    def __init__(self, table: Mapping[str, Any], module: object) -> None:
        self._table, self._module = table, module

    def __getitem__(self, name: str) -> Any:
        if name in self._table:
            return self._table[name]
        return getattr(self._module, name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except AttributeError:
            return default

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


def getattr_lookup() -> None:
    real = nowgate.policy.load_policy

    def load(path: Path) -> Any:
        policy = real(path)
        module = sys.modules[next(iter(policy.functions.values())).handler.__module__]
        return dataclasses.replace(policy, functions=_GetattrTable(policy.functions, module))

    nowgate.__main__.load_policy = load  # type: ignore[attr-defined]


def lax_validation() -> None:
    """Coercion on, unknown arguments ignored."""
    nowgate.validation.STRICT = ConfigDict(extra="ignore")

    def validate(self: Any, params: Any) -> dict[str, Any]:
        if isinstance(params, list):
            params = dict(zip(self.names, params, strict=False))
        try:
            validated = self.model.model_validate(params)
        except ValidationError as error:
            raise InvalidParams(data=nowgate.validation.cut_errors(error)) from None
        return {name: getattr(validated, name) for name in self.names}

    nowgate.validation.ArgumentValidator.validate = validate  # type: ignore[method-assign]


def echoed_input() -> None:
    """Validation errors carry the input back to the client."""
    nowgate.validation.cut_errors = lambda error: error.errors(  # type: ignore[assignment]
        include_url=False, include_context=False)


class _JoinedFiles:
    """Static files served by joining the decoded request path onto the root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = unquote(scope["raw_path"].decode("latin-1"))
        try:
            body, status = await anyio.Path(f"{self.root}{path}").read_bytes(), 200
        except OSError:
            body, status = b"not found", 404
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})


def joined_paths() -> None:
    nowgate.application.StaticJail = _JoinedFiles  # type: ignore[misc,assignment]


SWITCHES: dict[str, Callable[[], None]] = {
    "origin": any_origin,
    "headers": no_headers,
    "token": unchecked_tokens,
    "identity": writable_identity,
    "method-lookup": getattr_lookup,
    "validation": lax_validation,
    "information-leak": echoed_input,
    "traversal": joined_paths,
}


if __name__ == "__main__":
    for switch in filter(None, sys.argv[1].split(",")):
        SWITCHES[switch]()
    sys.exit(nowgate.__main__.main(sys.argv[2:]))
