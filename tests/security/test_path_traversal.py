"""Threat: path traversal out of the static directory.

The attack: NowJS's static server built the file name with
``path.join(process.cwd(), request.url)``, so ``GET /../../etc/passwd`` (or its
percent-encoded forms) read any file the process could read: keys, ``.env``,
source, ``/etc/passwd``.

The defence (app/static.py, StaticJail): decode ``raw_path`` exactly once and
refuse ``..``, NUL, backslashes, drive letters, invalid UTF-8 and over-long
names (400); refuse dotfiles and editor/backup files (404); resolve symlinks
and require the real path to be inside the root resolved at start-up, with
``Path.is_relative_to`` rather than a string prefix, so ``static_private/`` is
not mistaken for ``static/``; open with O_NOFOLLOW and only regular files.

Documented choice: a symlink inside static/ whose target is also inside static/
(and is not a dotfile or backup) is served.

HTTP clients normalise ``../`` before sending, so every request here is made
twice below the client: by calling the ASGI app with hand-built scopes carrying
raw_path bytes, and by writing raw request lines to a real uvicorn socket (with
both of its HTTP parsers, which split request targets differently).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from nowgate.headers import SecurityHeadersMiddleware
from nowgate.static import StaticJail


@dataclass
class Tree:
    root: Path
    static: Path
    canaries: list[bytes] = field(default_factory=list)

    def secret(self, relative: str) -> None:
        canary = f"CANARY-{uuid.uuid4().hex}".encode()
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"secret " + canary + b"\n")
        self.canaries.append(canary)

    def leaks(self, response: bytes) -> bool:
        return any(canary in response for canary in self.canaries) or b"root:x:0:0" in response


LEGIT: dict[str, bytes] = {
    "index.html": b"<!doctype html><title>jail index</title>",
    "app.js": b"console.log('app');\n",
    "nowjs/now.js": b"export const now = {};\n",
    "nowjs/index.html": b"<title>nowjs index</title>",
    "with space.txt": b"a file with a space",
    "caf\u00e9.txt": b"a file with a UTF-8 name",
    "%41.txt": b"a file whose name is a percent escape",
    "a..b.txt": b"two dots inside a name are not a segment",
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    root = tmp_path_factory.mktemp("jail")
    static = root / "static"
    tree = Tree(root, static)
    for name, content in LEGIT.items():
        (static / name).parent.mkdir(parents=True, exist_ok=True)
        (static / name).write_bytes(content)
    for outside in ("secret.txt", "static_private/secret.txt", "static_private/index.html"):
        tree.secret(outside)
    hidden = (".env", ".git/config", "x.js~", "x.bak", "X.BAK", "x.swp", "x.orig", "x.tmp")
    for name in (*hidden, "#x.js#", "nowjs/.hidden.js", "nowjs/now.js.orig"):
        tree.secret(f"static/{name}")
    (static / "leak.txt").symlink_to(root / "secret.txt")
    (static / "leakdir").symlink_to(root / "static_private", target_is_directory=True)
    (static / "relleak").symlink_to(Path("..") / "static_private", target_is_directory=True)
    (static / "rootlink").symlink_to("/", target_is_directory=True)
    (static / "alias.js").symlink_to(static / "app.js")
    (static / "alias_env").symlink_to(".env")
    (static / "loop").symlink_to("loop")
    (static / "indexleak").mkdir()
    (static / "indexleak" / "index.html").symlink_to(root / "secret.txt")
    return tree


# -- the corpus -----------------------------------------------------------------------------

DOT_DOTS = [
    "..",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%2e.",
    "%252e%252e",  # double encoding: must decode once, to a literal "%2e%2e"
    "%c0%ae%c0%ae",  # overlong UTF-8 for "."
    "%e0%80%ae%e0%80%ae",  # 3-byte overlong "."
    "%c0%2e%c0%2e",
    "%uff0e%uff0e",  # IIS %u escapes
    "%ef%bc%8e%ef%bc%8e",  # fullwidth full stops
    "..%00",
    "..%20",
    "....",
]
SEPARATORS = [
    "/",
    "%2f",
    "%2F",
    "\\",
    "%5c",
    "%5C",
    "%252f",
    "%c0%af",  # overlong "/"
    "%e0%80%af",
    "%c1%9c",  # overlong "\"
    "//",
    "/./",
]


def generated_corpus() -> list[str]:
    paths = []
    for up in DOT_DOTS:
        for sep in SEPARATORS:
            step = up + sep
            paths.append("/" + step + "secret.txt")
            paths.append("/nowjs/" + step * 2 + "static_private" + sep + "secret.txt")
            paths.append("/" + step * 6 + "etc" + sep + "passwd")
    return paths


NOTABLE = [
    "/..",
    "/../",
    "/../secret.txt",
    "/../../secret.txt",
    "/../../../../../../etc/passwd",
    "/nowjs/../../secret.txt",
    "/nowjs/./../../secret.txt",
    "/./../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2e%2e%2fsecret.txt",
    "/..%2fsecret.txt",
    "/%252e%252e/secret.txt",
    "/%252e%252e%252fsecret.txt",
    "/%c0%ae%c0%ae/secret.txt",
    "/%e0%80%ae%e0%80%ae/secret.txt",
    "/..\\secret.txt",
    "/..%5csecret.txt",
    "/%5c..%5csecret.txt",
    "/..;/secret.txt",
    "/.%00./secret.txt",
    "/secret.txt%00.js",
    "/app.js%00",
    "/%00",
    "/etc/passwd",
    "//etc/passwd",
    "///etc/passwd",
    "/%2fetc/passwd",
    "/%2f%2fetc%2fpasswd",
    "/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/C:\\secret.txt",
    "/C:/secret.txt",
    "/c:/",
    "/C:%5c",
    "/c%3a/secret.txt",
    "/C:",
    "/app.js::$DATA",
    "/.env",
    "/%2eenv",
    "/./.env",
    "/nowjs/../.env",
    "/.git/config",
    "/.git/",
    "/%2egit/config",
    "/nowjs/.hidden.js",
    "/x.js~",
    "/x.js%7e",
    "/x.bak",
    "/X.BAK",
    "/x.swp",
    "/x.orig",
    "/x.tmp",
    "/nowjs/now.js.orig",
    "/%23x.js%23",  # a literal "#" would start a fragment on the wire
    "/secret.txt",
    "/static_private/secret.txt",
    "/../static_private/secret.txt",
    "/%2e%2e/static_private/secret.txt",
    "/%2e%2e%2fstatic_private%2fsecret.txt",
    "/static/../static_private/secret.txt",
    "/leak.txt",
    "/leakdir/secret.txt",
    "/leakdir/",
    "/leakdir",
    "/relleak/secret.txt",
    "/relleak/index.html",
    "/rootlink/etc/passwd",
    "/rootlink/",
    "/alias_env",
    "/loop",
    "/loop/x",
    "/indexleak/",
    "/indexleak",
    "/indexleak/index.html",
    "/%ff",
    "/%c3%28",
    "/caf%e9.txt",  # Latin-1 é: invalid UTF-8
    "/%ed%a0%80",  # a UTF-16 surrogate encoded in UTF-8
    "/" + "a" * 256,
    "/" + "%61" * 256,
    "/" + "a/" * 600,
    "/app.js%0d%0aX-Injected:%20yes",
]

CORPUS = list(dict.fromkeys(NOTABLE + generated_corpus()))


def test_the_corpus_is_large_and_distinct() -> None:
    assert len(CORPUS) >= 150
    assert len(CORPUS) == len(set(CORPUS))
    for path in CORPUS:
        path.encode("ascii")  # sendable on a request line as is


# -- below the HTTP client: hand-built ASGI scopes ------------------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @property
    def everything(self) -> bytes:
        return b"".join(name + b": " + value for name, value in self.headers) + self.body


async def call(
    app: Any, raw_path: bytes | None, method: str = "GET", path: str | None = None
) -> Reply:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path if path is not None else (raw_path or b"").decode("latin-1"),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 40000),
    }
    if raw_path is not None:
        scope["raw_path"] = raw_path
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start, *bodies = messages
    return Reply(start["status"], start["headers"], b"".join(m.get("body", b"") for m in bodies))


@pytest.fixture(scope="module")
def jail(tree: Tree) -> SecurityHeadersMiddleware:
    return SecurityHeadersMiddleware(StaticJail(tree.static))


async def test_no_corpus_path_escapes_at_the_asgi_layer(
    tree: Tree, jail: SecurityHeadersMiddleware
) -> None:
    failures = []
    for path in CORPUS:
        for method in ("GET", "HEAD"):
            reply = await call(jail, path.encode("ascii"), method)
            if reply.status not in (400, 404) or tree.leaks(reply.everything):
                failures.append((method, path, reply.status, reply.body[:80]))
    assert failures == []


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/../secret.txt",
        b"/%2e%2e/secret.txt",
        b"/.%2E/secret.txt",
        b"/nowjs/..",
        b"/nowjs/%2e%2e/%2e%2e/secret.txt",
        b"/./app.js",
        b"/nowjs//now.js",
    ],
)
async def test_dot_segments_are_rejected_before_any_lookup(
    jail: SecurityHeadersMiddleware, raw_path: bytes
) -> None:
    assert (await call(jail, raw_path)).status == 400


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/secret.txt%00.js",
        b"/app.js%00",
        b"/%0a",
        b"/app.js%0d%0aX-Injected:%20yes",
        b"/..\\secret.txt",
        b"/nowjs%5cnow.js",
        b"/C:/secret.txt",
        b"/c%3a%5csecret.txt",
        b"/app.js::$DATA",
        b"/%c0%ae%c0%ae/secret.txt",
        b"/%e0%80%ae/secret.txt",
        b"/caf%e9.txt",
        b"/%ed%a0%80",
        b"/%ff",
        b"relative/app.js",
        b"http://testserver/app.js",
        b"*",
    ],
)
async def test_malformed_paths_are_400(jail: SecurityHeadersMiddleware, raw_path: bytes) -> None:
    reply = await call(jail, raw_path)
    assert reply.status == 400
    assert reply.body == b"Bad Request"


async def test_over_long_names_are_400(tree: Tree, jail: SecurityHeadersMiddleware) -> None:
    longest = "b" * 255
    (tree.static / longest).write_bytes(b"longest name allowed")
    assert (await call(jail, f"/{longest}".encode())).status == 200
    assert (await call(jail, f"/{longest}b".encode())).status == 400  # segment of 256 bytes
    assert (await call(jail, ("/" + "%c3%a9" * 128).encode())).status == 400  # 256 bytes as é
    assert (await call(jail, ("/a" * 513).encode())).status == 400  # path of 1026 bytes
    assert (await call(jail, b"/" + b"%41" * 2000)).status == 400  # never decoded at all


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/.env",
        b"/%2eenv",
        b"/.git/config",
        b"/.git/",
        b"/nowjs/.hidden.js",
        b"/x.js~",
        b"/x.bak",
        b"/X.BAK",
        b"/x.swp",
        b"/x.orig",
        b"/x.tmp",
        b"/nowjs/now.js.orig",
        b"/%23x.js%23",
    ],
)
async def test_dotfiles_and_backup_files_are_404(
    tree: Tree, jail: SecurityHeadersMiddleware, raw_path: bytes
) -> None:
    reply = await call(jail, raw_path)
    assert reply.status == 404
    assert not tree.leaks(reply.everything)


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/leak.txt",
        b"/leakdir/secret.txt",
        b"/leakdir/",
        b"/relleak/secret.txt",
        b"/relleak/index.html",
        b"/rootlink/etc/passwd",
        b"/indexleak/",
        b"/alias_env",
        b"/loop",
    ],
)
async def test_symlinks_that_lead_out_or_to_hidden_files_are_404(
    tree: Tree, jail: SecurityHeadersMiddleware, raw_path: bytes
) -> None:
    reply = await call(jail, raw_path)
    assert reply.status == 404
    assert not tree.leaks(reply.everything)


async def test_a_symlink_inside_the_root_is_served(jail: SecurityHeadersMiddleware) -> None:
    reply = await call(jail, b"/alias.js")
    assert (reply.status, reply.body) == (200, LEGIT["app.js"])


async def test_scope_path_is_ignored_in_favour_of_raw_path(
    tree: Tree, jail: SecurityHeadersMiddleware
) -> None:
    trusting_path = await call(jail, b"/app.js", path="/../secret.txt")
    assert (trusting_path.status, trusting_path.body) == (200, LEGIT["app.js"])
    hiding_behind_path = await call(jail, b"/%2e%2e/secret.txt", path="/app.js")
    assert hiding_behind_path.status == 400


async def test_without_raw_path_nothing_is_served(jail: SecurityHeadersMiddleware) -> None:
    assert (await call(jail, None, path="/app.js")).status == 400


async def test_raw_path_is_decoded_exactly_once(jail: SecurityHeadersMiddleware) -> None:
    reply = await call(jail, b"/%2541.txt")
    assert (reply.status, reply.body) == (200, LEGIT["%41.txt"])


@pytest.mark.parametrize(
    ("raw_path", "name"),
    [
        (b"/", "index.html"),
        (b"/index.html", "index.html"),
        (b"/app.js", "app.js"),
        (b"/nowjs/now.js", "nowjs/now.js"),
        (b"/nowjs/", "nowjs/index.html"),
        (b"/with%20space.txt", "with space.txt"),
        (b"/caf%C3%A9.txt", "caf\u00e9.txt"),
        (b"/caf%c3%a9.txt", "caf\u00e9.txt"),
        (b"/a..b.txt", "a..b.txt"),
    ],
)
async def test_legitimate_files_are_served(
    jail: SecurityHeadersMiddleware, raw_path: bytes, name: str
) -> None:
    for method in ("GET", "HEAD"):
        reply = await call(jail, raw_path, method)
        assert reply.status == 200
        assert reply.body == (LEGIT[name] if method == "GET" else b"")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
@pytest.mark.parametrize("raw_path", [b"/app.js", b"/../secret.txt", b"/.env"])
async def test_other_methods_are_refused_whatever_the_path(
    tree: Tree, jail: SecurityHeadersMiddleware, method: str, raw_path: bytes
) -> None:
    reply = await call(jail, raw_path, method)
    assert reply.status == 405
    assert not tree.leaks(reply.everything)


# -- over a real socket ---------------------------------------------------------------------


@pytest.fixture(scope="module", params=["h11", "httptools"])
def server_port(request: pytest.FixtureRequest, tree: Tree) -> Iterator[int]:
    app = SecurityHeadersMiddleware(StaticJail(tree.static))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, http=request.param, ws="none", lifespan="off", log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def exchange(port: int, request_line: bytes) -> tuple[int, bytes]:
    """Send one raw request, read until the server closes; (status, whole response)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request_line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    return int(response.split(b" ", 2)[1]), response


