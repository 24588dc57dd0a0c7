"""nowgate.fanout: bounded per-client outboxes that never wait, and broadcasts encoded once."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from nowgate.errors import PolicyViolation, TryAgainLater
from nowgate.fanout import Flusher, Outbox, encode, fan_out
from nowgate.frames import text_frame
from tests.support.sockets import Socket, next_turn


async def test_frames_come_out_in_the_order_they_were_put() -> None:
    outbox = Outbox(10)
    for index in range(5):
        assert outbox.put(f"frame-{index}")
    assert len(outbox) == 5
    assert await outbox.next_batch() == [f"frame-{index}" for index in range(5)]
    assert len(outbox) == 0


async def test_next_batch_waits_for_the_next_frame() -> None:
    outbox = Outbox(10)
    waiter = asyncio.create_task(outbox.next_batch())
    await asyncio.sleep(0)
    assert not waiter.done()
    outbox.put("late")
    assert await asyncio.wait_for(waiter, 1) == ["late"]


async def test_a_queue_filled_up_to_its_limit_is_still_open() -> None:
    outbox = Outbox(3)
    assert all(outbox.put(str(index)) for index in range(3))
    assert not outbox.closing
    assert await outbox.next_batch() == ["0", "1", "2"]


async def test_overflow_closes_with_try_again_later_and_drops_the_queue() -> None:
    outbox = Outbox(3)
    for index in range(3):
        outbox.put(str(index))
    assert not outbox.put("one too many")
    assert outbox.closing
    assert isinstance(outbox.close_error, TryAgainLater)
    assert outbox.close_error.close_code == 1013
    assert outbox.dropped == 1
    assert len(outbox) == 0
    # An empty batch tells the writer to close now, with close_error.
    assert await outbox.next_batch() == []


async def test_a_put_after_close_is_refused() -> None:
    outbox = Outbox(3)
    outbox.close(PolicyViolation("bye"))
    assert not outbox.put("after")
    assert len(outbox) == 0
    assert await outbox.next_batch() == []


async def test_frames_queued_before_a_close_are_still_delivered() -> None:
    outbox = Outbox(3)
    outbox.put("last words")
    outbox.close(PolicyViolation("bye"))
    assert await outbox.next_batch() == ["last words"]
    assert await outbox.next_batch() == []


async def test_close_wakes_a_waiting_writer() -> None:
    outbox = Outbox(3)
    waiter = asyncio.create_task(outbox.next_batch())
    await asyncio.sleep(0)
    outbox.close(PolicyViolation())
    assert await asyncio.wait_for(waiter, 1) == []


def test_the_first_close_reason_wins() -> None:
    outbox = Outbox(3)
    first = PolicyViolation("too many violations")
    outbox.close(first)
    outbox.close(TryAgainLater())
    assert outbox.close_error is first


def test_fan_out_counts_the_outboxes_that_accepted_the_frame() -> None:
    open_one, full_one, closed_one = Outbox(5), Outbox(1), Outbox(5)
    full_one.put("earlier")
    closed_one.close(PolicyViolation())
    assert fan_out("frame", [open_one, full_one, closed_one]) == 1
    assert len(open_one) == 1
    assert isinstance(full_one.close_error, TryAgainLater)


def test_fan_out_to_nobody_delivers_nothing() -> None:
    assert fan_out("frame", []) == 0


def test_a_slow_reader_does_not_stop_the_others() -> None:
    slow, fast = Outbox(2), Outbox(100)
    delivered = [fan_out(f"m{index}", [slow, fast]) for index in range(10)]
    assert delivered == [2, 2, 1, 1, 1, 1, 1, 1, 1, 1]
    assert len(fast) == 10
    assert slow.closing


async def test_fan_out_delivers_the_encoded_message_to_everyone() -> None:
    first, second = Outbox(5), Outbox(5)
    text = encode({"jsonrpc": "2.0", "method": "m", "params": [1]})
    fan_out(text, [first, second])
    assert await first.next_batch() == await second.next_batch() == [text]


async def test_a_broadcast_is_framed_once_and_the_same_bytes_go_to_every_socket() -> None:
    flusher, sockets = Flusher(), [Socket() for _ in range(3)]
    outboxes = [Outbox(5, socket, flusher) for socket in sockets]
    fan_out(encode({"method": "m"}), outboxes)
    await next_turn()
    [first], [second], [third] = (socket.writes for socket in sockets)
    assert first is second is third
    assert first == text_frame('{"method":"m"}')


async def test_what_one_turn_queued_to_a_client_leaves_in_one_write_in_order() -> None:
    socket = Socket()
    outbox = Outbox(10, socket, Flusher())
    for index in range(4):
        outbox.put(f"m{index}")
    assert socket.writes == []  # nothing before the turn ends
    await next_turn()
    assert socket.writes == [b"".join(text_frame(f"m{index}") for index in range(4))]
    outbox.put("later")
    await next_turn()
    assert socket.writes[1:] == [text_frame("later")]


async def test_a_backed_up_socket_keeps_its_frames_queued_until_it_drains() -> None:
    socket = Socket()
    outbox = Outbox(10, socket, Flusher())
    stalled = asyncio.create_task(outbox.stalled())
    socket.fill()
    outbox.put("first")
    await next_turn()
    assert stalled.done() and socket.writes == [] and len(outbox) == 1
    outbox.put("second")  # queued behind "first", not written ahead of it
    await next_turn()
    assert socket.writes == [] and len(outbox) == 2
    socket.drain()
    assert await socket.drained()
    outbox.flush()
    assert socket.writes == [text_frame("first") + text_frame("second")] and len(outbox) == 0
    outbox.put("third")  # drained: back to writing after the turn
    await next_turn()
    assert socket.writes[1:] == [text_frame("third")]


async def test_a_socket_that_breaks_under_a_write_closes_its_client_only() -> None:
    broken, healthy = Socket(), Socket()

    def explode(data: bytes) -> bool:
        raise OSError("connection reset")

    broken.try_write = explode  # type: ignore[method-assign]
    flusher = Flusher()
    first, second = Outbox(5, broken, flusher), Outbox(5, healthy, flusher)
    fan_out("m", [first, second])
    await next_turn()
    assert healthy.writes == [text_frame("m")]
    assert first.closing and first.close_error is not None
    assert first.close_error.close_code == 1011 and len(first) == 0
    await asyncio.wait_for(first.stalled(), 1)  # its writer wakes to close it


async def test_a_socket_that_stays_backed_up_overflows_its_queue_and_is_closed_1013() -> None:
    socket = Socket()
    socket.fill()
    outbox = Outbox(3, socket, Flusher())
    assert all(outbox.put(f"m{index}") for index in range(3))
    await next_turn()
    assert outbox.put("one too many") is False
    assert isinstance(outbox.close_error, TryAgainLater) and len(outbox) == 0
    await asyncio.wait_for(outbox.stalled(), 1)  # the writer wakes to send the close


class Point(BaseModel):
    x: float
    y: float


@dataclass
class Pair:
    a: int
    b: str


def test_encode_turns_models_and_dataclasses_into_plain_json() -> None:
    text = encode({"params": [Point(x=1, y=2), Pair(1, "b")]})
    assert json.loads(text) == {"params": [{"x": 1.0, "y": 2.0}, {"a": 1, "b": "b"}]}


def test_encode_refuses_values_that_are_not_json() -> None:
    with pytest.raises(TypeError):
        encode({"value": object()})
