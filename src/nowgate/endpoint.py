"""The WebSocket route: the only code that awaits the socket.

Three tasks per connection: the reader (frames -> session), the writer (outbox -> socket)
and the session's worker (calls, in order). Whichever of reader and writer ends first ends
the connection; the session then cleans up. Under `nowgate.server` the outbox writes to the
socket itself (`nowgate.fanout`), and the writer only steps in when the socket is backed up
and to send the close frame.

The frame-size, compression and ping limits are the server's to apply, before a frame
reaches any application: `nowgate.server` configures uvicorn with them and marks each
WebSocket scope with `LIMITS_APPLIED`. Under any other server (`uvicorn mymodule:app` gets
16 MiB frames and permessage-deflate), production mode refuses the handshake and logs how
to run the gateway; development mode serves it and warns once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import MutableMapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from .auth import Handshake
from .errors import NormalClosure, PolicyViolation, UnsupportedData
from .fanout import FrameSink, Outbox
from .hub import Hub
from .logs import audit
from .metrics import METRICS
from .origin import origin_allowed, own_origin
from .session import Session, State
from .transport import DIRECT_WRITES, DirectWriteProtocol

log = logging.getLogger("nowgate.endpoint")

WRITER_FLUSH_SECONDS = 2.0
STALLED_POLL_SECONDS = 0.5
# The scope extension `nowgate.server` adds: this server applies the gateway's limits.
LIMITS_APPLIED = "nowgate.limits_applied"
HOW_TO_RUN = (
    "run the gateway with `nowgate serve`, or your application with "
    "`nowgate.serve(app, gateway, host, port)`, which configure uvicorn with the gateway's "
    "frame-size, compression and ping limits"
)
_logged: set[str] = set()


async def websocket_endpoint(websocket: WebSocket, hub: Hub) -> None:
    settings = hub.settings
    address = websocket.client.host if websocket.client else "unknown"
    if LIMITS_APPLIED not in (websocket.scope.get("extensions") or {}):
        if settings.mode == "production":
            _log_once(
                logging.ERROR,
                "production mode refuses WebSockets from a server that does not apply the "
                "gateway's limits (uvicorn's defaults: 16 MiB frames, permessage-deflate): "
                + HOW_TO_RUN,
            )
            await websocket.close(code=1008)  # before accept(): the handshake gets HTTP 403
            return
        _log_once(
            logging.WARNING,
            "this server does not apply the gateway's WebSocket limits: "
            + HOW_TO_RUN + " (production mode refuses such connections)",
        )
    origin = websocket.headers.get("origin")
    # The scheme is the one uvicorn derived (from X-Forwarded-Proto only behind a trusted
    # proxy); the Host header is the one the browser put beside Origin.
    same_origin = own_origin(websocket.scope["scheme"], websocket.headers.get("host"))
    # Every handshake counts against the address's budget, refused ones included.
    retry_after = await hub.limiter.retry_after(hub.connect_rate, "connect", address)
    if not origin_allowed(
        origin, settings.allowed_origins, same_origin, settings.missing_origin_allowed
    ):
        audit("origin_refused", address=address)
        await websocket.close(code=1008)  # before accept(): the handshake gets HTTP 403
        return
    if hub.connections.draining:
        await websocket.close(code=1013)
        return
    await websocket.accept()
    if retry_after is not None:
        METRICS.rate_limited.labels("connect").inc()
        METRICS.closes.labels("1013").inc()
        audit("connect_rate_limited", address=address)
        await websocket.close(1013, "Too many connections from this address")
        return

    sink = (websocket.scope.get("extensions") or {}).get(DIRECT_WRITES)
    if not isinstance(sink, FrameSink):
        sink = None
    outbox = Outbox(settings.send_queue_limit, sink, hub.flusher)
    # The headers object is kept as it is (no copy per connection); cookies are parsed only
    # for an authentication hook, the one reader of the handshake.
    cookies = dict(websocket.cookies) if hub.policy.authenticate is not None else {}
    session = Session(
        hub,
        Handshake(address, websocket.headers, cookies),
        outbox,
        own_worker=True,
        probe=sink.answers if isinstance(sink, DirectWriteProtocol) else None,
    )
    writer = asyncio.create_task(
        _write(websocket, outbox)
        if sink is None
        else _write_stalled(websocket, outbox, sink, settings.ping_timeout)
    )
    try:
        # Whoever closes (the client, the session, or the writer's close frame answered by
        # the client), the reader ends; then the writer flushes what is queued.
        await _read(websocket, session, settings.hello_timeout)
        if not outbox.closing:
            outbox.close(NormalClosure())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(writer), WRITER_FLUSH_SECONDS)
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await session.finish()


def _log_once(level: int, message: str) -> None:
    """Once per process: every refused handshake would flood the log with the same advice."""
    if message not in _logged:
        _logged.add(message)
        log.log(level, message)


async def _read(websocket: WebSocket, session: Session, hello_timeout: float) -> None:
    try:
        try:
            first = await asyncio.wait_for(websocket.receive(), hello_timeout)
        except TimeoutError:
            session.close(PolicyViolation("No now.hello in time"))
            return
        text = _text_of(first, session)
        if text is None:
            return
        await session.hello(text)
        while session.state is State.OPEN:
            text = _text_of(await websocket.receive(), session)
            if text is None:
                return
            await session.receive(text)
    except WebSocketDisconnect:
        return


def _text_of(message: MutableMapping[str, Any], session: Session) -> str | None:
    """The text of a frame; None (the connection is ending) for a disconnect or binary frame."""
    if message["type"] == "websocket.disconnect":
        session.state = State.CLOSED
        return None
    text = message.get("text")
    if isinstance(text, str):
        return text
    session.close(UnsupportedData())
    return None


async def _write(websocket: WebSocket, outbox: Outbox) -> None:
    """Through ASGI, a frame at a time: any ASGI server."""
    try:
        while batch := await outbox.next_batch():
            for text in batch:
                await websocket.send_text(text)
            del batch, text  # an idle connection holds no frames while it waits
        await _close(websocket, outbox)
    except (WebSocketDisconnect, RuntimeError, OSError):
        # The peer is gone (or the socket already closed): nothing left to deliver.
        return


async def _write_stalled(
    websocket: WebSocket, outbox: Outbox, sink: FrameSink, close_timeout: float
) -> None:
    """With direct writes the outbox writes itself; this task only waits out a full socket
    buffer, and sends the close frame."""
    try:
        while True:
            await outbox.stalled()
            if not await _drained(outbox, sink, close_timeout):
                return
            outbox.flush()
            if outbox.closing:
                # uvicorn's close waits for the socket without a limit: drain it here first.
                if await _drained(outbox, sink, close_timeout):
                    await _close(websocket, outbox)
                return
    except (WebSocketDisconnect, RuntimeError, OSError):
        return


async def _drained(outbox: Outbox, sink: FrameSink, close_timeout: float) -> bool:
    """Wait for the socket to take data again; False if it closed or was given up on.

    A client that is being closed and takes no data for `close_timeout` seconds would not
    read its close frame either (a zero TCP window can be held forever): the connection is
    aborted, which frees its buffers and ends the session.
    """
    closing_for = 0.0
    while True:
        try:
            return await asyncio.wait_for(sink.drained(), STALLED_POLL_SECONDS)
        except TimeoutError:
            if not outbox.closing:
                continue
            closing_for += STALLED_POLL_SECONDS
            if closing_for >= close_timeout:
                METRICS.closes.labels("1006").inc()  # what the client sees: no close frame
                log.info("a client being closed took no data for %g s: aborted", closing_for)
                sink.abort()
                return False


async def _close(websocket: WebSocket, outbox: Outbox) -> None:
    error = outbox.close_error or NormalClosure()
    METRICS.closes.labels(str(error.close_code)).inc()
    await websocket.close(error.close_code, error.reason)