def test_no_corpus_path_escapes_over_a_real_socket(tree: Tree, server_port: int) -> None:
    failures = []
    for path in CORPUS:
        status, response = exchange(server_port, b"GET " + path.encode("ascii") + b" HTTP/1.1")
        if status not in (400, 404) or tree.leaks(response):
            failures.append((path, status, response[:200]))
    assert failures == []


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET /../secret.txt HTTP/1.1",
        b"GET /../secret.txt HTTP/1.0",
        b"HEAD /../secret.txt HTTP/1.1",
        b"GET ../secret.txt HTTP/1.1",
        b"GET http://127.0.0.1/../secret.txt HTTP/1.1",
        b"GET http://127.0.0.1/%2e%2e/static_private/secret.txt HTTP/1.1",
        b"GET /leakdir/secret.txt HTTP/1.1",
        b"GET /static_private/secret.txt HTTP/1.1",
        b"GET /../static_private/secret.txt HTTP/1.1",
        b"GET /.env HTTP/1.1",
        b"GET /x.bak HTTP/1.1",
        b"GET /..%2f..%2fsecret.txt?x=1 HTTP/1.1",
        b"GET /app.js/../../secret.txt HTTP/1.1",
        b"GET * HTTP/1.1",
    ],
)
def test_raw_request_lines_never_return_a_canary(
    tree: Tree, server_port: int, request_line: bytes
) -> None:
    status, response = exchange(server_port, request_line)
    assert status in (400, 404)
    assert not tree.leaks(response)


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE"])
def test_other_methods_over_a_socket_are_405(tree: Tree, server_port: int, method: bytes) -> None:
    status, response = exchange(server_port, method + b" /../secret.txt HTTP/1.1")
    assert status == 405
    assert b"\r\nallow: get, head\r\n" in response.lower()
    assert not tree.leaks(response)


@pytest.mark.parametrize(
    ("target", "name"),
    [
        (b"/", "index.html"),
        (b"/app.js", "app.js"),
        (b"/nowjs/now.js", "nowjs/now.js"),
        (b"/with%20space.txt", "with space.txt"),
        (b"/caf%C3%A9.txt", "caf\u00e9.txt"),
        (b"/alias.js", "app.js"),
    ],
)
def test_legitimate_files_are_served_over_a_socket(
    server_port: int, target: bytes, name: str
) -> None:
    status, response = exchange(server_port, b"GET " + target + b" HTTP/1.1")
    assert status == 200
    assert response.endswith(b"\r\n\r\n" + LEGIT[name])
    assert b"\r\nx-content-type-options: nosniff\r\n" in response.lower()


def test_the_tree_is_what_the_tests_think(tree: Tree) -> None:
    # The symlinks must really point out, or the symlink tests would prove nothing.
    assert (tree.static / "leak.txt").resolve() == tree.root / "secret.txt"
    assert (tree.static / "leakdir" / "secret.txt").resolve().read_bytes().startswith(b"secret")
    assert str(tree.root / "static_private").startswith(str(tree.static))
    assert os.path.islink(tree.static / "loop")
