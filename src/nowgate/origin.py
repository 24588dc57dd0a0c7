"""The Origin allow-list: data, checked by one pure function before a WebSocket is accepted.

Browsers send the page's origin with every WebSocket handshake, and cookies ride along
whatever the origin, so without this check any site could open a socket as the user
(cross-site WebSocket hijacking). Matching is exact: no substring, suffix or wildcard, and the
literal `null` (sandboxed frames, file: pages) is refused.
"""

from __future__ import annotations


def own_origin(scheme: str, host: str | None) -> str | None:
    """The origin of the gateway itself, as a browser on its own pages would send it."""
    if not host:
        return None
    web_scheme = "https" if scheme in ("wss", "https") else "http"
    return f"{web_scheme}://{host.lower()}"


def origin_allowed(
    origin: str | None,
    allowed: tuple[str, ...],
    same_origin: str | None,
    allow_missing: bool,
) -> bool:
    """Exact match against the allow-list, or the gateway's own origin when the list is empty."""
    if origin is None:
        return allow_missing
    if origin == "null":
        return False
    if allowed:
        return origin in allowed
    return same_origin is not None and origin.lower() == same_origin
