"""The drag demo in a real headless Chromium against a real gateway process.

One browser and one gateway (conftest's demo_gateway) serve the module; the restart test
has its own gateway.
Each page lives in its own browser context: its own sessionStorage (so its own identity)
and its own window (so it gets animation frames). Conditions are awaited in the page with
function predicates: the demo's CSP has no 'unsafe-eval', so string expressions would fail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page
from playwright.async_api import Error as PlaywrightError

from tests.support.gateway import Gateway

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 10_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="module"),
]

# Runs before the page's own scripts, outside its CSP: records every CSP violation.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || ''));
});
"""

CONNECTED = "() => window.nowDemo && window.nowDemo.connected"
STATE = """() => {
  const box = document.getElementById('draggable');
  const p = now.vars.everyone.position;
  return {left: box.style.left, top: box.style.top, final: p ? [p.left + 'px', p.top + 'px'] : null,
          dragging: nowDemo.dragging, received: nowDemo.received, sent: nowDemo.sent,
          refused: nowDemo.refused, clientId: nowDemo.clientId,
          status: document.getElementById('status').textContent,
          holder: document.getElementById('holder').textContent};
}"""
AT = """([left, top]) => {
  const s = document.getElementById('draggable').style;
  return s.left === left + 'px' && s.top === top + 'px';
}"""


@dataclass
class DemoPage:
    page: Page
    context: BrowserContext
    console_errors: list[str] = field(default_factory=list)

    async def state(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.page.evaluate(STATE)
        return result

    async def violations(self) -> list[str]:
        result: list[str] = await self.page.evaluate("() => window.__violations")
        return result


@pytest_asyncio.fixture(loop_scope="module")
async def open_demo(chromium: Browser) -> AsyncIterator[Any]:
    """Opens the demo in a fresh context; closes every page it opened afterwards."""
    opened: list[DemoPage] = []

    async def open_page(gateway: Gateway) -> DemoPage:
        context = await chromium.new_context(viewport={"width": 1000, "height": 700})
        await context.add_init_script(RECORD_VIOLATIONS)
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        demo = DemoPage(page, context)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                demo.console_errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: demo.console_errors.append(f"pageerror: {error}"))
        response = await page.goto(gateway.base_url + "/")
        assert response is not None and response.ok
        assert "script-src 'self'" in (await response.header_value("content-security-policy") or "")
        try:
            await page.wait_for_function(CONNECTED)
        except PlaywrightError as error:
            status = await page.evaluate("() => document.getElementById('status').textContent")
            raise AssertionError(
                f"the demo did not connect (status {status!r}, console {demo.console_errors})"
                f"\n--- gateway log ---\n{gateway.log[-3000:]}"
            ) from error
        opened.append(demo)
        return demo

    yield open_page
    for demo in opened:
        await demo.context.close()


async def center(demo: DemoPage) -> tuple[float, float]:
    box = await demo.page.locator("#draggable").bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


async def drag_by(
    demo: DemoPage, dx: int, dy: int, steps: int = 15, start: tuple[float, float] | None = None
) -> None:
    x, y = start or await center(demo)
    await demo.page.mouse.move(x, y)
    await demo.page.mouse.down()
    await demo.page.mouse.move(x + dx, y + dy, steps=steps)
    await demo.page.mouse.up()


async def assert_clean(*demos: DemoPage, allowed: tuple[str, ...] = ()) -> None:
    for demo in demos:
        errors = [e for e in demo.console_errors if not any(a in e for a in allowed)]
        assert errors == [], errors
        assert await demo.violations() == []


async def position(demo: DemoPage) -> tuple[int, int]:
    state = await demo.state()
    return int(state["left"].removesuffix("px")), int(state["top"].removesuffix("px"))


async def test_a_drag_in_one_page_moves_the_box_in_the_other(
    demo_gateway: Gateway, open_demo: Any
) -> None:
    a = await open_demo(demo_gateway)
    b = await open_demo(demo_gateway)
    assert (await a.state())["clientId"] != (await b.state())["clientId"]
    left, top = await position(a)
    dx, dy = 180 if left < 400 else -180, 90 if top < 250 else -90
    target = [left + dx, top + dy]

    await drag_by(a, dx, dy)

    # The dragging page ends where the pointer left it, and so does the server's final value.
    await a.page.wait_for_function(AT, arg=target)
    await a.page.wait_for_function(
        "([l, t]) => !nowDemo.dragging && now.vars.everyone.position"
        " && now.vars.everyone.position.left === l && now.vars.everyone.position.top === t",
        arg=target,
    )
    await b.page.wait_for_function(AT, arg=target)
    state_a, state_b = await a.state(), await b.state()
    assert state_a["received"] == 0, "the sender never gets its own updatePosition"
    assert state_a["sent"] >= 1
    assert state_b["received"] >= 1
    assert state_b["final"] == [f"{target[0]}px", f"{target[1]}px"]
    assert state_a["holder"] == state_b["holder"] == "nobody is dragging"

    ARTIFACTS.mkdir(exist_ok=True)
    await a.page.screenshot(path=str(ARTIFACTS / "demo.png"))
    await assert_clean(a, b)


