"""StaticJail as a file server: types, index pages, methods, caching, ranges.

The attacks on it live in tests/security/test_path_traversal.py.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import Message

from nowgate.headers import SECURITY_HEADERS, SecurityHeadersMiddleware
from nowgate.static import CHUNK_SIZE, StaticJail

JS = b"export const answer = 42;\n"
BIG = bytes(range(256)) * ((3 * CHUNK_SIZE) // 256 + 7)  # several chunks, not a multiple of one


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site") / "static"
    files = {
        "index.html": b"<!doctype html><title>home</title>",
        "app.js": JS,
        "mod.mjs": b"export {};",
        "style.css": b"body{}",
        "notes.txt": b"hello",
        "data.json": b"{}",
        "logo.png": b"\x89PNG\r\n\x1a\n",
        "icon.svg": b"<svg/>",
        "favicon.ico": b"\x00\x00\x01\x00",
        "font.woff2": b"wOF2",
        "blob.unknownext": b"??",
        "UPPER.CSS": b"a{}",
        "empty.txt": b"",
        "big.bin": BIG,
        "sub/index.html": b"<title>sub</title>",
        "sub/page.html": b"<title>page</title>",
        "noindex/file.txt": b"listed?",
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


@pytest.fixture
async def client(static_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = SecurityHeadersMiddleware(StaticJail(static_dir))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    bodies: list[bytes]


async def call_asgi(app: Any, scope_extra: dict[str, Any]) -> Reply:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        **scope_extra,
    }
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = messages[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return Reply(start["status"], headers, [m.get("body", b"") for m in messages[1:]])


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("mod.mjs", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("UPPER.CSS", "text/css; charset=utf-8"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("data.json", "application/json"),
        ("logo.png", "image/png"),
        ("icon.svg", "image/svg+xml"),
        ("favicon.ico", "image/x-icon"),
        ("font.woff2", "font/woff2"),
        ("blob.unknownext", "application/octet-stream"),
    ],
)
async def test_content_type_follows_the_extension(
    client: httpx.AsyncClient, static_dir: Path, name: str, content_type: str
) -> None:
    response = await client.get(f"/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.content == (static_dir / name).read_bytes()
    assert response.headers["content-length"] == str(len(response.content))


@pytest.mark.parametrize("path", ["/", "/index.html"])
async def test_root_serves_index_html(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.text == "<!doctype html><title>home</title>"


@pytest.mark.parametrize("path", ["/sub/", "/sub"])
async def test_a_directory_serves_its_own_index(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.text == "<title>sub</title>"


@pytest.mark.parametrize("path", ["/noindex/", "/noindex"])
async def test_a_directory_without_index_is_404_not_a_listing(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "file.txt" not in response.text


async def test_missing_file_is_short_plain_text_404_without_paths(
    client: httpx.AsyncClient, static_dir: Path
) -> None:
    response = await client.get("/nope.js")
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "Not Found"
    assert str(static_dir) not in response.text


async def test_empty_file_is_served_with_zero_length(client: httpx.AsyncClient) -> None:
    response = await client.get("/empty.txt")
    assert response.status_code == 200
    assert response.headers["content-length"] == "0"
    assert response.content == b""


async def test_head_has_get_headers_and_no_body(client: httpx.AsyncClient) -> None:
    get = await client.get("/app.js")
    head = await client.head("/app.js")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(JS))
    for name in ("content-type", "etag", "last-modified", "cache-control", "content-length"):
        assert head.headers[name] == get.headers[name]


async def test_head_of_missing_file_has_no_body(client: httpx.AsyncClient) -> None:
    response = await client.head("/nope.js")
    assert response.status_code == 404
    assert response.content == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
async def test_other_methods_are_405_with_allow(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/app.js")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


async def test_large_file_is_streamed_in_chunks(static_dir: Path) -> None:
    reply = await call_asgi(StaticJail(static_dir), {"path": "/big.bin", "raw_path": b"/big.bin"})
    assert reply.status == 200
    assert b"".join(reply.bodies) == BIG
    assert max(len(body) for body in reply.bodies) <= CHUNK_SIZE
    assert len(reply.bodies) > 1


async def test_html_is_no_cache_and_assets_get_a_short_max_age(client: httpx.AsyncClient) -> None:
    assert (await client.get("/index.html")).headers["cache-control"] == "no-cache"
    max_age = (await client.get("/app.js")).headers["cache-control"]
    assert max_age.startswith("public, max-age=")
    assert 0 < int(max_age.rsplit("=", 1)[1]) <= 3600


async def test_etag_and_last_modified_describe_the_file(
    client: httpx.AsyncClient, static_dir: Path
) -> None:
    response = await client.get("/app.js")
    mtime = (static_dir / "app.js").stat().st_mtime
    assert response.headers["last-modified"] == formatdate(mtime, usegmt=True)
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')


@pytest.mark.parametrize("form", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
async def test_matching_if_none_match_is_304(client: httpx.AsyncClient, form: str) -> None:
    etag = (await client.get("/app.js")).headers["etag"]
    response = await client.get("/app.js", headers={"if-none-match": form.format(etag=etag)})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"].startswith("public, max-age=")


async def test_stale_if_none_match_is_200(client: httpx.AsyncClient) -> None:
    response = await client.get("/app.js", headers={"if-none-match": '"stale"'})
    assert response.status_code == 200
    assert response.content == JS


async def test_changed_file_gets_a_new_etag(tmp_path: Path) -> None:
    (tmp_path / "a.js").write_bytes(b"1")
    jail = StaticJail(tmp_path)
    first = await call_asgi(jail, {"path": "/a.js", "raw_path": b"/a.js"})
    (tmp_path / "a.js").write_bytes(b"22")
    second = await call_asgi(jail, {"path": "/a.js", "raw_path": b"/a.js"})
    assert first.headers["etag"] != second.headers["etag"]


async def test_if_modified_since(client: httpx.AsyncClient) -> None:
    last_modified = (await client.get("/app.js")).headers["last-modified"]
    fresh = await client.get("/app.js", headers={"if-modified-since": last_modified})
    assert fresh.status_code == 304
    old = formatdate(0, usegmt=True)
    assert (await client.get("/app.js", headers={"if-modified-since": old})).status_code == 200
    junk = await client.get("/app.js", headers={"if-modified-since": "yesterday"})
    assert junk.status_code == 200


async def test_if_none_match_wins_over_if_modified_since(client: httpx.AsyncClient) -> None:
    last_modified = (await client.get("/app.js")).headers["last-modified"]
    headers = {"if-none-match": '"stale"', "if-modified-since": last_modified}
    assert (await client.get("/app.js", headers=headers)).status_code == 200


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-3", 0, 3),
        ("bytes=7-", 7, len(JS) - 1),
        ("bytes=-4", len(JS) - 4, len(JS) - 1),
        ("bytes=-1000", 0, len(JS) - 1),
        ("bytes=5-100000", 5, len(JS) - 1),
        ("bytes=0-0", 0, 0),
    ],
)
async def test_single_range_is_206(
    client: httpx.AsyncClient, header: str, start: int, end: int
) -> None:
    response = await client.get("/app.js", headers={"range": header})
    assert response.status_code == 206
    assert response.content == JS[start : end + 1]
    assert response.headers["content-range"] == f"bytes {start}-{end}/{len(JS)}"
    assert response.headers["content-length"] == str(end - start + 1)


async def test_range_across_chunk_boundaries(client: httpx.AsyncClient) -> None:
    start, end = CHUNK_SIZE - 10, 2 * CHUNK_SIZE + 10
    response = await client.get("/big.bin", headers={"range": f"bytes={start}-{end}"})
    assert response.status_code == 206
    assert response.content == BIG[start : end + 1]


@pytest.mark.parametrize("header", [f"bytes={len(JS)}-", f"bytes={len(JS) + 5}-9999", "bytes=-0"])
async def test_unsatisfiable_range_is_416(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get("/app.js", headers={"range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(JS)}"


async def test_any_range_of_an_empty_file_is_416(client: httpx.AsyncClient) -> None:
    response = await client.get("/empty.txt", headers={"range": "bytes=0-"})
    assert response.status_code == 416


@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-1,3-4",
        "bytes=0-1, 3-4",
        "bytes=5-2",
        "bytes=-",
        "bytes=a-b",
        "bytes=0x1-2",
        "items=0-1",
        "bytes 0-1",
        "bytes=0-" + "0" * 200,  # over the header length cap
    ],
)
async def test_malformed_or_multi_range_is_ignored(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get("/app.js", headers={"range": header})
    assert response.status_code == 200
    assert response.content == JS
    assert "content-range" not in response.headers


async def test_two_range_headers_count_as_multi_range(client: httpx.AsyncClient) -> None:
    response = await client.get("/app.js", headers=[("range", "bytes=0-1"), ("range", "bytes=2-3")])
    assert response.status_code == 200
    assert response.content == JS


async def test_range_is_ignored_on_head(client: httpx.AsyncClient) -> None:
    response = await client.head("/app.js", headers={"range": "bytes=0-3"})
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(JS))


async def test_if_range_with_current_etag_honours_the_range(client: httpx.AsyncClient) -> None:
    etag = (await client.get("/app.js")).headers["etag"]
    response = await client.get("/app.js", headers={"range": "bytes=0-3", "if-range": etag})
    assert response.status_code == 206


async def test_if_range_with_stale_validator_sends_the_whole_file(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/app.js", headers={"range": "bytes=0-3", "if-range": '"old"'})
    assert response.status_code == 200
    assert response.content == JS


async def test_not_modified_wins_over_range(client: httpx.AsyncClient) -> None:
    etag = (await client.get("/app.js")).headers["etag"]
    response = await client.get("/app.js", headers={"range": "bytes=0-3", "if-none-match": etag})
    assert response.status_code == 304


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/app.js", {}, 200),
        ("GET", "/app.js", {"range": "bytes=0-1"}, 206),
        ("GET", "/app.js", {"if-none-match": "*"}, 304),
        ("GET", "/nope.js", {}, 404),
        ("POST", "/app.js", {}, 405),
        ("GET", "/app.js", {"range": "bytes=9999-"}, 416),
        ("HEAD", "/", {}, 200),
    ],
)
async def test_security_headers_on_every_status(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    response = await client.request(method, path, headers=headers)
    assert response.status_code == status
    for name, value in SECURITY_HEADERS:
        assert response.headers.get_list(name) == [value]


async def test_root_is_resolved_once_so_a_relative_root_survives_chdir(
    static_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(static_dir.parent)
    jail = StaticJail(Path("static"))
    monkeypatch.chdir(static_dir / "sub")
    reply = await call_asgi(jail, {"path": "/app.js", "raw_path": b"/app.js"})
    assert reply.status == 200
    assert b"".join(reply.bodies) == JS


async def test_a_root_reached_through_a_symlink_still_serves(
    static_dir: Path, tmp_path: Path
) -> None:
    link = tmp_path / "linked-static"
    link.symlink_to(static_dir, target_is_directory=True)
    reply = await call_asgi(StaticJail(link), {"path": "/app.js", "raw_path": b"/app.js"})
    assert reply.status == 200


def test_a_missing_root_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        StaticJail(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        StaticJail(tmp_path / "file")


async def test_mounted_at_root_after_routes(static_dir: Path) -> None:
    async def api(request: Any) -> PlainTextResponse:
        return PlainTextResponse("api")

    site = Starlette(routes=[Route("/api", api), Mount("/", StaticJail(static_dir))])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=site), base_url="http://testserver"
    ) as c:
        assert (await c.get("/api")).text == "api"
        assert (await c.get("/app.js")).content == JS
        assert (await c.get("/")).status_code == 200


async def test_mounted_under_a_prefix_strips_it(static_dir: Path) -> None:
    site = Starlette(routes=[Mount("/assets", StaticJail(static_dir))])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=site), base_url="http://testserver"
    ) as c:
        assert (await c.get("/assets/app.js")).content == JS
        assert (await c.get("/assets/sub/")).text == "<title>sub</title>"


async def test_websocket_scope_is_refused_before_accept(static_dir: Path) -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/x", "raw_path": b"/x", "headers": []}
    await StaticJail(static_dir)(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1000}]


async def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    done = threading.Event()
    released: list[bool] = []

    def release_a_blocked_reader() -> None:
        # Only a jail stuck in open() needs a writer: this turns a hang into a failure.
        if done.wait(2.0):
            return
        while not done.is_set():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # ENXIO: nobody has it open for reading
                time.sleep(0.01)
            else:
                released.append(True)
                return

    releaser = threading.Thread(target=release_a_blocked_reader, daemon=True)
    releaser.start()
    try:
        reply = await call_asgi(
            StaticJail(tmp_path), {"path": "/pipe.txt", "raw_path": b"/pipe.txt"}
        )
    finally:
        done.set()
        releaser.join()
    assert reply.status == 404
    assert released == []
