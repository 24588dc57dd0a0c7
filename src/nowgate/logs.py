"""Logging that operators can search and attackers cannot forge.

Every message is rendered with control characters escaped, so a client-chosen string can
never start a fake log line or move a terminal's cursor. `json` format writes one JSON object
per line with the connection id, client id and client address when known.

Security events go to the `nowgate.audit` logger through `audit()`, a stream of their own
that operators can route and alert on, mirrored in the `nowgate_security_events_total`
metric. Secrets and tokens are never passed to a logger.

Events an attacker can repeat at will (refused handshakes, rate-limit hits, dropped sockets)
are aggregated so that the attacker does not choose how fast the log grows: the first per
address and window is written at once, the rest only counted; the next line after the window
carries `count`, the events since the previous line. The metric still counts every one.

Client-caused conditions that uvicorn logs itself (its per-handshake INFO lines, which the
audit stream already covers) are filtered out of its logger.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from .metrics import METRICS

AUDIT = logging.getLogger("nowgate.audit")
CONTEXT_FIELDS = (
    "connection_id", "client_id", "address", "event", "function", "code", "count"
)
AGGREGATED_EVENTS = frozenset({
    "origin_refused", "connect_rate_limited", "rate_limited", "socket_limit", "header_timeout",
    "handshake_timeout", "bad_http_request",
})
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def escape(text: str) -> str:
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


@dataclass
class Aggregation:
    """Per (event, address): when the current window began and how many events it held."""

    window: float = 60.0
    max_keys: int = 10_000
    _seen: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def count(self, event: str, address: str, now: float) -> int | None:
        """The count to log now, or None if this event is folded into a later line."""
        key = (event, address)
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.window:
            entry[1] += 1
            return None
        if entry is None and len(self._seen) >= self.max_keys:
            self._forget_older_than(now - self.window)
        self._seen[key] = [now, 0.0]
        return 1 + int(entry[1]) if entry is not None else 1

    def _forget_older_than(self, start: float) -> None:
        for key in [key for key, (began, _) in self._seen.items() if began < start]:
            del self._seen[key]
        if len(self._seen) >= self.max_keys:
            self._seen.clear()  # memory stays bounded; at worst a few lines more


AUDIT_AGGREGATION = Aggregation()


def audit(event: str, **fields: Any) -> None:
    """Record a security event (refused handshake, denied call, forged token...)."""
    METRICS.security_events.labels(event).inc()
    if event in AGGREGATED_EVENTS:
        count = AUDIT_AGGREGATION.count(event, str(fields.get("address")), time.monotonic())
        if count is None:
            return
        fields["count"] = count
    AUDIT.warning(event, extra={"event": event, **fields})


class _ClientNoise(logging.Filter):
    """Drops uvicorn's per-handshake lines ('"WebSocket /ws" [accepted]', '... 403') and
    websockets' per-connection INFO lines: one per connection attempt, so a flood of
    attempts would be a flood of lines; the audit stream records the refusals."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message in _CLIENT_CAUSED:  # audited instead, aggregated (nowgate.admission)
            return False
        if record.levelno > logging.INFO:
            return True
        return not (
            message.startswith('%s - "WebSocket %s"') or message in _WEBSOCKETS_INFO
        )


_WEBSOCKETS_INFO = frozenset({
    "connection open", "connection closed", "connection rejected (%d %s)",
    "HTTP response sent (%d %s)",
})
_CLIENT_CAUSED = frozenset({"Invalid HTTP request received."})


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = escape(record.getMessage())
        context = " ".join(
            f"{name}={escape(str(getattr(record, name)))}"
            for name in CONTEXT_FIELDS
            if getattr(record, name, None) is not None and name != "event"
        )
        stamp = self.formatTime(record)
        text = f"{stamp} {record.levelname} {record.name} {line}"
        if context:
            text += " " + context
        if record.exc_info:
            # Tracebacks stay in the server's log (never in a reply), escaped line by line.
            trace = self.formatException(record.exc_info)
            text += "\n" + "\n".join(escape(part) for part in trace.splitlines())
        return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": escape(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = escape(str(value))
        if record.exc_info:
            entry["exception"] = escape(self.formatException(record.exc_info))
        # ensure_ascii keeps every non-ASCII character escaped too.
        return json.dumps(entry, ensure_ascii=True)


def configure_logging(log_format: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    noise = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _ClientNoise) for existing in noise.filters):
        noise.addFilter(_ClientNoise())
