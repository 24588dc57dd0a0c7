"""uvicorn's WebSocket protocol, hardened below the gateway's own limits, with direct writes.

Direct writes: through ASGI every message to every receiver is one `send()` coroutine,
framed again by the websockets library: a broadcast to 1,000 clients framed 1,000 times.
This protocol adds itself to the scope's extensions under `DIRECT_WRITES`, so the endpoint
can write the bytes `nowgate.frames` made once. Frames are written whole, so they never
interleave with uvicorn's own pings and close frames; nothing is written after a close frame
was sent or the socket began closing. A connection still open `close_timeout` after uvicorn
began closing it (its client keeps the TCP window shut) is aborted.

Below the message limits, what one client could otherwise exhaust:

- control frames obey backpressure: while the socket's send buffer is above high water the
  connection is not read (a ping flood waits in TCP instead of queueing pongs in memory),
  and a client that keeps its window shut for `ping_timeout` seconds is dropped; a client's
  pings are rate limited (1008);
- a fragmented message is bounded in bytes counting each frame's header (1009), in fragment
  count and in time (1008), so empty continuation frames cannot grow memory forever;
- protocol violations found by websockets or uvicorn (bad frames, invalid UTF-8, oversized
  frames, unexpected continuations, control-frame abuse) become audit events at WARNING,
  never uvicorn's ERROR traceback;
- a lingering close: after a close frame sent for the client's fault the socket is read and
  discarded for a bounded time and number of bytes before it is closed, so that the close
  frame is not destroyed by a TCP reset, and reaches the client through a proxy.

All of it uses uvicorn internals (`WebSocketsSansIOProtocol`, uvicorn >= 0.52.1). They are
feature-detected per connection: if anything is missing the protocol behaves exactly like
uvicorn's own and the endpoint sends through ASGI (`nowgate.direct_writes` is absent).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from asyncio import BaseTransport, TimerHandle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame

from .logs import audit
from .metrics import METRICS

DIRECT_WRITES = "nowgate.direct_writes"

log = logging.getLogger("nowgate.transport")

# What this module reads or overrides of uvicorn's protocol and of websockets' connection.
REQUIRED_ATTRIBUTES = (
    "conn", "queue", "transport", "loop", "frames", "curr_msg_data_type", "read_paused",
    "close_sent", "close_timer", "close_timeout", "disconnected", "writable",
    "handshake_complete",
)
REQUIRED_METHODS = (
    "data_received", "handle_text", "handle_bytes", "handle_cont", "handle_ping",
    "handle_parser_exception", "send_receive_event_to_app", "keepalive_timeout",
    "stop_keepalive", "pause_writing", "resume_writing", "receive", "run_asgi",
    "connection_lost",
)
REQUIRED_CONNECTION = ("fail", "data_to_send", "close_sent")

# Audit events for violations the websockets parser finds, by the close code it chose.
_PARSER_EVENTS = {1002: "bad_frame", 1007: "invalid_utf8", 1009: "frame_too_big"}


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """The limits below the message layer (see `Settings` for what each means)."""

    max_message_bytes: int = 65_536
    max_message_fragments: int = 128
    message_assembly_timeout: float = 10.0
    client_ping_limit: int = 30
    client_ping_window: float = 10.0
    shut_window_timeout: float = 20.0
    linger_timeout: float = 2.0
    linger_max_bytes: int = 32 * 1024 * 1024
    header_read_timeout: float = 10.0
    handshake_timeout: float = 15.0
    max_sockets_per_address: int = 256


class SocketBudget:
    """Open sockets per client address, counted from accept until the socket closes.

    Addresses for which `exempt` is true (the trusted reverse proxies, whose sockets carry
    every client) are not counted.
    """

    def __init__(self, per_address: int, exempt: Callable[[str], bool]) -> None:
        self._per_address = per_address
        self._exempt = exempt
        self._open: dict[str, int] = {}
        self._holders: dict[int, str] = {}

    def admit(self, transport: BaseTransport, address: str) -> bool:
        if self._exempt(address):
            return True
        count = self._open.get(address, 0)
        if count >= self._per_address:
            return False
        self._open[address] = count + 1
        self._holders[id(transport)] = address
        return True

    def release(self, transport: BaseTransport) -> None:
        address = self._holders.pop(id(transport), None)
        if address is None:
            return
        count = self._open[address] - 1
        if count:
            self._open[address] = count
        else:
            del self._open[address]

    def open_from(self, address: str) -> int:
        return self._open.get(address, 0)


class GatewayConfig(uvicorn.Config):
    """uvicorn's configuration, carrying the limits its protocols enforce for the gateway."""

    def __init__(self, app: Any, limits: TransportLimits, budget: SocketBudget, **kwargs: Any):
        super().__init__(app, **kwargs)
        self.transport_limits = limits
        self.socket_budget = budget


