"""Threat: reading other identities' or groups' messages through missed-message recovery.

Attack: the position a client presents in its hello (`recover: {"epoch", "seq"}`) names a
point in the node's one history of everything it sent, and numbers are visible to every
opted-in client. A client presents a position from before messages sent to another client
or to a group it is not in, or no token at all, or a made-up number, or joins a group to
read what the group was told before it joined, or keeps a stale token to read what a group
was told after it left.

Defence: the position only says where to start. What is replayed is chosen by the identity
the signed token proves (a fresh identity gets nothing) and by the groups that identity was
in at each event: membership changes are recorded in the history, so a group's messages
before a join or after a leave are never replayed; messages to one client only go to that
client; a position ahead of the history is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import Gateway
from tests.support.recovering import RecoveringClient

POLICY = Path(__file__).parents[1] / "fixtures" / "recovery.toml"


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with Gateway(POLICY) as gateway:
        yield gateway


async def marked(client: RecoveringClient, sender: RecoveringClient) -> list[str]:
    """Everything the client processed, once a live marker came after the replay."""
    await sender.call("shout", "marker")
    await client.wait_for(lambda: client.texts()[-1:] == ["marker"])
    return client.texts()[:-1]


async def test_a_position_never_yields_another_identitys_or_groups_messages(
    gateway: Gateway,
) -> None:
    victim, attacker, sender = RecoveringClient(), RecoveringClient(), RecoveringClient()
    await sender.connect(gateway.ws_url)
    await victim.connect(gateway.ws_url)
    await victim.call("join", "secret")
    await attacker.connect(gateway.ws_url)
    await attacker.close()
    assert victim.client_id is not None
    await sender.call("tell", victim.client_id, "private")
    await sender.call("say", "secret", "room only")
    await sender.call("shout", "public")
    await victim.wait_for(lambda: victim.texts() == ["private", "room only", "public"])

    # Its own token, a position from before all three: only what was its own comes back.
    welcome = await attacker.connect(gateway.ws_url)
    assert welcome["resumed"] is True and welcome["recovered"] is True
    assert await marked(attacker, sender) == ["public"]
    await attacker.close()

    # No token: the position proves nothing, nothing is replayed.
    stranger = RecoveringClient()
    welcome = await stranger.connect(
        gateway.ws_url, token=None, recover={"epoch": victim.epoch, "seq": 0}
    )
    assert welcome["resumed"] is False and welcome["recovered"] is False
    assert welcome["recovery"]["reason"] == "not_resumed"
    assert await marked(stranger, sender) == []
    for client in (stranger, victim, sender):
        await client.close()


async def test_a_position_ahead_of_the_history_is_refused(gateway: Gateway) -> None:
    client = RecoveringClient()
    await client.connect(gateway.ws_url)
    await client.close()
    assert client.seq is not None
    welcome = await client.connect(
        gateway.ws_url, recover={"epoch": client.epoch, "seq": client.seq + 1_000_000}
    )
    assert welcome["recovered"] is False
    assert welcome["recovery"]["reason"] == "unknown_position"
    await client.close()


async def test_joining_a_group_does_not_replay_what_it_was_told_before(
    gateway: Gateway,
) -> None:
    sender, newcomer = RecoveringClient(), RecoveringClient()
    await sender.connect(gateway.ws_url)
    await newcomer.connect(gateway.ws_url)
    position = newcomer.position
    await sender.call("say", "club", "before the join")
    await newcomer.call("join", "club")  # its next token carries the group
    await newcomer.wait_for(lambda: newcomer.token is not None)
    await sender.call("say", "club", "after the join")
    await newcomer.wait_for(lambda: newcomer.texts() == ["after the join"])
    await newcomer.close()
    newcomer.messages.clear()

    welcome = await newcomer.connect(gateway.ws_url, recover=position)
    assert welcome["recovered"] is True
    assert await marked(newcomer, sender) == ["after the join"]
    await newcomer.close()
    await sender.close()


async def test_a_stale_token_does_not_replay_a_group_left_since(gateway: Gateway) -> None:
    sender, leaver = RecoveringClient(), RecoveringClient()
    await sender.connect(gateway.ws_url)
    await leaver.connect(gateway.ws_url)
    await leaver.call("join", "club")
    await sender.call("say", "club", "while a member")
    await leaver.wait_for(lambda: leaver.texts() == ["while a member"])
    stale_token, position = leaver.token, leaver.position  # both from inside the group
    await leaver.call("leave", "club")
    await sender.call("say", "club", "after the leave")
    await leaver.close()

    leaver.messages.clear()
    welcome = await leaver.connect(gateway.ws_url, token=stale_token, recover=position)
    assert welcome["recovered"] is True
    assert await marked(leaver, sender) == []
    await leaver.close()
    await sender.close()
