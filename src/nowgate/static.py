"""The static jail: serves files under one directory and nothing else.

NowJS served its client with ``path.join(process.cwd(), request.url)``, so
``GET /../../etc/passwd`` read any file the process could. Here a request path
must pass every one of these gates, in order, each on its own enough to stop a
plain ``..`` escape:

1. ``scope["raw_path"]`` is percent-decoded exactly once, by us (``scope["path"]``
   is ignored: servers differ in what they decode), and must be valid UTF-8 of
   bounded length.
2. Every segment is checked by name: no ``.``/``..``, no NUL, control characters,
   backslashes or colons (drive letters, NTFS streams), no dotfiles or
   dot-directories, no editor or backup files. Anything odd is 400; a name we
   refuse to serve is 404, like a file that does not exist.
3. The joined path is resolved (symlinks followed) and must be inside the root
   resolved once at construction, compared with ``Path.is_relative_to`` (a string
   prefix would let ``static_private/`` pass for ``static/``).
4. The file is opened with ``O_NOFOLLOW`` and must be a regular file.

Symlinks inside the root are followed when their target resolves inside the root
and its path there passes the same name rules; a link that leads out, or to a
dotfile, is a 404.

A directory serves its own ``index.html`` (with or without a trailing slash;
no redirect, so relative links in a sub-directory index need the slash) and
never a listing.
"""

from __future__ import annotations

import importlib.resources
import os
import re
import stat
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

import anyio.to_thread
from starlette.types import Receive, Scope, Send

__all__ = ["StaticJail"]

# Where the gateway serves its own browser client (package data, see browser_client_dir).
CLIENT_PREFIX = "/nowjs"
CHUNK_SIZE = 64 * 1024
MAX_PATH_BYTES = 1024
MAX_SEGMENT_BYTES = 255
# A Range header longer than this is not one we would honour anyway; skip parsing it.
MAX_RANGE_HEADER = 100
SHORT_MAX_AGE = "public, max-age=300"

_TEXT = "; charset=utf-8"
CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html" + _TEXT,
    ".js": "text/javascript" + _TEXT,
    ".mjs": "text/javascript" + _TEXT,
    ".css": "text/css" + _TEXT,
    ".txt": "text/plain" + _TEXT,
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_BACKUP_SUFFIXES = ("~", ".bak", ".swp", ".orig", ".tmp")
# Control characters, backslash (a separator on Windows) and colon (drive letters, NTFS streams).
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\:]")
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
_ALLOW = "GET, HEAD"


class _BadPathError(Exception):
    """A request path that is malformed (400) rather than merely absent (404)."""


class _UnsatisfiableRangeError(Exception):
    """A well-formed Range that lies outside the file (416)."""


class _Opened(NamedTuple):
    fd: int
    size: int
    mtime_ns: int
    suffix: str


def _split(raw_path: bytes, root_path: str) -> tuple[str, ...]:
    """Turn the raw request path into checked segments, or raise _BadPathError."""
    if len(raw_path) > 3 * MAX_PATH_BYTES:  # cheap bound before decoding
        raise _BadPathError
    decoded = unquote_to_bytes(raw_path)
    if len(decoded) > MAX_PATH_BYTES:
        raise _BadPathError
    try:
        path = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise _BadPathError from None
    # A mount point (Starlette Mount, uvicorn --root-path) leaves its prefix in raw_path.
    if root_path and (path == root_path or path.startswith(root_path + "/")):
        path = path[len(root_path) :] or "/"
    if not path.startswith("/"):
        raise _BadPathError
    rest = path[1:].removesuffix("/")
    parts = tuple(rest.split("/")) if rest else ()
    for part in parts:
        if (
            part in ("", ".", "..")
            or _BAD_CHARS.search(part)
            or len(part.encode("utf-8")) > MAX_SEGMENT_BYTES
        ):
            raise _BadPathError
    return parts


def _hidden(parts: tuple[str, ...]) -> bool:
    return any(
        part.startswith(".")
        or part.lower().endswith(_BACKUP_SUFFIXES)
        or (part.startswith("#") and part.endswith("#"))
        for part in parts
    )


def _etag_matches(header: str, etag: str) -> bool:
    for candidate in header.split(","):
        candidate = candidate.strip().removeprefix("W/")
        if candidate in ("*", etag):
            return True
    return False


