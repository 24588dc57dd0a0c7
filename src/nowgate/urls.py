"""Service URLs as logs and error messages may show them: without their password."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HIDDEN = "***"


def redact_url(url: str) -> str:
    """`redis://user:secret@host:6379/0` -> `redis://user:***@host:6379/0` (query too)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            credentials, host = netloc.rsplit("@", 1)
            if ":" in credentials:
                credentials = credentials.split(":", 1)[0] + ":" + HIDDEN
            else:
                # redis://secret@host: a lone userinfo is the password to redis-py.
                credentials = HIDDEN
            netloc = f"{credentials}@{host}"
        query = urlencode(
            [
                (key, HIDDEN if key.lower() == "password" else value)
                for key, value in parse_qsl(parts.query, keep_blank_values=True)
            ],
            safe="*",
        )
        if "://" not in url:
            return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
        # Assembled by hand: urlunsplit would turn unix:///path into unix:/path.
        shown = f"{parts.scheme}://{netloc}{parts.path}"
        if query:
            shown += f"?{query}"
        if parts.fragment:
            shown += f"#{parts.fragment}"
        return shown
    except ValueError:
        return "(an unparsable URL)"
