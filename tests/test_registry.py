"""nowgate.registry and nowgate.variables: peers, groups that exist only while they have members,
and the shared variables that go away with their group or client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nowgate.fanout import Outbox
from nowgate.hub import Hub
from nowgate.naming import check_variable_name
from nowgate.pending import PendingCalls
from nowgate.policy import Policy, load_policy
from nowgate.registry import Peer, Registry
from nowgate.scope import Context
from nowgate.settings import Settings
from nowgate.shared_state import value_json, write_message
from nowgate.variables import VariableStore

CHAT_POLICY = Path(__file__).parent / "fixtures" / "chat.toml"


def make_peer(client_id: str) -> Peer:
    return Peer(
        client_id=client_id,
        connection_id="k-" + client_id,
        user=None,
        roles=frozenset(),
        address="203.0.113.7",
        outbox=Outbox(16),
        pending=PendingCalls(4),
    )


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def alice(registry: Registry) -> Peer:
    peer = make_peer("c-alice")
    assert registry.add(peer)
    return peer


@pytest.fixture
def bob(registry: Registry) -> Peer:
    peer = make_peer("c-bob")
    assert registry.add(peer)
    return peer


# Peers --------------------------------------------------------------------------------------


def test_added_peers_are_found_by_client_id(registry: Registry, alice: Peer, bob: Peer) -> None:
    assert registry.get("c-alice") is alice
    assert "c-bob" in registry
    assert len(registry) == 2
    assert set(registry.peers()) == {alice, bob}
    assert registry.get("c-carol") is None
    assert "c-carol" not in registry


def test_a_second_peer_with_a_connected_client_id_is_refused(
    registry: Registry, alice: Peer
) -> None:
    impostor = make_peer("c-alice")
    assert not registry.add(impostor)
    assert registry.get("c-alice") is alice
    assert len(registry) == 1


def test_removing_a_peer_forgets_it(registry: Registry, alice: Peer, bob: Peer) -> None:
    assert registry.remove(alice) == []
    assert "c-alice" not in registry
    assert list(registry.peers()) == [bob]


def test_removing_a_peer_that_is_not_the_registered_one_changes_nothing(
    registry: Registry, alice: Peer
) -> None:
    registry.join(alice, "red")
    stale = make_peer("c-alice")
    assert registry.remove(stale) == []
    assert registry.get("c-alice") is alice
    assert list(registry.members("red")) == [alice]


def test_removing_a_peer_twice_is_harmless(registry: Registry, alice: Peer) -> None:
    registry.remove(alice)
    assert registry.remove(alice) == []


# Groups ---------------------------------------------------------------------------------------


def test_the_first_join_creates_the_group(registry: Registry, alice: Peer) -> None:
    assert not registry.has_group("red")
    assert registry.join(alice, "red")
    assert registry.has_group("red")
    assert list(registry.members("red")) == [alice]
    assert alice.groups == {"red"}


def test_joining_twice_is_reported_and_harmless(registry: Registry, alice: Peer) -> None:
    assert registry.join(alice, "red")
    assert not registry.join(alice, "red")
    assert list(registry.members("red")) == [alice]


@pytest.mark.parametrize("group", ["", "-red", "_red", "red room", "r" * 65, "red/blue"])
def test_invalid_group_names_are_refused(registry: Registry, alice: Peer, group: str) -> None:
    with pytest.raises(ValueError, match="invalid group name"):
        registry.join(alice, group)
    assert registry.group_names() == []
    assert alice.groups == set()


def test_the_group_survives_while_it_has_members(
    registry: Registry, alice: Peer, bob: Peer
) -> None:
    registry.join(alice, "red")
    registry.join(bob, "red")
    assert not registry.leave(alice, "red")
    assert registry.has_group("red")
    assert list(registry.members("red")) == [bob]
    assert alice.groups == set()


def test_the_group_is_removed_when_its_last_member_leaves(
    registry: Registry, alice: Peer, bob: Peer
) -> None:
    registry.join(alice, "red")
    registry.join(bob, "red")
    registry.leave(alice, "red")
    assert registry.leave(bob, "red")
    assert not registry.has_group("red")
    assert registry.group_names() == []
    assert list(registry.members("red")) == []


def test_leaving_a_group_one_is_not_in_changes_nothing(
    registry: Registry, alice: Peer, bob: Peer
) -> None:
    registry.join(alice, "red")
    assert not registry.leave(bob, "red")
    assert not registry.leave(bob, "nosuchgroup")
    assert list(registry.members("red")) == [alice]


def test_removing_the_last_member_removes_its_groups(
    registry: Registry, alice: Peer, bob: Peer
) -> None:
    registry.join(alice, "red")
    registry.join(alice, "blue")
    registry.join(bob, "blue")
    assert registry.remove(alice) == ["red"]
    assert registry.group_names() == ["blue"]
    assert list(registry.members("blue")) == [bob]
    assert alice.groups == set()
    assert sorted(registry.remove(bob)) == ["blue"]
    assert registry.group_names() == []


def test_group_names_are_sorted(registry: Registry, alice: Peer) -> None:
    for group in ("zeta", "alpha", "mid"):
        registry.join(alice, group)
    assert registry.group_names() == ["alpha", "mid", "zeta"]


# Variables ------------------------------------------------------------------------------------


def test_variables_live_in_separate_scopes() -> None:
    store = VariableStore()
    store.scope("everyone")["score"] = 1
    store.scope("group:red")["score"] = 2
    store.scope("client", "c-alice")["score"] = 3
    assert store.everyone == {"score": 1}
    assert store.scope("group:red") == {"score": 2}
    assert store.scope("group:blue") == {}
    assert store.scope("client", "c-alice") == {"score": 3}
    assert store.scope("client", "c-bob") == {}


def test_a_snapshot_holds_only_the_clients_own_groups_and_client_scope() -> None:
    store = VariableStore()
    store.scope("everyone")["score"] = 1
    store.scope("group:red")["topic"] = "red things"
    store.scope("group:blue")["topic"] = "blue things"
    store.scope("client", "c-alice")["nick"] = "al"
    store.scope("client", "c-bob")["nick"] = "bo"
    assert store.snapshot("c-alice", {"red", "green"}) == {
        "everyone": {"score": 1},
        "groups": {"red": {"topic": "red things"}},
        "client": {"nick": "al"},
    }


def test_a_snapshot_is_a_copy() -> None:
    store = VariableStore()
    store.scope("everyone")["score"] = 1
    snapshot = store.snapshot("c-alice", set())
    snapshot["everyone"]["score"] = 99
    assert store.everyone == {"score": 1}


def test_dropping_a_group_or_client_forgets_their_variables() -> None:
    store = VariableStore()
    store.scope("group:red")["topic"] = "x"
    store.scope("client", "c-alice")["nick"] = "al"
    store.drop_group("red")
    store.drop_client("c-alice")
    store.drop_group("never-existed")
    assert store.snapshot("c-alice", {"red"}) == {"everyone": {}, "groups": {}, "client": {}}


@pytest.mark.parametrize("scope", ["all", "groups", "group", "Everyone", "client:c-alice", ""])
def test_unknown_scopes_are_refused(scope: str) -> None:
    with pytest.raises(ValueError, match="unknown scope"):
        VariableStore().scope(scope, "c-alice")


def test_the_client_scope_needs_a_client_id() -> None:
    with pytest.raises(ValueError, match="client id"):
        VariableStore().scope("client")


@pytest.mark.parametrize("path", ["__proto__", "constructor.prototype", "a.b", "", "a" * 65, "1x"])
def test_variable_paths_are_single_plain_names(path: str) -> None:
    with pytest.raises(ValueError, match="invalid variable name"):
        check_variable_name(path)


# The hub keeps groups and variables in step ----------------------------------------------


@pytest.fixture(scope="module")
def chat_policy() -> Policy:
    return load_policy(CHAT_POLICY)


@pytest.fixture
def hub(chat_policy: Policy) -> Hub:
    return Hub(Settings(secret_keys=("k" * 32,)), chat_policy)


async def frames_of(peer: Peer) -> list[dict[str, Any]]:
    """What is queued for a peer (without waiting for more)."""
    if not len(peer.outbox):
        return []
    return [json.loads(frame) for frame in await peer.outbox.next_batch()]


def test_group_variables_go_away_when_the_last_member_leaves(hub: Hub) -> None:
    alice, bob = make_peer("c-alice"), make_peer("c-bob")
    hub.registry.add(alice)
    hub.registry.add(bob)
    hub.join(alice, "red")
    hub.join(bob, "red")
    hub.set_variable("group:red", "topic", "cats")
    hub.leave(alice, "red")
    assert hub.variables.snapshot("c-bob", {"red"})["groups"] == {"red": {"topic": "cats"}}
    hub.leave(bob, "red")
    assert hub.variables.snapshot("c-bob", {"red"})["groups"] == {}
    hub.join(bob, "red")
    assert hub.variables.scope("group:red") == {}


def test_group_and_client_variables_go_away_when_the_last_member_is_removed(hub: Hub) -> None:
    alice = make_peer("c-alice")
    hub.registry.add(alice)
    hub.join(alice, "red")
    hub.set_variable("group:red", "topic", "cats")
    hub.set_variable("client", "nick", "al", "c-alice")
    hub.remove(alice)
    assert "c-alice" not in hub.registry
    assert not hub.registry.has_group("red")
    assert hub.variables.snapshot("c-alice", {"red"}) == {
        "everyone": {}, "groups": {}, "client": {}
    }


async def test_joining_a_group_sends_its_variables_and_a_fresh_token(hub: Hub) -> None:
    alice, bob = make_peer("c-alice"), make_peer("c-bob")
    hub.registry.add(alice)
    hub.registry.add(bob)
    hub.join(alice, "red")
    hub.set_variable("group:red", "topic", "cats")
    await frames_of(alice)
    hub.join(bob, "red")
    token_frame, topic_frame = await frames_of(bob)
    assert token_frame["method"] == "now.token"
    claims = hub.signer.verify(token_frame["params"]["token"])
    assert claims is not None and claims.groups == {"red"}
    assert topic_frame == {"jsonrpc": "2.0", "method": "now.set",
                           "params": {"scope": "group:red", "path": "topic", "value": "cats"}}


async def test_a_variable_write_reaches_exactly_its_scope(hub: Hub) -> None:
    alice, bob = make_peer("c-alice"), make_peer("c-bob")
    hub.registry.add(alice)
    hub.registry.add(bob)
    hub.join(alice, "red")
    await frames_of(alice)
    hub.set_variable("group:red", "topic", "cats")
    hub.set_variable("client", "nick", "bo", "c-bob")
    assert [f["params"] for f in await frames_of(alice)] == [
        {"scope": "group:red", "path": "topic", "value": "cats"}
    ]
    assert [f["params"] for f in await frames_of(bob)] == [
        {"scope": "client", "path": "nick", "value": "bo"}
    ]
    hub.set_variable("everyone", "score", 5)
    assert len(await frames_of(alice)) == len(await frames_of(bob)) == 1


def test_a_value_that_cannot_be_sent_is_not_stored(hub: Hub) -> None:
    with pytest.raises(TypeError):
        hub.set_variable("everyone", "bad", object())
    assert "bad" not in hub.variables.everyone


async def test_deleting_a_missing_variable_sends_nothing(hub: Hub) -> None:
    alice = make_peer("c-alice")
    hub.registry.add(alice)
    hub.delete_variable("everyone", "nothing")
    assert await frames_of(alice) == []
    hub.set_variable("everyone", "score", 1)
    hub.delete_variable("everyone", "score")
    assert [f["method"] for f in await frames_of(alice)] == ["now.set", "now.del"]


async def test_others_set_stores_one_value_and_skips_only_the_writer(hub: Hub) -> None:
    alice, bob, carol = make_peer("c-alice"), make_peer("c-bob"), make_peer("c-carol")
    for peer in (alice, bob, carol):
        hub.registry.add(peer)
    ctx = Context(hub, alice)
    ctx.others.set("score", 5)
    assert await frames_of(alice) == []
    for other in (bob, carol):
        assert [f["params"] for f in await frames_of(other)] == [
            {"scope": "everyone", "path": "score", "value": 5}
        ]
    # One shared value: a later welcome (the writer's too) and every reader see it.
    assert hub.variables.snapshot("c-alice", set())["everyone"] == {"score": 5}
    assert ctx.everyone.get("score") == ctx.others.get("score") == 5
    ctx.others.delete("score")
    assert await frames_of(alice) == []
    assert [f["method"] for f in await frames_of(bob)] == ["now.del"]
    assert "score" not in hub.variables.everyone


async def test_a_group_write_without_self_skips_only_the_writer(hub: Hub) -> None:
    alice, bob = make_peer("c-alice"), make_peer("c-bob")
    for peer in (alice, bob):
        hub.registry.add(peer)
        hub.join(peer, "red")
        await frames_of(peer)
    Context(hub, alice).group("red", include_self=False).set("topic", "cats")
    assert await frames_of(alice) == []
    assert [f["params"] for f in await frames_of(bob)] == [
        {"scope": "group:red", "path": "topic", "value": "cats"}
    ]
    assert hub.variables.scope("group:red") == {"topic": "cats"}


async def test_others_set_skips_the_writer_on_other_nodes_too(
    hub: Hub, chat_policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[tuple[Any, ...]] = []
    monkeypatch.setattr(hub.cluster.state, "wrote", lambda *change: written.append(change))
    writer = make_peer("c-writer")
    hub.registry.add(writer)
    Context(hub, writer).others.set("score", 7)
    assert written == [("everyone", "score", 7, False, "c-writer")]
    # Another node holding a connection of the same client id (a stale one) and a reader
    # receives the write as Redis publishes it (nowgate.shared_state).
    other_node = Hub(Settings(secret_keys=("k" * 32,)), chat_policy)
    stale, reader = make_peer("c-writer"), make_peer("c-reader")
    other_node.registry.add(stale)
    other_node.registry.add(reader)
    message = write_message("n-writer", 1, "everyone", "score", value_json(7), "c-writer")
    other_node.cluster.state.receive({"version": 1, **message})
    assert other_node.variables.everyone == {"score": 7}
    assert await frames_of(stale) == []
    assert [f["params"]["value"] for f in await frames_of(reader)] == [7]