def _not_modified_since(header: str, mtime_ns: int) -> bool:
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return False
    return since.tzinfo is not None and mtime_ns // 1_000_000_000 <= since.timestamp()


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte span asked for, or None to ignore the header and serve it all."""
    if len(header) > MAX_RANGE_HEADER:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # malformed or multi-range: RFC 9110 lets us serve the whole file
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _UnsatisfiableRangeError
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise _UnsatisfiableRangeError
    return start, min(end, size - 1)


def browser_client_dir() -> Path:
    """The folder of the browser client shipped inside the package (`nowgate/nowjs/`).

    Installed from a wheel or from a checkout, the package is a folder on disk; a zipped
    install is refused here rather than serving nothing.
    """
    folder = importlib.resources.files("nowgate") / "nowjs"
    if not isinstance(folder, Path) or not folder.is_dir():
        raise RuntimeError("nowgate's browser client is not on disk; install nowgate unzipped")
    return folder


class StaticJail:
    """ASGI app serving the files under ``directory`` (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        # Resolved once: every request compares against this, and a later chdir cannot move it.
        self._root = Path(directory).resolve(strict=True)
        if not self._root.is_dir():
            raise NotADirectoryError(f"static root is not a directory: {self._root}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # Not a static resource: closing before accept answers the handshake with 403.
            await send({"type": "websocket.close", "code": 1000})
            return
        if scope["type"] != "http":
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _error(send, 405, "Method Not Allowed", method, [(b"allow", _ALLOW.encode())])
            return
        raw_path = scope.get("raw_path")
        try:
            if not isinstance(raw_path, bytes):
                raise _BadPathError  # we will not fall back on a path someone else decoded
            parts = _split(raw_path, scope.get("root_path", ""))
        except _BadPathError:
            await _error(send, 400, "Bad Request", method)
            return
        opened = None if _hidden(parts) else await anyio.to_thread.run_sync(self._open, parts)
        if opened is None:
            await _error(send, 404, "Not Found", method)
            return
        try:
            await self._respond(opened, scope, method, send)
        finally:
            os.close(opened.fd)

    def _inside(self, path: Path) -> bool:
        return path.is_relative_to(self._root) and not _hidden(path.relative_to(self._root).parts)

    def _open(self, parts: tuple[str, ...]) -> _Opened | None:
        """Find and open the file; runs in a worker thread since it touches the disk."""
        try:
            real = self._root.joinpath(*parts).resolve()
            if not self._inside(real):
                return None
            if real.is_dir():
                real = (real / "index.html").resolve()
                if not self._inside(real):
                    return None
            # NOFOLLOW: a last component swapped for a symlink after resolve() fails here;
            # NONBLOCK: a FIFO cannot hang the open (regular files ignore it).
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, RuntimeError):  # RuntimeError: symlink loop on Python 3.11
            return None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            return None
        return _Opened(fd, info.st_size, info.st_mtime_ns, real.suffix.lower())

    async def _respond(self, opened: _Opened, scope: Scope, method: str, send: Send) -> None:
        request = _request_headers(scope)
        size = opened.size
        etag = f'"{opened.mtime_ns:x}-{size:x}"'
        last_modified = formatdate(opened.mtime_ns / 1e9, usegmt=True)
        headers = [
            (b"etag", etag.encode()),
            (b"last-modified", last_modified.encode()),
            (b"cache-control", b"no-cache" if opened.suffix == ".html" else SHORT_MAX_AGE.encode()),
        ]
        if_none_match = request.get("if-none-match")
        if_modified_since = request.get("if-modified-since")
        if (if_none_match is not None and _etag_matches(if_none_match, etag)) or (
            if_none_match is None
            and if_modified_since is not None
            and _not_modified_since(if_modified_since, opened.mtime_ns)
        ):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return

        headers.append((b"accept-ranges", b"bytes"))
        content_type = CONTENT_TYPES.get(opened.suffix, DEFAULT_CONTENT_TYPE)
        span = None
        range_header = request.get("range")
        if_range = request.get("if-range")
        # HEAD ignores Range (RFC 9110 defines it for GET only); a stale If-Range gets the
        # whole file so a client never splices two versions together.
        if method == "GET" and range_header is not None and if_range in (None, etag, last_modified):
            try:
                span = _parse_range(range_header, size)
            except _UnsatisfiableRangeError:
                headers.append((b"content-range", f"bytes */{size}".encode()))
                await _error(send, 416, "Range Not Satisfiable", method, headers)
                return
        status, start, end = 200, 0, size - 1
        if span is not None:
            status, (start, end) = 206, span
            headers.append((b"content-range", f"bytes {start}-{end}/{size}".encode()))
        length = end - start + 1
        headers += [(b"content-type", content_type.encode()), (b"content-length", b"%d" % length)]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if method == "HEAD" or length == 0:
            await send({"type": "http.response.body", "body": b""})
            return
        offset = start
        while offset <= end:
            want = min(CHUNK_SIZE, end + 1 - offset)
            chunk = await anyio.to_thread.run_sync(os.pread, opened.fd, want, offset)
            if not chunk:
                # The file shrank under us; Content-Length is already sent, so cut the connection.
                raise OSError("static file truncated while being served")
            offset += len(chunk)
            more = offset <= end
            await send({"type": "http.response.body", "body": chunk, "more_body": more})


def _request_headers(scope: Scope) -> dict[str, str]:
    wanted = (b"range", b"if-range", b"if-none-match", b"if-modified-since")
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in wanted:
            key = name.decode()
            text = value.decode("latin-1")
            # Repeated list headers join with commas, so two Range headers read as multi-range.
            found[key] = f"{found[key]}, {text}" if key in found else text
    return found


async def _error(
    send: Send,
    status: int,
    text: str,
    method: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = text.encode()
    headers = [
        *(extra or []),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
