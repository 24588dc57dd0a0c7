"""A TCP relay between a client and a gateway that a test can cut like a dead network."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType


class Relay:
    """Forwards 127.0.0.1:<port> to the target; `cut()` drops every connection without a
    close frame or FIN (transport.abort() on both sides) and refuses new ones until `heal()`.
    `black_hole()` drops the client's side only and keeps the gateway's side open and
    silent: a half-open connection, as when the client's network changed."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = 0
        self.accepted = 0
        self._refusing = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self._links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._stranded: list[asyncio.StreamWriter] = []

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.cut()
        for writer in self._stranded:
            writer.transport.abort()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for pipe in list(self._pipes):
            pipe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pipe

    def cut(self) -> None:
        self._refusing = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        self._links.clear()

    def black_hole(self) -> None:
        """Client sides aborted; gateway sides kept open, unread, and never written to."""
        for pipe in list(self._pipes):
            pipe.cancel()  # a cancelled pipe leaves both sockets as they are
        for client_side, gateway_side in self._links:
            client_side.transport.abort()
            gateway_side.transport.pause_reading()
            self._writers.difference_update((client_side, gateway_side))
            self._stranded.append(gateway_side)
        self._links.clear()

    def heal(self) -> None:
        self._refusing = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.host, self.target_port
            )
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        self._writers.update((writer, upstream_writer))
        self._links.append((writer, upstream_writer))
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        if not sink.transport.is_closing():
            sink.close()
        self._writers.discard(sink)
