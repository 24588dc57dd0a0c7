"""Peer (b): python-socketio (asyncio, ASGI) on uvicorn: the same relay as the drag demo.

`syncPosition(position)` with an acknowledgement: the server emits `updatePosition` to every
other client (skip_sid) and acknowledges with `true`. No validation or limits. Runs on the
same uvicorn, websockets and uvicorn settings as nowgate, from bench/.venv:

    bench/.venv/bin/python bench/peers/socketio_server.py --port 8002
"""

from __future__ import annotations

import argparse
from typing import Any

import socketio
import uvicorn

sio = socketio.AsyncServer(async_mode="asgi", transports=["websocket"], cors_allowed_origins=[])
app = socketio.ASGIApp(sio)


@sio.event
async def syncPosition(sid: str, position: Any) -> bool:
    await sio.emit("updatePosition", position, skip_sid=sid)
    return True


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        ws_max_size=65_536,
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        server_header=False,
        log_level="warning",
        access_log=False,
    )
