"""Threats: clickjacking, MIME sniffing, and XSS through inline script.

- Clickjacking: another site frames our page under a decoy and steers clicks.
  Defence: ``frame-ancestors 'none'`` in the CSP and ``X-Frame-Options: DENY``.
- MIME sniffing: a browser guesses that a text or unknown-type file is HTML or
  script and runs it. Defence: ``X-Content-Type-Options: nosniff`` on every
  response, with the static jail sending an explicit Content-Type.
- XSS via inline script: injected ``<script>`` or ``onclick=`` markup runs in our
  origin. Defence: a CSP whose scripts come from ``'self'`` only, with no
  ``'unsafe-inline'``, so the demo page ships its code as files, never inline.

Every kind of HTTP response must carry the headers, errors included: an error
page is still a document a browser will render or frame.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, HTTPException

from nowgate.headers import CONTENT_SECURITY_POLICY, SECURITY_HEADERS, SecurityHeadersMiddleware
from nowgate.static import StaticJail

PROJECT_STATIC = Path(__file__).resolve().parents[2] / "static"


def directives(policy: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name.lower()] = sources
    return parsed


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    (tmp_path / "index.html").write_text("<title>x</title>")
    (tmp_path / "blob").write_bytes(b"<script>alert(1)</script>")

    api = FastAPI()

    @api.get("/api/ok")
    async def ok() -> dict[str, str]:
        return {"ok": "yes"}

    @api.get("/api/teapot")
    async def teapot() -> None:
        raise HTTPException(status_code=418)

    @api.get("/api/boom")
    async def boom() -> None:
        raise RuntimeError("handler failed")

    api.mount("/", StaticJail(tmp_path))
    transport = httpx.ASGITransport(app=SecurityHeadersMiddleware(api), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/", {}, 200),
        ("HEAD", "/", {}, 200),
        ("GET", "/blob", {}, 200),
        ("GET", "/blob", {"range": "bytes=0-3"}, 206),
        ("GET", "/blob", {"if-none-match": "*"}, 304),
        ("GET", "/..%2fetc/passwd", {}, 400),
        ("GET", "/nope", {}, 404),
        ("POST", "/", {}, 405),
        ("GET", "/blob", {"range": "bytes=999-"}, 416),
        ("GET", "/api/ok", {}, 200),
        ("GET", "/api/teapot", {}, 418),
        ("POST", "/api/ok", {}, 405),
        ("GET", "/api/boom", {}, 500),
    ],
)
async def test_every_response_kind_carries_every_header_once(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    response = await client.request(method, path, headers=headers)
    assert response.status_code == status
    for name, value in SECURITY_HEADERS:
        assert response.headers.get_list(name) == [value], name


async def test_unknown_types_are_never_sniffed(client: httpx.AsyncClient) -> None:
    response = await client.get("/blob")
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_framing_is_denied_by_both_mechanisms() -> None:
    headers = dict(SECURITY_HEADERS)
    assert headers["X-Frame-Options"] == "DENY"
    assert directives(headers["Content-Security-Policy"])["frame-ancestors"] == ["'none'"]


def test_csp_forbids_inline_and_foreign_script() -> None:
    policy = directives(CONTENT_SECURITY_POLICY)
    # script-src governs scripts; were it absent, default-src would, so check both.
    for name in ("script-src", "default-src"):
        assert policy[name] == ["'self'"], name
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY
    assert "unsafe-hashes" not in CONTENT_SECURITY_POLICY
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]


def test_csp_sent_is_the_documented_one() -> None:
    assert dict(SECURITY_HEADERS)["Content-Security-Policy"] == (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc\s*=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)


def test_the_inline_script_detector_works() -> None:
    assert INLINE_SCRIPT.search("<script>alert(1)</script>")
    assert INLINE_SCRIPT.search('<script type="module">x()</script>')
    assert not INLINE_SCRIPT.search('<script src="/demo.js"></script>')
    assert INLINE_HANDLER.search('<div onclick="x()">')


def test_shipped_pages_work_under_the_csp() -> None:
    # The CSP would silently break a page with inline code, so the project's own pages
    # must load all their script from files.
    for page in PROJECT_STATIC.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not INLINE_SCRIPT.search(text), page
        assert not INLINE_HANDLER.search(text), page
        assert "javascript:" not in text.lower(), page
