"""Logging that operators can search and attackers cannot forge.

Every message is rendered with control characters escaped, so a client-chosen string can
never start a fake log line or move a terminal's cursor. `json` format writes one JSON object
per line with the connection id, client id and client address when known.

Security events go to the `nowgate.audit` logger through `audit()`, a stream of their own
that operators can route and alert on, mirrored in the `nowgate_security_events_total`
metric. Secrets and tokens are never passed to a logger.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from .metrics import METRICS

AUDIT = logging.getLogger("nowgate.audit")
CONTEXT_FIELDS = ("connection_id", "client_id", "address", "event", "function", "code")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def escape(text: str) -> str:
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def audit(event: str, **fields: Any) -> None:
    """Record a security event (refused handshake, denied call, forged token...)."""
    METRICS.security_events.labels(event).inc()
    AUDIT.warning(event, extra={"event": event, **fields})


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
