"""`nowgate probe URL`: a bounded, non-destructive adversarial check of a live deployment.

It speaks the protocol (hello, welcome, JSON-RPC), and tries from outside what
`tests/security/` proves inside: hostile origins, method names, arguments and JSON,
identity writes, forged tokens, oversized frames, bursts, traversal paths, missing headers,
and leaks in every error answer. Each finding has a category (`findings.CATEGORIES`), a
severity, and what was sent and what came back.

It is polite (`budget.py`): one connection at a time, bounded requests, connections and
time, and it stops at the first sign of distress. It never calls a function with arguments
a strict gateway would accept unless `allow_valid_calls` is set (see `message_checks.py`).

This package imports only the standard library, `websockets` and `httpx`: it runs where the
server stack is not installed, and `import nowgate.probe` starts no server code of its own.
"""

from __future__ import annotations

import dataclasses
import ssl
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from .budget import Budget, Limits, ProbeStopped
from .context import ProbeOptions, Run
from .findings import CATEGORIES, Finding, ProbeResult
from .http_checks import check_headers, check_traversal
from .identity_checks import check_identity, check_origin, check_tokens
from .message_checks import (
    check_frame_size,
    check_method_lookup,
    check_rate_limit,
    check_validation,
)
from .render import render_text
from .wire import Refused, Target, Welcome, Wire

__all__ = [
    "CATEGORIES", "Finding", "ProbeError", "ProbeOptions", "ProbeResult", "render_text",
    "run_probe",
]

Check = Callable[[Run], Awaitable[None]]
# In this order: cheap and read-only first, the burst last (it may end a connection budget).
CHECKS: tuple[tuple[str, Check], ...] = (
    ("headers", check_headers),
    ("traversal", check_traversal),
    ("origin", check_origin),
    ("method-lookup", check_method_lookup),
    ("validation", check_validation),
    ("identity", check_identity),
    ("token", check_tokens),
    ("frame-size", check_frame_size),
    ("rate-limit", check_rate_limit),
)


class ProbeError(Exception):
    """The probe cannot run against this target (bad URL, no gateway there)."""


def own_origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def websocket_url(url: str, path: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProbeError(f"{url!r} is not an http(s) base address")
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{path}"


async def run_probe(options: ProbeOptions) -> ProbeResult:
    """Probe the deployment at `options.url`; raises ProbeError if nothing there speaks nowgate."""
    origin = options.origin or own_origin(options.url)
    options = dataclasses.replace(options, origin=origin)
    secure = options.url.startswith("https:")
    context = ssl.create_default_context(cafile=options.cafile) if secure else None
    target = Target(websocket_url(options.url, options.ws_path), origin, context,
                    options.timeout)
    budget = Budget(Limits(options.max_requests, options.max_connections, options.time_budget))
    wire = Wire(target, budget)
    result = ProbeResult(target=options.url)
    started = time.monotonic()
    verify: ssl.SSLContext | bool = context if context is not None else True
    async with httpx.AsyncClient(timeout=options.timeout, verify=verify, trust_env=False,
                                 follow_redirects=False) as http:
        try:
            welcome = await _first_welcome(wire)
            run = Run(options, wire, http, result, welcome)
            for category, check in CHECKS:
                if category in options.skip:
                    continue
                await check(run)
                result.checks.append(category)
            if "information-leak" not in options.skip:
                # No check of its own: every answer of every check above was read for it.
                result.checks.append("information-leak")
        except ProbeStopped as stopped:
            result.stopped = str(stopped)
        finally:
            await wire.close()
            result.requests = budget.requests
            result.connections = budget.connections
            result.seconds = time.monotonic() - started
    return result


async def _first_welcome(wire: Wire) -> Welcome:
    try:
        outcome = await wire.open()
    except Refused as refused:
        hint = "; pass the site's --origin" if refused.status == 403 else ""
        raise ProbeError(
            f"the WebSocket handshake at {wire.target.ws_url} with Origin "
            f"{wire.target.origin} was refused ({refused}){hint}"
        ) from None
    except ProbeStopped as stopped:
        raise ProbeError(str(stopped)) from None
    if wire.welcome is None:
        raise ProbeError(f"no nowgate welcome at {wire.target.ws_url}: {outcome.received()}")
    welcome = wire.welcome
    await wire.close()
    return welcome
