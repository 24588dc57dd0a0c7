"""The recovery history's bounds and filters (nowgate.history), with a hand-driven clock."""

from __future__ import annotations

from nowgate.history import MemoryHistory, with_seq


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def history(size: int = 100, max_bytes: int = 1 << 20, seconds: float = 60.0) -> tuple[
    MemoryHistory, Clock
]:
    clock = Clock()
    return MemoryHistory(size, max_bytes, seconds, clock), clock


def test_with_seq_adds_a_member_to_the_object() -> None:
    assert with_seq('{"jsonrpc":"2.0","method":"m","params":[1]}', 7) == (
        '{"jsonrpc":"2.0","method":"m","params":[1],"seq":7}'
    )


def test_replay_is_in_order_after_the_position_and_only_what_concerns_the_client() -> None:
    h, _ = history()
    first = h.record('{"a":1}')
    h.record('{"b":2}', client="c-other")
    h.record('{"c":3}', group="red")
    h.record('{"d":4}', without="c-me")
    h.record('{"e":5}', client="c-me")
    h.record('{"f":6}', group="blue")
    replay = h.replay(h.epoch, first, "c-me", frozenset({"red"}), limit=10)
    assert replay.recovered
    assert replay.messages == ['{"c":3,"seq":3}', '{"e":5,"seq":5}']


def test_entries_older_than_the_age_bound_are_gone() -> None:
    h, clock = history(seconds=60.0)
    start = h.record('{"a":1}')
    clock.now += 61
    assert h.replay(h.epoch, start - 1, "c-me", frozenset(), 10).reason == "expired"
    assert h.replay(h.epoch, start, "c-me", frozenset(), 10).recovered  # nothing missed


def test_the_byte_bound_evicts_the_oldest() -> None:
    h, _ = history(max_bytes=20)
    h.record('{"a":"0123456789"}')  # 18 bytes
    second = h.record('{"b":"0123456789"}')
    assert h.replay(h.epoch, 0, "c-me", frozenset(), 10).reason == "expired"
    assert h.replay(h.epoch, second - 1, "c-me", frozenset(), 10).messages == [
        '{"b":"0123456789","seq":2}'
    ]


def test_the_count_bound_and_the_replay_limit() -> None:
    h, _ = history(size=3)
    for number in range(5):
        h.record(f'{{"n":{number}}}')
    assert h.replay(h.epoch, 1, "c-me", frozenset(), 10).reason == "expired"
    assert h.replay(h.epoch, 2, "c-me", frozenset(), 10).recovered
    assert h.replay(h.epoch, 2, "c-me", frozenset(), 2).reason == "too_many"


def test_size_zero_turns_recovery_off() -> None:
    h, _ = history(size=0)
    h.record('{"a":1}')
    assert h.replay(h.epoch, 0, "c-me", frozenset(), 10).reason == "disabled"