def limits_of(config: uvicorn.Config) -> tuple[TransportLimits, SocketBudget | None]:
    if isinstance(config, GatewayConfig):
        return config.transport_limits, config.socket_budget
    return TransportLimits(max_message_bytes=config.ws_max_size), None


def missing_internals(protocol: object) -> list[str]:
    """The uvicorn/websockets internals this module needs that `protocol` lacks."""
    missing = [name for name in REQUIRED_ATTRIBUTES if not hasattr(protocol, name)]
    missing += [name for name in REQUIRED_METHODS if not callable(getattr(protocol, name, None))]
    connection = getattr(protocol, "conn", None)
    missing += [f"conn.{name}" for name in REQUIRED_CONNECTION if not hasattr(connection, name)]
    return missing


_warned_missing: list[bool] = []


def _header_size(payload_length: int) -> int:
    # RFC 6455 5.2: 2 bytes, the extended length (0, 2 or 8 bytes), the 4-byte client mask.
    if payload_length < 126:
        return 6
    return 8 if payload_length < 65_536 else 14


@dataclass(slots=True)
class _Assembly:
    """A fragmented message being received."""

    fragments: int
    wire_bytes: int
    deadline: TimerHandle | None = field(default=None)


class DirectWriteProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits, self._budget = limits_of(self.config)
        missing = missing_internals(self)
        self.hardened = not missing
        if missing and not _warned_missing:
            _warned_missing.append(True)
            log.warning(
                "uvicorn %s lacks %s: direct writes and transport limits are off, "
                "frames go through ASGI", uvicorn.__version__, ", ".join(missing)
            )
        # uvicorn's `writable` Event, as a plain flag: `try_write()` runs once per delivery.
        self.write_paused = False
        self.lingering = False
        self._lingered_bytes = 0
        self._window_timer: TimerHandle | None = None
        self._abort_timer: TimerHandle | None = None
        self._handshake_timer: TimerHandle | None = None
        self._assembly: _Assembly | None = None
        self._pings = 0
        self._ping_window_start = 0.0
        # Resolved by the next bytes from the client: see `answers()`.
        self._heard: asyncio.Future[None] | None = None

    async def answers(self, within: float) -> bool:
        """Ping now: does anything (the pong, any frame) arrive from the client in time?

        Tells a live connection from a half-open one whose peer is gone (its network
        changed) before uvicorn's own keepalive would notice.
        """
        if self.close_sent or self.transport.is_closing():
            return False
        heard = self._heard
        if heard is None:
            heard = self._heard = self.loop.create_future()
        self.conn.send_ping(secrets.token_bytes(4))
        self.transport.write(b"".join(self.conn.data_to_send()))
        try:
            await asyncio.wait_for(asyncio.shield(heard), within)
        except TimeoutError:
            return False
        return True

    # Connection life ------------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._budget is not None:
            self._budget.release(self.transport)
        self._cancel_window_timer()
        self._end_assembly()
        # Timers hold the protocol (and its buffers) alive: a closed socket needs none.
        for timer in (self._abort_timer, self._handshake_timer):
            if timer is not None:
                timer.cancel()
        self._abort_timer = self._handshake_timer = None

    def handshake_deadline(self, delay: float) -> None:
        """Drop the socket if the WebSocket handshake is not answered within `delay`."""
        self._handshake_timer = self.loop.call_later(delay, self._handshake_late)

    def _handshake_late(self) -> None:
        self._handshake_timer = None
        if not (self.handshake_complete or self.disconnected):
            audit("handshake_timeout", address=self._address())
            self.transport.abort()

    async def run_asgi(self) -> None:
        if not self.hardened:
            await super().run_asgi()
            return
        extensions = cast(dict[str, Any], self.scope["extensions"])
        extensions[DIRECT_WRITES] = self
        try:
            await super().run_asgi()
        finally:
            del extensions[DIRECT_WRITES]  # no reference cycle through the scope
            # uvicorn closes the transport at most `close_timeout` after the close frame.
            self._abort_later(self.close_timeout + 1.0)

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        if self.hardened:
            self._abort_later(self.close_timeout)

    def _abort_later(self, delay: float) -> None:
        # `transport.close()` waits for the send buffer to empty, which a client that keeps
        # its TCP window shut never lets happen: give it `delay` seconds, then drop it.
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        self._abort_timer = self.loop.call_later(delay, self._abort_if_connected)

    def _abort_if_connected(self) -> None:
        self._abort_timer = None
        if not self.disconnected:
            self.transport.abort()

    def _address(self) -> str:
        scope = getattr(self, "scope", None)  # after the handshake: the forwarded address
        client = scope.get("client") if scope is not None else self.client
        return str(client[0]) if client else "unknown"

    # Backpressure ---------------------------------------------------------------------

    def pause_writing(self) -> None:
        self.write_paused = True
        super().pause_writing()
        if self.hardened and not self.disconnected:
            # Stop reading: a client that does not read cannot make us queue pongs (or
            # anything else) for it; its frames wait in TCP, which slows it down.
            self.transport.pause_reading()
            if self._window_timer is None:
                self._window_timer = self.loop.call_later(
                    self.limits.shut_window_timeout, self._window_kept_shut
                )

    def resume_writing(self) -> None:
        self.write_paused = False
        super().resume_writing()
        if self.hardened:
            self._cancel_window_timer()
            if not (self.read_paused or self.disconnected or self.transport.is_closing()):
                self.transport.resume_reading()

    async def receive(self) -> Any:
        message = await super().receive()
        # uvicorn resumes reading once the application has taken every message; while the
        # send buffer is above high water it must stay paused.
        if self.write_paused and self.hardened and not self.transport.is_closing():
            self.transport.pause_reading()
        return message

    def _window_kept_shut(self) -> None:
        self._window_timer = None
        if self.disconnected:
            return
        audit("send_window_shut", address=self._address())
        METRICS.closes.labels("1006").inc()  # what the client sees: no close frame
        self.transport.abort()

    def _cancel_window_timer(self) -> None:
        if self._window_timer is not None:
            self._window_timer.cancel()
            self._window_timer = None

    def try_write(self, data: bytes) -> bool:
        """Write now, unless the socket is closing or its send buffer is above high water."""
        if self.close_sent or self.write_paused or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    async def drained(self) -> bool:
        """Wait until the send buffer is below low water; False if the socket is closing."""
        await self.writable.wait()
        return not (self.close_sent or self.transport.is_closing())

    def abort(self) -> None:
        """Drop the connection and whatever its buffers hold."""
        self.transport.abort()

    # Reading --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        heard = self._heard
        if heard is not None:
            self._heard = None
            if not heard.done():
                heard.set_result(None)
        if self.lingering:
            # Read and discard, so the close frame is not lost to a reset; bounded.
            self._lingered_bytes += len(data)
            if self._lingered_bytes > self.limits.linger_max_bytes:
                self._end_linger()
            return
        super().data_received(data)

    def handle_ping(self) -> None:
        if not self.hardened:
            super().handle_ping()
            return
        if self.lingering:
            return
        now = self.loop.time()
        if now - self._ping_window_start >= self.limits.client_ping_window:
            self._ping_window_start, self._pings = now, 0
        self._pings += 1
        if self._pings > self.limits.client_ping_limit:
            self._fail(1008, "Too many pings", "ping_flood")
            return
        super().handle_ping()

    def handle_text(self, event: Frame) -> None:
        self._start_message(event)
        if not self.lingering:
            super().handle_text(event)

    def handle_bytes(self, event: Frame) -> None:
        self._start_message(event)
        if not self.lingering:
            super().handle_bytes(event)

    def handle_cont(self, event: Frame) -> None:
        if self.lingering:
            return
        assembly = self._assembly
        if self.hardened and assembly is not None:
            assembly.fragments += 1
            assembly.wire_bytes += len(event.data) + _header_size(len(event.data))
            if assembly.wire_bytes > self.limits.max_message_bytes:
                self._fail(1009, "Message too big", "message_too_big")
                return
            if assembly.fragments > self.limits.max_message_fragments:
                self._fail(1008, "Too many fragments", "fragment_flood")
                return
        super().handle_cont(event)

    def _start_message(self, event: Frame) -> None:
        self._end_assembly()
        if self.hardened and not event.fin and not self.lingering:
            self._assembly = _Assembly(1, len(event.data) + _header_size(len(event.data)))
            self._assembly.deadline = self.loop.call_later(
                self.limits.message_assembly_timeout, self._assembly_too_slow
            )

    def _assembly_too_slow(self) -> None:
        if self._assembly is not None and not self.lingering and not self.disconnected:
            self._fail(1008, "Message not completed in time", "fragment_timeout")

    def _end_assembly(self) -> None:
        if self._assembly is not None:
            if self._assembly.deadline is not None:
                self._assembly.deadline.cancel()
            self._assembly = None

    def send_receive_event_to_app(self) -> None:
        self._end_assembly()
        if not self.hardened or self.curr_msg_data_type != "text" or self.close_sent:
            super().send_receive_event_to_app()
            return
        # uvicorn's own version logs invalid UTF-8 with an ERROR traceback: a line any
        # client could write at will. It is the client's fault, audited like the others.
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self._fail(1007, "Invalid UTF-8", "invalid_utf8")
            return
        self.queue.put_nowait({"type": "websocket.receive", "text": text})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    # Closing for the client's fault ---------------------------------------------------

    def handle_parser_exception(self) -> None:
        if not self.hardened:
            super().handle_parser_exception()
            return
        close = self.conn.close_sent
        code = close.code if close is not None else 1006
        reason = close.reason if close is not None else ""
        audit(_PARSER_EVENTS.get(code, "protocol_error"), address=self._address(), code=code)
        METRICS.closes.labels(str(code)).inc()
        self._linger(code, reason)

    def _fail(self, code: int, reason: str, event: str) -> None:
        audit(event, address=self._address(), code=code)
        METRICS.closes.labels(str(code)).inc()
        if not self.close_sent:
            self.conn.fail(code, reason)  # the close frame; websockets now discards input
        self._linger(code, reason)

    def _linger(self, code: int, reason: str) -> None:
        """Send what is pending (the close frame), then read and discard for a bounded time
        and number of bytes before closing: closing with unread data makes the kernel send
        a reset, which destroys the close frame in flight (and a proxy's copy of it)."""
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.lingering = True
        self.frames = []
        self.stop_keepalive()
        self._end_assembly()
        if self.read_paused:
            self.read_paused = False
        if not self.write_paused:
            self.transport.resume_reading()
        if self.close_timer is not None:
            self.close_timer.cancel()
        # uvicorn closes the socket when the application returns, unless a close timer runs.
        self.close_timer = self.loop.call_later(self.limits.linger_timeout, self._end_linger)

    def _end_linger(self) -> None:
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        if not self.disconnected:
            self.transport.close()
            self._abort_later(self.close_timeout)
