"""The probe's side of the protocol: one WebSocket at a time, hello, frames and their answers.

`Wire` keeps at most one connection open. `exchange()` sends one frame and waits for the
answer with that frame's id (notifications in between are skipped), or for the connection to
close; either is an `Outcome`, never an exception, because a close is often the defence the
probe is looking for. A closed connection is reopened (with a fresh hello) at the next
exchange, within the budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Origin

from .budget import Budget, ProbeStopped

# Large enough for any error reply; a server that answers more is itself odd.
MAX_REPLY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    ws_url: str
    origin: str | None
    ssl_context: ssl.SSLContext | None
    timeout: float


@dataclass(frozen=True)
class Outcome:
    """What came back for one frame: an answer, a close (code, reason), or nothing in time."""

    sent: str
    reply: dict[str, Any] | None = None
    close_code: int | None = None
    close_reason: str = ""
    timed_out: bool = False

    @property
    def closed(self) -> bool:
        return self.close_code is not None

    @property
    def error_code(self) -> int | None:
        error = (self.reply or {}).get("error")
        return error.get("code") if isinstance(error, dict) else None

    @property
    def has_result(self) -> bool:
        return self.reply is not None and "result" in self.reply

    def received(self) -> str:
        if self.reply is not None:
            return json.dumps(self.reply, ensure_ascii=False)
        if self.closed:
            return f"connection closed ({self.close_code} {self.close_reason})".strip()
        return "no answer in time" if self.timed_out else "nothing"


class Refused(Exception):
    """The handshake was refused with an HTTP status (or the connection could not open)."""

    def __init__(self, status: int | None, detail: str) -> None:
        self.status = status
        super().__init__(detail)


@dataclass(frozen=True)
class Welcome:
    client_id: str
    token: str
    resumed: bool
    functions: tuple[str, ...]
    client_functions: tuple[str, ...]
    raw: dict[str, Any]


def hello_frame(token: str | None = None, **extra: Any) -> str:
    params = {"protocol": 1, "token": token, **extra}
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "now.hello", "params": params})


def parse_welcome(reply: dict[str, Any] | None) -> Welcome | None:
    result = (reply or {}).get("result")
    if not isinstance(result, dict):
        return None
    client_id, token = result.get("client_id"), result.get("token")
    functions, client_functions = result.get("functions"), result.get("client_functions")
    if not (isinstance(client_id, str) and isinstance(token, str)
            and isinstance(functions, list) and isinstance(client_functions, list)):
        return None
    return Welcome(
        client_id=client_id,
        token=token,
        resumed=result.get("resumed") is True,
        functions=tuple(str(name) for name in functions),
        client_functions=tuple(str(name) for name in client_functions),
        raw=result,
    )


class Wire:
    def __init__(self, target: Target, budget: Budget) -> None:
        self.target = target
        self.budget = budget
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(100)
        self.welcome: Welcome | None = None

    async def open_raw(
        self, origin: str | bool | None = True, *, compression: str | None = "deflate"
    ) -> ClientConnection:
        """A new connection (the previous one is closed first); `origin=True`: the target's."""
        await self.close()
        self.budget.connection()
        self.budget.request()
        chosen = self.target.origin if origin is True else origin or None
        try:
            ws = await connect(
                self.target.ws_url,
                origin=Origin(chosen) if isinstance(chosen, str) else None,
                ssl=self.target.ssl_context,
                open_timeout=self.target.timeout,
                close_timeout=1,
                max_size=MAX_REPLY_BYTES,
                compression=compression,
                proxy=None,
                user_agent_header="nowgate-probe",
            )
        except InvalidStatus as error:
            status = error.response.status_code
            if status >= 500:
                self.budget.server_error(f"HTTP {status} on the WebSocket handshake")
            elif status == 429:
                raise ProbeStopped("the server asked the probe to back off (HTTP 429)") from None
            raise Refused(status, f"HTTP {status}") from None
        except (ConnectionRefusedError, ConnectionResetError) as error:
            raise ProbeStopped(f"the connection was refused ({error.strerror})") from None
        except (OSError, WebSocketException, TimeoutError) as error:
            # A failed handshake, TLS error, or a redirect (say to https) it cannot follow.
            raise Refused(None, f"{type(error).__name__}: {error}") from None
        self._ws = ws
        return ws

    async def open(
        self, *, origin: str | bool | None = True, token: str | None = None, **extra: Any
    ) -> Outcome:
        """Connect and say hello; `self.welcome` is set when the answer is a welcome."""
        await self.open_raw(origin)
        self.welcome = None
        outcome = await self._send_and_wait(hello_frame(token, **extra), 1)
        if outcome.close_code == 1013:
            raise ProbeStopped("the server asked the probe to back off (close 1013 at hello)")
        self.welcome = parse_welcome(outcome.reply)
        if self.welcome is None:
            await self.close()
        return outcome

    async def ensure_open(self) -> Welcome:
        if self._ws is None or self.welcome is None:
            outcome = await self.open()
            if self.welcome is None:
                raise ProbeStopped(f"no welcome from the gateway: {outcome.received()}")
        assert self.welcome is not None
        return self.welcome

    def next_id(self) -> int:
        return next(self._ids)

    async def call(self, method: str, params: Any) -> Outcome:
        request_id = self.next_id()
        frame = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        return await self.exchange(json.dumps(frame), request_id)

    async def exchange(self, frame: str, request_id: int | None) -> Outcome:
        """Send one frame on the open session (opening one if needed) and wait for its answer."""
        await self.ensure_open()
        self.budget.request()
        return await self._send_and_wait(frame, request_id)

    async def _send_and_wait(self, frame: str, request_id: int | None) -> Outcome:
        ws = self._ws
        assert ws is not None
        try:
            async with asyncio.timeout(self.target.timeout):
                await ws.send(frame)
                while True:
                    message = json.loads(await ws.recv())
                    if not isinstance(message, dict) or "method" in message:
                        continue  # a notification the server sent meanwhile
                    if message.get("id") in (request_id, None):
                        return self._answered(frame, message)
        except ConnectionClosed as closed:
            return self._closed(frame, closed)
        except TimeoutError:
            self.budget.server_error("no answer in time")
            return Outcome(sent=frame, timed_out=True)
        except ValueError:  # not JSON: the answer itself is reported
            return Outcome(sent=frame, reply={"unparsable": True})

    def _answered(self, frame: str, message: dict[str, Any]) -> Outcome:
        self.budget.healthy_answer()
        return Outcome(sent=frame, reply=message)

    def _closed(self, frame: str, closed: ConnectionClosed) -> Outcome:
        self._ws = None
        self.welcome = None
        code = closed.rcvd.code if closed.rcvd is not None else 1006
        reason = closed.rcvd.reason if closed.rcvd is not None else ""
        if code == 1011:
            self.budget.server_error("close 1011")
        return Outcome(sent=frame, close_code=code, close_reason=reason)

    async def burst(self, frames: list[str]) -> tuple[list[dict[str, Any]], Outcome | None]:
        """Send every frame without waiting, then read answers: (answers, how it ended)."""
        await self.ensure_open()
        self.budget.request(len(frames))
        ws = self._ws
        assert ws is not None
        answers: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(self.target.timeout * 2):
                for frame in frames:
                    await ws.send(frame)
                while len(answers) < len(frames):
                    message = json.loads(await ws.recv())
                    if isinstance(message, dict) and "method" not in message:
                        answers.append(message)
        except ConnectionClosed as closed:
            return answers, self._closed(frames[-1], closed)
        except TimeoutError:
            return answers, Outcome(sent=frames[-1], timed_out=True)
        return answers, None

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        self.welcome = None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), self.target.timeout)
