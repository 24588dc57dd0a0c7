"""Threat: a fragmented message that never ends grows the server's memory forever.

Attack: after the hello, start a text message (FIN clear) and send empty continuation frames
forever, 6 bytes each. The frame-size limit counts payload bytes, which stay at zero, so
every fragment was kept: ~2.8 MiB/s, 200 MiB in 75 s, on a connection that stays open as
long as the client answers pings. Variants: many small fragments under the payload limit,
and a message started and never continued.
Defence (nowgate.transport): a message being assembled is bounded in bytes counting each
frame's header (`max_message_bytes`: 1009), in fragment count (`max_message_fragments`:
1008) and in time (`message_assembly_timeout`: 1008), each audited. Memory per connection is
then bounded by the frame limit; an honest client is unaffected, and an honest fragmented
message within the bounds is delivered.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.conftest import CHAT_POLICY
from tests.support.gateway import Gateway
from tests.support.rawws import CONT, TEXT, RawClient, frame
from tests.support.wire import call, raw_exchange


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    env = {"NOWGATE_MESSAGE_ASSEMBLY_TIMEOUT": "1.5", "NOWGATE_LOG_FORMAT": "json"}
    with Gateway(CHAT_POLICY, env=env) as running:
        yield running


async def _reply(client: RawClient) -> dict[str, object]:
    while True:
        message: dict[str, object] = json.loads((await client.read_frame())[1])
        if "method" not in message:
            return message


async def test_empty_continuation_frames_forever_close_with_1008(gateway: Gateway) -> None:
    async with await RawClient.open(gateway.host, gateway.port) as client:
        await client.send(frame(TEXT, b"", fin=False))
        with_fragments = frame(CONT, b"", fin=False) * 1_000
        try:
            for _ in range(100):  # 100,000 fragments, far past the limit of 128
                await client.send(with_fragments)
        except ConnectionError:
            pass
        assert await client.close_code() == 1008
    assert '"event": "fragment_flood"' in gateway.log


async def test_fragments_whose_headers_exceed_the_frame_limit_close_with_1009(
    gateway: Gateway,
) -> None:
    # 100 fragments of 650 payload bytes: 65,000 bytes of payload, under the 64 KiB payload
    # limit, but 65,800 on the wire with each fragment's 8-byte header.
    async with await RawClient.open(gateway.host, gateway.port) as client:
        data = frame(TEXT, b" " * 650, fin=False) + frame(CONT, b" " * 650, fin=False) * 99
        await client.send(data + frame(CONT, b"1"))
        assert await client.close_code() == 1009
    assert '"event": "message_too_big"' in gateway.log


async def test_a_message_never_finished_closes_with_1008(gateway: Gateway) -> None:
    async with await RawClient.open(gateway.host, gateway.port) as client:
        await client.send(frame(TEXT, b'{"jsonrpc":', fin=False))
        await asyncio.sleep(0.5)
        await client.send(frame(CONT, b'"2.0",', fin=False))  # still trickling
        assert await client.close_code(within=5) == 1008
    assert '"event": "fragment_timeout"' in gateway.log


async def test_an_honest_fragmented_message_is_delivered(gateway: Gateway) -> None:
    text = call("add", [20, 22]).encode()
    pieces = [text[i : i + 4] for i in range(0, len(text), 4)]
    data = frame(TEXT, pieces[0], fin=False)
    data += b"".join(frame(CONT, piece, fin=False) for piece in pieces[1:-1])
    data += frame(CONT, pieces[-1])
    async with await RawClient.open(gateway.host, gateway.port) as client:
        await client.send(data)
        assert (await _reply(client))["result"] == 42
    assert (await raw_exchange(gateway.ws_url, [call("add", [1, 2])]))[0]["result"] == 3
