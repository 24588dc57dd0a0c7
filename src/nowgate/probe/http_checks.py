"""The HTTP side: static-file traversal and security headers.

- traversal: raw request targets (sent as they are: HTTP clients normalise `../` away) that
  climb out of the static root with plain, encoded, double-encoded, overlong-UTF-8 and
  backslash dot segments, and dotfiles that must never be served; a finding needs the
  answer to contain what such a file holds, so a page served for every path is no finding.
- headers: the page, the browser client and a missing path must carry CSP (without
  `unsafe-inline` scripts, with `frame-ancestors` or X-Frame-Options), nosniff and a
  Referrer-Policy; over https also HSTS; a Server header must not give a version.
"""

from __future__ import annotations

import re

import httpx

from .budget import ProbeStopped
from .context import Run
from .findings import leaks

UP = 8  # deep enough to reach / from any realistic static root
TRAVERSALS = (
    "/" + "../" * UP + "etc/passwd",
    "/" + "%2e%2e/" * UP + "etc/passwd",
    "/" + "%252e%252e/" * UP + "etc/passwd",
    "/" + "..%2f" * UP + "etc%2fpasswd",
    "/" + "..%5c" * UP + "etc/passwd",
    "/" + "%c0%ae%c0%ae/" * UP + "etc/passwd",
    "/nowjs/" + "../" * UP + "etc/passwd",
    "/nowjs/" + "%2e%2e/" * UP + "etc/passwd",
    "//etc/passwd",
)
PASSWD = re.compile(r"root:[^:\n]*:0:0:")
DOTFILES = (
    ("/.git/config", re.compile(r"\[core\]")),
    ("/.git/HEAD", re.compile(r"^ref: refs/", re.MULTILINE)),
    ("/.env", re.compile(r"^[A-Z][A-Z0-9_]*=", re.MULTILINE)),
)
HEADER_PATHS = ("/", "/nowjs/now.js", "/nowgate-probe-missing")
_VERSION = re.compile(r"\d+\.\d+")
FOREIGN_HOST = "nowgate-probe.invalid"


async def _get(run: Run, target: str) -> httpx.Response | None:
    run.wire.budget.request()
    base = run.options.url.rstrip("/")
    try:
        response = await run.http.get(base + "/", extensions={"target": target.encode()})
    except httpx.ConnectError as error:
        raise ProbeStopped(f"the HTTP connection was refused ({error})") from None
    except httpx.HTTPError as error:
        run.note(f"GET {target}: {type(error).__name__}")
        return None
    if response.status_code >= 500:
        run.wire.budget.server_error(f"HTTP {response.status_code}")
    elif response.status_code == 429:
        raise ProbeStopped("the server asked the probe to back off (HTTP 429)")
    else:
        run.wire.budget.healthy_answer()
    if response.status_code >= 400:
        leak = leaks(response.text)
        # A path in an error page may be the probe's own request echoed: only tracebacks and
        # exception names count on the HTTP side.
        if leak is not None and not leak[1].startswith(("a server file path", "the probe's")):
            run.find("information-leak", leak[0], f"an HTTP error page gives away {leak[1]}",
                     f"GET {target}", f"{response.status_code} {response.text}")
    return response


async def check_traversal(run: Run) -> None:
    for target in TRAVERSALS:
        response = await _get(run, target)
        if response is not None and response.status_code == 200 and PASSWD.search(response.text):
            run.find("traversal", "high", "a path climbs out of the static root "
                     "(/etc/passwd served)", f"GET {target}", f"200 {response.text}")
    for target, content in DOTFILES:
        response = await _get(run, target)
        if response is not None and response.status_code == 200 and content.search(response.text):
            run.find("traversal", "medium", f"a dotfile is served ({target})",
                     f"GET {target}", f"200 {response.text}")


async def check_headers(run: Run) -> None:
    https = run.options.url.startswith("https:")
    for target in HEADER_PATHS:
        response = await _get(run, target)
        if response is None:
            continue
        headers = response.headers
        if response.is_redirect:
            # A redirect is no page: the headers that matter are on the page it leads to.
            run.note(f"GET {target} redirects to {headers.get('location')}: probe that address")
            continue
        sent = f"GET {target}"
        got = f"{response.status_code}, headers: " + ", ".join(
            f"{name}: {value}" for name, value in headers.items())
        csp = headers.get("content-security-policy", "")
        missing = []
        if not csp:
            missing.append("Content-Security-Policy")
        if "frame-ancestors" not in csp and "x-frame-options" not in headers:
            missing.append("frame-ancestors or X-Frame-Options")
        if headers.get("x-content-type-options", "").lower() != "nosniff":
            missing.append("X-Content-Type-Options: nosniff")
        if "referrer-policy" not in headers:
            missing.append("Referrer-Policy")
        if https and "strict-transport-security" not in headers:
            missing.append("Strict-Transport-Security")
        for name in missing:
            run.find("headers", "medium" if name.startswith("Content") else "low",
                     f"responses lack {name}", sent, got)
        if _script_src_allows_inline(csp):
            run.find("headers", "low", "the CSP allows inline script", sent, got)
        server = headers.get("server", "")
        if _VERSION.search(server):
            run.find("headers", "low", f"the Server header gives a version ({server})", sent, got)
    await note_foreign_host(run)


async def note_foreign_host(run: Run) -> None:
    """Whether a Host the site does not have is served (DNS rebinding): a note, since
    development serves any Host by design and `nowgate report` flags it."""
    run.wire.budget.request()
    try:
        response = await run.http.get(run.options.url.rstrip("/") + "/nowjs/now.js",
                                      headers={"Host": FOREIGN_HOST})
    except httpx.HTTPError as error:
        run.note(f"a request for Host {FOREIGN_HOST} is not answered ({type(error).__name__})")
        return
    if response.status_code < 400:
        run.note(f"a request for Host {FOREIGN_HOST} is served ({response.status_code}): "
                 "NOWGATE_ALLOWED_HOSTS (or the proxy's server_name) would refuse it")
    else:
        run.note(f"a request for Host {FOREIGN_HOST} is refused ({response.status_code})")


def _script_src_allows_inline(csp: str) -> bool:
    directives = {part.strip().split(" ", 1)[0]: part for part in csp.split(";") if part.strip()}
    script = directives.get("script-src") or directives.get("default-src") or ""
    return "'unsafe-inline'" in script
