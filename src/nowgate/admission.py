"""Sockets before the WebSocket handshake: counted per address from accept, and timed.

uvicorn keeps a connection that sends partial headers, a partial upgrade or nothing at all
open indefinitely (its keep-alive timeout stops at the first byte), and no per-address limit
sees a socket before its handshake completes. A few thousand such sockets from one address
exhaust the server's file descriptors. This HTTP protocol (uvicorn's httptools one) adds:

- a cap on open sockets per client address, counted from accept until the socket closes
  (through the WebSocket protocol it upgrades to); past it the socket is dropped at once;
- a header read timeout: a request's headers must arrive within `header_read_timeout`
  seconds of the connection (or of the previous response);
- a handshake deadline: a WebSocket upgrade must be accepted or refused within
  `handshake_timeout` seconds of accept (enforced by the WebSocket protocol it becomes).

Behind a reverse proxy every socket comes from the proxy: the trusted proxies' addresses are
not counted (the proxy's own limits apply to its clients).
"""

from __future__ import annotations

import asyncio
from asyncio import TimerHandle
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .logs import audit
from .transport import DirectWriteProtocol, limits_of


class AdmissionProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits, self._budget = limits_of(self.config)
        self._header_timer: TimerHandle | None = None
        self._accepted_at = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else "unknown"
        if self._budget is not None and not self._budget.admit(transport, address):
            audit("socket_limit", address=address)
            transport.abort()
            return
        self._accepted_at = self.loop.time()
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._budget is not None:
            self._budget.release(self.transport)
        self._cancel_header_timer()

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        # The WebSocket protocol now owns the socket and the rest of the handshake deadline;
        # this protocol is dropped (a timer would keep it, and its parser, alive).
        self._cancel_header_timer()
        upgraded = self.transport.get_protocol()
        if isinstance(upgraded, DirectWriteProtocol):
            elapsed = self.loop.time() - self._accepted_at
            upgraded.handshake_deadline(max(self._limits.handshake_timeout - elapsed, 0.0))

    def send_400_response(self, msg: str) -> None:
        # uvicorn logs each unparsable request at WARNING (filtered in nowgate.logs): an
        # attacker would choose how fast the log grows. Audited, aggregated per address.
        audit("bad_http_request", address=self.client[0] if self.client else "unknown")
        super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # the next request on this keep-alive connection

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(
            self._limits.header_read_timeout, self._headers_late
        )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.get_protocol() is self and not self.transport.is_closing():
            audit("header_timeout", address=self.client[0] if self.client else "unknown")
            self.transport.abort()