async def test_two_pages_dragging_at_once_converge_on_every_page(
    demo_gateway: Gateway, open_demo: Any
) -> None:
    a = await open_demo(demo_gateway)
    b = await open_demo(demo_gateway)
    c = await open_demo(demo_gateway)
    left, top = await position(a)
    dx, dy = 150 if left < 400 else -150, 80 if top < 250 else -80

    start_a, start_b = await center(a), await center(b)

    await asyncio.gather(
        drag_by(a, dx, dy, steps=25, start=start_a),
        drag_by(b, -dx // 2, dy, steps=25, start=start_b),
    )

    # Convergence: every page shows the server's final position (the everyone-variable set by
    # the last release), and it stays there. Under load the two drags may also run one after
    # the other; the rule is the same.
    def converged(states: list[dict[str, Any]]) -> bool:
        first = states[0]
        shown = [first["left"], first["top"]]
        return (
            not first["dragging"]
            and first["final"] == shown
            and all(
                [s["left"], s["top"]] == shown and s["final"] == shown and not s["dragging"]
                for s in states
            )
        )

    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        states = [await d.state() for d in (a, b, c)]
        if converged(states):
            await asyncio.sleep(0.3)  # small settling: nothing may arrive after the final set
            if [await d.state() for d in (a, b, c)] == states:  # same counters too
                break
        assert time.monotonic() < deadline, f"pages did not converge: {states}"
        await asyncio.sleep(0.05)

    final = [states[0]["left"], states[0]["top"]]
    for state in states:
        assert not (state["refused"] and state["sent"]), "a refused page sent positions"
        assert not (state["sent"] and state["received"]), "a writer got updates from itself"
    assert final != [f"{left}px", f"{top}px"], "somebody's drag moved the box"
    await assert_clean(a, b, c)


async def test_a_page_cannot_move_the_box_while_another_holds_it(
    demo_gateway: Gateway, open_demo: Any
) -> None:
    a = await open_demo(demo_gateway)
    b = await open_demo(demo_gateway)
    x, y = await center(a)
    left, top = await position(a)
    dx, dy = 40 if left < 400 else -40, 30 if top < 250 else -30
    held = [left + dx, top + dy]
    await a.page.mouse.move(x, y)
    await a.page.mouse.down()
    await a.page.mouse.move(x + dx, y + dy, steps=4)
    await b.page.wait_for_function(AT, arg=held)  # A holds the box; B follows it

    await drag_by(b, 200, 100)

    await b.page.wait_for_function("() => nowDemo.refused === 1 && !nowDemo.dragging")
    state_b = await b.state()
    a_id = (await a.state())["clientId"]
    assert state_b["holder"] == f"{a_id} is dragging: wait until they let go"
    assert state_b["sent"] == 0
    assert [state_b["left"], state_b["top"]] == [f"{held[0]}px", f"{held[1]}px"]

    await a.page.mouse.up()
    for demo in (a, b):
        await demo.page.wait_for_function(
            "([l, t]) => now.vars.everyone.position && now.vars.everyone.position.left === l"
            " && now.vars.everyone.position.top === t"
            " && document.getElementById('holder').textContent === 'nobody is dragging'",
            arg=held,
        )
        await demo.page.wait_for_function(AT, arg=held)
    await assert_clean(a, b)


async def test_a_server_restart_reconnects_with_the_same_identity(open_demo: Any) -> None:
    with Gateway() as gateway:
        demo = await open_demo(gateway)
        await demo.page.evaluate(
            "() => { window.__closes = []; now.on('disconnect', (e) => __closes.push(e.code)); }"
        )
        client_id = (await demo.state())["clientId"]
        assert client_id

        await asyncio.to_thread(gateway.stop)
        await demo.page.wait_for_function(
            "() => !nowDemo.connected"
            " && document.getElementById('status').textContent === 'reconnecting…'"
        )
        await asyncio.to_thread(gateway.start)
        await demo.page.wait_for_function(CONNECTED, timeout=20_000)

        state = await demo.state()
        assert state["clientId"] == client_id
        assert state["status"] == "connected"
        assert await demo.page.evaluate("() => nowDemo.resumed") is True
        closes = await demo.page.evaluate("() => __closes")
        assert closes == [1001], "PROTOCOL.md: a shutting-down server closes with 1001"

        # The resumed identity works: a drag still reaches the server.
        left, _ = await position(demo)
        dx = 60 if left < 400 else -60
        await drag_by(demo, dx, 0)
        await demo.page.wait_for_function(
            "([l]) => now.vars.everyone.position && now.vars.everyone.position.left === l",
            arg=[left + dx],
        )
        # While the server was down, Chromium logs each refused reconnect attempt.
        await assert_clean(demo, allowed=("WebSocket connection to",))
