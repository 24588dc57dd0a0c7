"""Server->client calls of one connection that still await the client's answer.

They get unguessable ids (so one client cannot answer another's call), are bounded per
connection, and fail when the client disconnects; the hub adds the timeout.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from pydantic import TypeAdapter

from .decode import Response
from .errors import ClientCallError, InvalidParams
from .validation import validate_result


class PendingCalls:
    """The server->client calls of one connection that still await an answer."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._calls: dict[str, tuple[asyncio.Future[Any], TypeAdapter[Any]]] = {}

    def open(self, result: TypeAdapter[Any]) -> tuple[str, asyncio.Future[Any]]:
        if len(self._calls) >= self._limit:
            raise ClientCallError("too many calls awaiting this client's answer")
        call_id = secrets.token_urlsafe(16)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = (future, result)
        return call_id, future

    def forget(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    def resolve(self, response: Response) -> bool:
        """Deliver a client's answer; False if no call with that id is pending."""
        entry = self._calls.pop(response.id, None) if isinstance(response.id, str) else None
        if entry is None:
            return False
        future, adapter = entry
        if future.done():
            return True
        if response.error is not None:
            future.set_exception(
                ClientCallError("the client answered with an error", response.error["code"])
            )
            return True
        try:
            future.set_result(validate_result(adapter, response.result))
        except InvalidParams:
            future.set_exception(ClientCallError("the client's answer failed validation"))
        return True

    def fail_all(self, reason: str) -> None:
        for future, _ in self._calls.values():
            if not future.done():
                future.set_exception(ClientCallError(reason))
        self._calls.clear()

    def __len__(self) -> int:
        return len(self._calls)
