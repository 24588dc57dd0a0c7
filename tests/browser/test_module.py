"""now.mjs as an ES module in a real headless Chromium, under the gateway's strict CSP.

A page of the test's own (a static folder made for it) imports /nowjs/now.mjs from a module
file, connects, calls the demo policy's functions and receives a client-function call from
a second page: the module form works in a browser, not only in Node.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import Browser, Page

from tests.support.gateway import Gateway

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>module page</title>
<link rel="icon" href="data:,">
<script type="module" src="/page.mjs"></script></head>
<body><p id="out">loading</p></body></html>
"""

PAGE = """
import { connect, NowError } from '/nowjs/now.mjs';

const out = document.getElementById('out');
const now = connect();
window.pageNow = now;  // for the test to drive
window.moved = [];
now.updatePosition = (p) => { window.moved.push([p.left, p.top]); };
now.on('connect', async (info) => {
  const grant = await now.grab();
  out.dataset.clientId = info.clientId;
  out.dataset.granted = String(grant.granted);
  out.dataset.recovered = String(info.recovered);
  out.dataset.isNowError = String(new NowError('timeout', 'x') instanceof Error);
  out.textContent = 'connected';
});
"""

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("module-site")
    (folder / "index.html").write_text(INDEX, encoding="utf-8")
    (folder / "page.mjs").write_text(PAGE, encoding="utf-8")
    with Gateway(env={"NOWGATE_STATIC_DIR": str(folder)}) as gateway:
        yield gateway


async def open_page(chromium: Browser, site: Gateway, errors: list[str]) -> Page:
    context = await chromium.new_context()
    await context.add_init_script(RECORD_VIOLATIONS)
    page = await context.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    response = await page.goto(site.base_url + "/")
    assert response is not None and response.ok
    assert "script-src 'self'" in (await response.header_value("content-security-policy") or "")
    await page.wait_for_function("() => document.getElementById('out').textContent === 'connected'")
    return page


async def test_the_es_module_connects_calls_and_is_called_under_the_csp(
    chromium: Browser, site: Gateway
) -> None:
    errors: list[str] = []
    first = await open_page(chromium, site, errors)
    second = await open_page(chromium, site, errors)
    data = await first.evaluate("() => ({...document.getElementById('out').dataset})")
    assert data["clientId"].startswith("c-")
    assert data["granted"] == "true"
    assert data["recovered"] == "false"  # a first connection has nothing to recover
    assert data["isNowError"] == "true"
    # The first page holds the lock; its move reaches the second page's client function.
    assert await first.evaluate("() => pageNow.syncPosition({left: 12, top: 34})") is True
    await second.wait_for_function("() => window.moved.length > 0")
    assert await second.evaluate("() => window.moved") == [[12, 34]]
    assert await first.evaluate("() => window.moved") == []  # never echoed to the sender
    assert await first.evaluate("() => window.__violations") == []
    assert await second.evaluate("() => window.__violations") == []
    assert errors == []
