"""Threat: Host header attacks (DNS rebinding, cache poisoning, origin confusion).

Attack: a rebinding domain points at the gateway so the attacker's page is "same origin"
with it; or a forged Host makes the gateway believe an attacker's origin is its own.
Defence: with `NOWGATE_ALLOWED_HOSTS` set, any other Host is refused with 400 before routing,
WebSocket handshakes included; the same-origin default compares Origin with that Host.
"""

from __future__ import annotations

import httpx

from tests.support.gateway import Gateway

UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def test_unknown_hosts_are_refused_for_pages_and_websockets() -> None:
    with Gateway(env={"NOWGATE_ALLOWED_HOSTS": "gate.example,127.0.0.1"}) as gateway:
        assert httpx.get(gateway.base_url + "/").status_code == 200
        assert httpx.get(gateway.base_url + "/", headers={"Host": "rebind.evil"}).status_code == 400
        rebound = {**UPGRADE, "Host": "rebind.evil", "Origin": "http://rebind.evil"}
        assert httpx.get(gateway.base_url + "/ws", headers=rebound).status_code in (400, 403)
        own = {**UPGRADE, "Host": "gate.example", "Origin": "http://gate.example"}
        assert httpx.get(gateway.base_url + "/ws", headers=own).status_code == 101
