"""now.js in a real headless Chromium recovers what it missed while its network was cut.

A real gateway (the demo policy: `syncPosition` relays `updatePosition` to everyone else)
stands behind a TCP relay (tests/support/relay.py). The page is loaded through the relay
too: the gateway's CSP allows sockets to the page's own origin only (connect-src 'self'),
and that origin, the relay's, is then the one the gateway's Origin check expects. A Python
client sends moves straight to the gateway; the relay is cut abruptly mid-stream (RST, no
close frame), kept down while moves are sent, and restored: the page's handler must see
every move exactly once and in order, under the same client id, or, beyond the history
bound (NOWGATE_HISTORY_SIZE), be told and find the current state in `now.vars`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from nowgate.client import NowClient, connect
from tests.support.gateway import Gateway
from tests.support.relay import Relay

HISTORY_SIZE = 60  # events the gateway keeps; syncPosition's rate limit is 150/second
DOWN_SECONDS = 2.0

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>recovery page</title>
<link rel="icon" href="data:,">
<script type="module" src="/page.mjs"></script></head>
<body></body></html>
"""

# What the page's application sees: every move its handler is given, and every welcome.
PAGE = """
import { connect } from '/nowjs/now.mjs';

const now = connect({ backoffCap: 1000 });
window.pageNow = now;
window.moves = [];
window.connects = [];
now.updatePosition = (p) => { window.moves.push(p.left); };
now.on('connect', (info) => {
  window.connects.push({ clientId: info.clientId, resumed: info.resumed,
                         recovered: info.recovered, reason: info.reason });
});
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("recovery-site")
    (folder / "index.html").write_text(INDEX, encoding="utf-8")
    (folder / "page.mjs").write_text(PAGE, encoding="utf-8")
    env = {"NOWGATE_STATIC_DIR": str(folder), "NOWGATE_HISTORY_SIZE": str(HISTORY_SIZE)}
    with Gateway(env=env) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module")
async def page(chromium: Browser, gateway: Gateway) -> AsyncIterator[tuple[Page, Relay]]:
    """The page, loaded and connected through a relay of its own; no page error allowed."""
    errors: list[str] = []
    async with Relay(gateway.port) as relay:
        context = await chromium.new_context()
        page = await context.new_page()
        page.set_default_timeout(15_000)
        page.on("pageerror", lambda error: errors.append(str(error)))
        response = await page.goto(f"http://{relay.host}:{relay.port}/")
        assert response is not None and response.ok
        await page.wait_for_function("() => window.connects && window.connects.length === 1")
        yield page, relay
        await context.close()
    assert errors == []


async def move(sender: NowClient, lefts: range, pause: float = 0.0) -> None:
    for left in lefts:
        assert await sender.call("syncPosition", {"left": left, "top": 1}) is True
        if pause:
            await asyncio.sleep(pause)


async def connects(page: Page) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await page.evaluate("() => window.connects")
    return result


async def test_a_page_cut_off_mid_stream_sees_every_message_once_in_order(
    gateway: Gateway, page: tuple[Page, Relay]
) -> None:
    tab, relay = page
    async with connect(gateway.ws_url) as sender:
        # Fewer moves from the cut to the resume than the gateway keeps (HISTORY_SIZE).
        stream = asyncio.create_task(move(sender, range(25), pause=0.01))
        await tab.wait_for_function("() => window.moves.length >= 8")
        relay.cut()  # mid-stream; refused until heal()
        await stream
        await move(sender, range(25, 35))  # while the page is away
        await asyncio.sleep(DOWN_SECONDS)
        relay.heal()
        await move(sender, range(35, 50), pause=0.01)  # while it comes back
        await tab.wait_for_function("() => window.moves.includes(49)")
        await asyncio.sleep(0.3)  # nothing more (no duplicate) arrives

    assert await tab.evaluate("() => window.moves") == list(range(50))
    first, *again = await connects(tab)
    assert first["recovered"] is False and first["reason"] == "no_position"
    assert again and again[-1] == {"clientId": first["clientId"], "resumed": True,
                                   "recovered": True, "reason": None}


async def test_beyond_the_history_the_page_is_told_and_reads_the_current_state(
    gateway: Gateway, page: tuple[Page, Relay]
) -> None:
    tab, relay = page
    async with connect(gateway.ws_url) as sender:
        await move(sender, range(5))
        await tab.wait_for_function("() => window.moves.length === 5")
        relay.cut()
        lost = range(100, 120 + HISTORY_SIZE)  # more than the gateway keeps
        await move(sender, lost)
        await sender.call("release")  # the final position becomes the shared variable
        relay.heal()
        await tab.wait_for_function("() => window.connects.length === 2")
        position = await tab.evaluate("() => pageNow.vars.everyone.position")
        await move(sender, range(1000, 1003))
        await tab.wait_for_function("() => window.moves.includes(1002)")

    first, second = await connects(tab)
    assert second == {"clientId": first["clientId"], "resumed": True,
                      "recovered": False, "reason": "expired"}
    assert position == {"left": lost[-1], "top": 1}
    # Nothing of what was lost is half-replayed.
    assert await tab.evaluate("() => window.moves") == [0, 1, 2, 3, 4, 1000, 1001, 1002]
