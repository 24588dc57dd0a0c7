"""Threat: frames that break RFC 6455 below the gateway write ERROR tracebacks at will.

Attack: a TEXT frame that is not valid UTF-8 (uvicorn logged `ERROR ... Invalid UTF-8
sequence received from client` with a full traceback, once per connection, and nothing
reached the audit stream), reserved bits, unmasked frames, unknown opcodes, oversized or
fragmented control frames, continuation frames with no message to continue, frames over the
size limit. Operators alert on ERROR tracebacks: an attacker controlled one.
Defence: nowgate.transport closes each with the RFC's code (1007, 1002, 1009), records an
audit event (WARNING, no traceback) and the security-events metric, and keeps uvicorn's and
websockets' loggers free of ERROR lines for anything a client causes. The project's fuzzing
and attack corpora (malformed frames, the error paths, the path-traversal corpus, garbage
HTTP) are then replayed against the same gateway and its log is checked for ERROR/Traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import CHAT_POLICY
from tests.security.test_path_traversal import CORPUS as TRAVERSAL_CORPUS
from tests.security.test_request_ids import ERROR_PATHS
from tests.support.gateway import Gateway
from tests.support.rawws import BINARY, CLOSE, CONT, PING, PONG, TEXT, RawClient, frame
from tests.support.wire import call, raw_exchange

VIOLATIONS: dict[str, tuple[bytes, int, str]] = {
    "invalid-utf8": (frame(TEXT, b'{"a":"\xff\xfe"}'), 1007, "invalid_utf8"),
    "invalid-utf8-fragmented": (
        frame(TEXT, b'{"a":"\xe2', fin=False) + frame(CONT, b'\x28\xa1"}'), 1007, "invalid_utf8"
    ),
    "reserved-bits": (frame(TEXT, b"{}", rsv=0b100), 1002, "bad_frame"),
    "unmasked": (frame(TEXT, b"{}", mask=False), 1002, "bad_frame"),
    "unknown-opcode": (frame(0x3, b"x"), 1002, "bad_frame"),
    "long-ping": (frame(PING, b"p" * 126), 1002, "bad_frame"),
    "fragmented-ping": (frame(PING, b"p", fin=False), 1002, "bad_frame"),
    "bad-close-code": (frame(CLOSE, b"\x03\xe7"), 1002, "bad_frame"),
    "unexpected-continuation": (frame(CONT, b"x"), 1002, "bad_frame"),
    "new-message-inside-another": (
        frame(TEXT, b"[", fin=False) + frame(TEXT, b"]"), 1002, "bad_frame"
    ),
    "oversized-frame": (frame(TEXT, b" " * 70_000), 1009, "frame_too_big"),
    "oversized-binary": (frame(BINARY, b"\0" * 70_000), 1009, "frame_too_big"),
}


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with Gateway(CHAT_POLICY, env={"NOWGATE_LOG_FORMAT": "json"}) as running:
        yield running


def audit_events(gateway: Gateway) -> list[dict[str, object]]:
    entries = [json.loads(line) for line in gateway.log.splitlines() if line.startswith("{")]
    return [entry for entry in entries if entry.get("logger") == "nowgate.audit"]


def assert_no_error_lines(log: str) -> None:
    assert "Traceback" not in log
    for line in log.splitlines():
        assert '"level": "error"' not in line and " ERROR " not in line, line
        assert '"level": "critical"' not in line, line


@pytest.mark.parametrize("name", VIOLATIONS)
async def test_a_protocol_violation_is_closed_audited_and_never_an_error_line(
    gateway: Gateway, name: str
) -> None:
    data, code, event = VIOLATIONS[name]
    async with await RawClient.open(gateway.host, gateway.port) as client:
        await client.send(data)
        assert await client.close_code() == code
    await asyncio.sleep(0.2)
    assert any(
        entry["event"] == event and entry.get("code") == str(code)
        for entry in audit_events(gateway)
    ), name
    assert_no_error_lines(gateway.log)
    # The gateway still serves everyone else.
    assert (await raw_exchange(gateway.ws_url, [call("add", [1, 2])]))[0]["result"] == 3


async def test_unsolicited_pongs_are_ignored(gateway: Gateway) -> None:
    async with await RawClient.open(gateway.host, gateway.port) as client:
        await client.send(frame(PONG, b"unasked") * 3 + frame(TEXT, call("add", [2, 3]).encode()))
        reply = {"method": "a notification from the connect hook"}
        while "method" in reply:
            reply = json.loads((await client.read_frame())[1])
        assert reply["result"] == 5


def _random_frames(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    frames = []
    for _ in range(count):
        payload = rng.randbytes(rng.randint(0, 300))
        opcode = rng.choice([TEXT, BINARY, CONT, PING, PONG, CLOSE, 0x3, 0xB])
        frames.append(frame(opcode, payload, fin=rng.random() < 0.8, rsv=rng.choice([0, 0, 1])))
    return frames


GARBAGE_HTTP = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40,  # a TLS hello in clear text
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n",  # no key
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 99\r\n\r\n",
    b"GET /\x00\x01 HTTP/1.1\r\n\r\n",
    b"POST /ws HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET / HTTP/9.9\r\n" + b"X: " + b"a" * 70_000 + b"\r\n\r\n",
]


async def test_the_fuzzing_and_attack_corpora_leave_no_error_or_traceback_in_the_log(
    gateway: Gateway,
) -> None:
    # Every malformed frame, one connection each.
    for data in [violation for violation, _, _ in VIOLATIONS.values()] + _random_frames(7, 150):
        try:
            async with await RawClient.open(gateway.host, gateway.port) as client:
                await client.send(data)
                await client.close_code(within=0.5)
        except (ConnectionError, TimeoutError):
            pass  # a frame the gateway accepts (a ping, a pong) leaves it open
    # Every error path of the message layer but a failing handler, whose traceback the
    # operator needs (a bug in server code, not the client's input).
    frames = [text for name, (text, _, _) in ERROR_PATHS.items() if name != "handler-failed"]
    for start in range(0, len(frames), 10):
        await raw_exchange(gateway.ws_url, frames[start : start + 10])
    # Garbage HTTP and WebSocket handshakes.
    for request in GARBAGE_HTTP:
        reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
        writer.write(request)
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.read(1024), 2)
        writer.close()
    # The path-traversal corpus.
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=5) as http:
        for path in TRAVERSAL_CORPUS:
            await http.get("/" + path.lstrip("/"))
    await asyncio.sleep(0.5)
    assert (await raw_exchange(gateway.ws_url, [call("add", [4, 4])]))[0]["result"] == 8
    assert_no_error_lines(gateway.log)
