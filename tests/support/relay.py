"""A TCP relay between a client and the gateway, whose network the test can break.

- `cut()`: abort both sides of every relayed connection (no close frame, no FIN: RST), as a
  network that died; the gateway and the client each see their connection fail.
- `down` (while true): new connections are accepted and aborted at once, so a client cannot
  get through.
- `black_hole()`: the client's side is aborted but the gateway's side stays open and nothing
  is relayed any more in either direction: a half-open connection, as when the client's
  network changed and the gateway has not noticed yet (its pings go unanswered).
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Relay:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._pumps: set[asyncio.Task[None]] = set()
        self._stranded: list[asyncio.StreamWriter] = []
        self.down = False
        self.port = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
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

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._links.append((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except asyncio.CancelledError:
            return  # the test broke the network: both sides stay as it left them
        except OSError:
            pass
        if not sink.transport.is_closing():
            sink.close()

    def _stop_pumps(self) -> None:
        for task in list(self._pumps):
            task.cancel()

    def cut(self) -> None:
        """The network dies under every relayed connection."""
        self._stop_pumps()
        for client_side, gateway_side in self._links:
            client_side.transport.abort()
            gateway_side.transport.abort()
        self._links.clear()

    def black_hole(self) -> None:
        """The client is gone, but the gateway's connection stays open and silent."""
        self._stop_pumps()
        for client_side, gateway_side in self._links:
            client_side.transport.abort()
            gateway_side.transport.pause_reading()
            self._stranded.append(gateway_side)
        self._links.clear()
