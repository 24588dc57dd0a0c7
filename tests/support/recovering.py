"""A raw client of the recovery extension (docs/protocol.md), frame by frame.

It does what a client must: opt in with `recover` in the hello; advance its position with
the `seq` of each message it processes; take the welcome's `recovery` epoch and seq as its
position once it processed the `replayed` messages that follow the welcome (at once when
nothing was recovered); store the token of every `now.token`; present token and position on
reconnect. Every notification it processes is kept in `messages`, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

RECORDED = {"message", "now.set", "now.del"}
WAIT_SECONDS = 10.0


class RecoveringClient:
    def __init__(self) -> None:
        self.token: str | None = None
        self.epoch: str | None = None
        self.seq: int | None = None
        self.client_id: str | None = None
        self.welcome: dict[str, Any] = {}
        self.messages: list[tuple[str, Any]] = []
        self.seqs: list[int] = []
        self.close_code: int | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 1
        self._progress = asyncio.Event()  # set whenever a frame was processed
        self._replay_left = 0
        self._after_replay: tuple[str, int] | None = None
        self.failure: AssertionError | None = None

    @property
    def position(self) -> dict[str, Any] | bool:
        if self.epoch is None or self.seq is None:
            return True
        return {"epoch": self.epoch, "seq": self.seq}

    async def connect(
        self, url: str, *, recover: Any = None, token: Any = "", **hello: Any
    ) -> dict[str, Any]:
        """Say hello (with the stored token and position unless given) and read the welcome."""
        if isinstance(recover, dict):
            self.epoch, self.seq = recover["epoch"], recover["seq"]  # a position given
        self._ws = await ws_connect(url, open_timeout=5)
        params = {
            "protocol": 1,
            "token": self.token if token == "" else token,
            "recover": self.position if recover is None else recover,
            **hello,
        }
        await self._ws.send(json.dumps(
            {"jsonrpc": "2.0", "id": 0, "method": "now.hello", "params": params}
        ))
        reply = json.loads(await asyncio.wait_for(self._ws.recv(), 10))
        welcome: dict[str, Any] = reply["result"]
        self.welcome = welcome
        self.client_id = welcome["client_id"]
        self.token = welcome["token"]
        recovery = welcome.get("recovery")
        if recovery is not None:
            self._after_replay = (recovery["epoch"], recovery["seq"])
            self._replay_left = recovery["replayed"]
            if not self._replay_left:
                self.epoch, self.seq = self._after_replay
        self.close_code = None
        self._reader = asyncio.create_task(self._read(self._ws))
        return welcome

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for text in ws:
                self._process(json.loads(text))
        except ConnectionClosed:
            pass
        except AssertionError as error:
            self.failure = error  # raised by the next wait_for()
            await ws.close()
        self.close_code = ws.close_code if ws.close_code is not None else 1006
        self._progress.set()
        for answer in self._answers.values():
            if not answer.done():
                answer.set_exception(ConnectionError("disconnected"))

    def _process(self, message: dict[str, Any]) -> None:
        self._progress.set()
        method = message.get("method")
        if method is None:
            answer = self._answers.pop(message["id"], None)
            if answer is not None and not answer.done():
                answer.set_result(message)
            return
        if method == "now.token":
            self.token = message["params"]["token"]
            return
        if "seq" in message:
            seq = message["seq"]
            assert self.seq is None or seq > self.seq, f"seq {seq} after {self.seq}"
            self.seq = seq
            self.seqs.append(seq)
        if method in RECORDED:
            self.messages.append((method, message["params"]))
        if self._replay_left:
            self._replay_left -= 1
            if not self._replay_left and self._after_replay is not None:
                self.epoch, self.seq = self._after_replay

    async def call(self, method: str, *params: Any) -> Any:
        assert self._ws is not None
        request_id, self._next_id = self._next_id, self._next_id + 1
        answer = asyncio.get_running_loop().create_future()
        self._answers[request_id] = answer
        await self._ws.send(json.dumps(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
        ))
        reply = await asyncio.wait_for(answer, 10)
        assert "error" not in reply, reply
        return reply["result"]

    def texts(self) -> list[str]:
        """The `message` texts processed, in order."""
        return [params[1] for method, params in self.messages if method == "message"]

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_SECONDS):
            while not condition():
                if self.failure is not None:
                    raise self.failure
                self._progress.clear()
                await self._progress.wait()

    async def closed(self) -> int | None:
        assert self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), WAIT_SECONDS)
        return self.close_code

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
