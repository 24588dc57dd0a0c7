"""A WebSocket client at the frame level, for attacks no well-behaved library will send.

It speaks RFC 6455 by hand over a plain socket: any opcode, any FIN bit, reserved bits,
unmasked frames, invalid UTF-8, lengths that lie. `close_code()` reads until the server's
close frame (its code) or the end of the connection (None: no close frame arrived, 1006).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
from typing import Any

from tests.support.wire import HELLO

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 65_536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + _masked(payload, key)


def _masked(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )


def frame_header(opcode: int, length: int, key: bytes = b"\0\0\0\0") -> bytes:
    """The header of a masked frame of `length` bytes (with an all-zero mask, so the payload
    can be streamed as is)."""
    first = bytes([0x80 | opcode])
    if length < 126:
        return first + bytes([0x80 | length]) + key
    if length < 65_536:
        return first + bytes([0x80 | 126]) + struct.pack("!H", length) + key
    return first + bytes([0x80 | 127]) + struct.pack("!Q", length) + key


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        path: str = "/ws",
        headers: dict[str, str] | None = None,
        local_address: str | None = None,
        receive_buffer: int | None = None,
        hello: bool = True,
    ) -> RawClient:
        sock = socket.socket()
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        if local_address is not None:
            sock.bind((local_address, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**24)
        client = cls(reader, writer)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        )
        for name, value in (headers or {}).items():
            request += f"{name}: {value}\r\n"
        try:
            writer.write((request + "\r\n").encode())
            status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            if not status.startswith(b"HTTP/1.1 101"):
                raise ConnectionError(status.split(b"\r\n")[0].decode())
            if hello:
                await client.send(frame(TEXT, HELLO.encode()))
                opcode, _ = await client.read_frame()
                assert opcode == TEXT
        except BaseException:
            client.close()
            raise
        return client

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_frame(self, within: float = 5.0) -> tuple[int, bytes]:
        head = await asyncio.wait_for(self.reader.readexactly(2), within)
        length = head[1] & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return head[0] & 0x0F, await self.reader.readexactly(length)

    async def close_code(self, within: float = 10.0) -> int | None:
        """The code of the server's close frame; None if the connection ended without one."""
        deadline = asyncio.get_running_loop().time() + within
        try:
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                opcode, payload = await self.read_frame(max(remaining, 0.01))
                if opcode == CLOSE:
                    code: int = struct.unpack("!H", payload[:2])[0] if payload else 1005
                    return code
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def ended(self, within: float) -> bool:
        """Whether the server ends the connection (close frame, EOF or reset) in time."""
        try:
            while True:
                data = await asyncio.wait_for(self.reader.read(65_536), within)
                if not data:
                    return True
        except ConnectionError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.transport.abort()
        self.writer.close()

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


def rss_kib(pid: int) -> int:
    """Resident memory of a process (Linux /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")
