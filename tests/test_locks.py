"""Leases in one process (`ctx.lock`): one holder, renewal, expiry, release by the holder only.

The cluster's Redis leases are exercised by tests/cluster/test_cluster.py (the drag lock).
"""

from __future__ import annotations

import asyncio

import pytest

from nowgate.locks import Lease, Locks


async def test_one_holder_at_a_time_renewal_and_release_by_the_holder_only() -> None:
    locks = Locks(None)
    alice, bob = Lease(locks, "drag", "c-alice", 5), Lease(locks, "drag", "c-bob", 5)
    assert await alice.acquire() is True
    assert await bob.acquire() is False
    assert await alice.acquire() is True  # renewed by its holder
    assert await bob.holder() == "c-alice"
    assert await bob.release() is False  # not the holder: nothing changes
    assert await alice.holder() == "c-alice"
    assert await alice.release() is True
    assert await bob.acquire() is True


async def test_a_lease_ends_by_itself_unless_renewed() -> None:
    locks = Locks(None)
    assert await Lease(locks, "drag", "c-gone", 0.05).acquire() is True
    await asyncio.sleep(0.1)
    assert await Lease(locks, "drag", "c-next", 5).holder() is None
    assert await Lease(locks, "drag", "c-next", 5).acquire() is True


def test_names_and_durations_are_checked() -> None:
    locks = Locks(None)
    for name in ("", "__class__", "a b", "x" * 200):
        with pytest.raises(ValueError):
            Lease(locks, name, "c-1", 1)
    for seconds in (0, -1, float("nan"), 1e9):
        with pytest.raises(ValueError):
            Lease(locks, "drag", "c-1", seconds)
