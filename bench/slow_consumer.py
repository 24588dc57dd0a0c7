"""A subscriber that completes its handshake and then never reads (the slow-consumer case).

Standard library only. The socket's receive buffer and MSS are made tiny before connecting, so
the server's sends back up after ~60 KiB instead of filling megabytes of loopback buffer.
Prints `ready` once subscribed; on SIGTERM (or after --seconds) it reads what the server
left in the socket and prints one JSON line: frames received, and the close code if the
server closed the connection.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import struct
import sys
import time
from urllib.parse import urlsplit


def frame(text: str) -> bytes:
    """A masked client text frame."""
    payload = text.encode()
    mask = os.urandom(4)
    head = bytes([0x81])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def parse_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    frames = []
    while len(data) >= 2:
        opcode, length, offset = data[0] & 0x0F, data[1] & 0x7F, 2
        if length == 126:
            if len(data) < 4:
                break
            length, offset = struct.unpack("!H", data[2:4])[0], 4
        elif length == 127:
            if len(data) < 10:
                break
            length, offset = struct.unpack("!Q", data[2:10])[0], 10
        if len(data) < offset + length:
            break
        frames.append((opcode, data[offset : offset + length]))
        data = data[offset + length :]
    return frames, data


def handshake(sock: socket.socket, host: str, target: str, origin: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        + (f"Origin: {origin}\r\n" if origin else "")
        + "\r\n"
    )
    sock.sendall(request.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("handshake refused")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise SystemExit(f"handshake refused: {head[:80]!r}")
    return rest


def read_until(sock: socket.socket, buffer: bytes, marker: bytes) -> bytes:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        frames, rest = parse_frames(buffer)
        if any(marker in payload for _, payload in frames):
            return rest
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("closed during subscription")
        buffer += chunk
    raise SystemExit("no subscription answer in time")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--proto", choices=["jsonrpc", "socketio"], required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--origin", default="")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rcvbuf", type=int, default=1024)
    parser.add_argument("--mss", type=int, default=88)
    args = parser.parse_args()

    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    sock = socket.socket()
    # A small receive buffer and a small MSS: on loopback the server's send buffer otherwise
    # autotunes to megabytes (64 KiB segments), and nothing would ever back up.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, args.mss)
    sock.connect((host, port))
    sock.settimeout(10)
    if args.proto == "jsonrpc":
        rest = handshake(sock, f"{host}:{port}", url.path or "/ws", args.origin)
        sock.sendall(
            frame('{"jsonrpc":"2.0","id":1,"method":"now.hello","params":'
                  '{"protocol":1,"token":null}}')
        )
        read_until(sock, rest, b'"result"')
    else:
        rest = handshake(sock, f"{host}:{port}", "/socket.io/?EIO=4&transport=websocket", "")
        rest = read_until(sock, rest, b"0{")  # engine.io open
        sock.sendall(frame("40"))
        read_until(sock, rest, b"40")  # socket.io namespace connected
    print("ready", flush=True)

    stop = False

    def on_term(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    deadline = time.monotonic() + args.seconds
    while not stop and time.monotonic() < deadline:
        time.sleep(0.05)

    # Read what the server left in the socket (bounded), to see whether it closed us.
    received, close_code, data = 0, None, b""
    sock.settimeout(0.5)
    until = time.monotonic() + 3
    try:
        while time.monotonic() < until:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
            frames, data = parse_frames(data)
            for opcode, payload in frames:
                if opcode == 0x8:
                    close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                elif opcode == 0x1:
                    received += 1
    except (TimeoutError, OSError):
        pass
    print(json.dumps({"frames_received": received, "close_code": close_code}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
