"""Threat: cross-site WebSocket hijacking.

Attack: a page on another site opens a WebSocket to the gateway; the browser attaches the
user's cookies, so the attacker's page talks to the gateway as the user. Variants try to slip
past a sloppy check: an origin that merely contains or ends with the real one, `null` (from
sandboxed frames and file: pages), another scheme or port, a missing Origin in production.
Defence: the Origin header is compared exactly against the allow-list (default: the
gateway's own origin) before the handshake is accepted; a mismatch gets HTTP 403.
"""

from __future__ import annotations

import httpx
import pytest

from nowgate.client import connect
from nowgate.origin import origin_allowed, own_origin
from tests.support.gateway import Gateway

UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def handshake_status(gateway: Gateway, origin: str | None) -> int:
    headers = dict(UPGRADE)
    if origin is not None:
        headers["Origin"] = origin
    return httpx.get(gateway.base_url + "/ws", headers=headers).status_code


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "null", "http://127.0.0.1.evil.example",
     "http://evil.example/http://127.0.0.1", "https://127.0.0.1:1", "file://", ""],
)
def test_foreign_origins_are_refused_before_the_handshake(
    chat_gateway: Gateway, origin: str
) -> None:
    assert handshake_status(chat_gateway, origin) == 403


def test_own_origin_is_accepted(chat_gateway: Gateway) -> None:
    assert handshake_status(chat_gateway, chat_gateway.base_url) == 101


def test_allow_list_matches_exactly_in_production() -> None:
    env = {"NOWGATE_MODE": "production", "NOWGATE_ALLOWED_ORIGINS": "https://app.example"}
    with Gateway(env=env) as gateway:
        assert handshake_status(gateway, "https://app.example") == 101
        for origin in ("https://app.example.evil", "https://evil-app.example", "http://app.example",
                       "https://APP.example.", None, gateway.base_url):
            assert handshake_status(gateway, origin) == 403, origin


async def test_same_origin_browser_page_connects(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url, origin=chat_gateway.base_url) as client:
        assert client.client_id.startswith("c-")


def test_origin_check_is_exact() -> None:
    allowed = ("https://app.example",)
    assert origin_allowed("https://app.example", allowed, None, allow_missing=False)
    for origin in ("https://app.example.evil", "https://xapp.example", "null", "https://app.example:443/"):
        assert not origin_allowed(origin, allowed, None, allow_missing=False)
    assert own_origin("wss", "Gate.Example") == "https://gate.example"
    assert not origin_allowed(None, (), "http://a", allow_missing=False)
