"""What the probe reports: findings (each in one category), notes, and how the run ended."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Category = Literal[
    "origin", "method-lookup", "validation", "identity", "token", "traversal", "headers",
    "frame-size", "information-leak", "rate-limit",
]  # fmt: skip
CATEGORIES: tuple[Category, ...] = (
    "origin", "method-lookup", "validation", "identity", "token", "traversal", "headers",
    "frame-size", "information-leak", "rate-limit",
)  # fmt: skip
Severity = Literal["high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low")
# What was sent and what came back are quoted, never whole: a report stays readable, and a
# large answer (a file the server should not have served) is not copied around.
QUOTE_LIMIT = 300


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


@dataclass(frozen=True)
class Finding:
    category: Category
    severity: Severity
    title: str
    sent: str
    received: str

    def as_dict(self) -> dict[str, str]:
        return {
            "category": self.category,
            "severity": self.severity,
            "title": self.title,
            "sent": quote(self.sent),
            "received": quote(self.received),
        }


@dataclass
class ProbeResult:
    target: str
    findings: list[Finding] = field(default_factory=list)
    # What the probe saw that is not a weakness in itself, or what it could not check.
    notes: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    stopped: str | None = None
    requests: int = 0
    connections: int = 0
    seconds: float = 0.0

    occurrences: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, finding: Finding) -> None:
        """One finding per category and title: the first example stands for the others."""
        key = (finding.category, finding.title)
        if key not in self.occurrences:
            self.findings.append(finding)
        self.occurrences[key] = self.occurrences.get(key, 0) + 1

    def count(self, finding: Finding) -> int:
        return self.occurrences.get((finding.category, finding.title), 1)

    @property
    def exit_code(self) -> int:
        """0: nothing found; 1: findings; 3: stopped before every check ran."""
        if self.findings:
            return 1
        return 3 if self.stopped else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "nowgate_probe": 1,
            "target": self.target,
            "findings": [
                {**finding.as_dict(), "occurrences": self.count(finding)}
                for finding in self.findings
            ],
            "notes": list(self.notes),
            "checks": list(self.checks),
            "stopped": self.stopped,
            "requests": self.requests,
            "connections": self.connections,
            "seconds": round(self.seconds, 2),
            "exit_code": self.exit_code,
        }


# Leaks ------------------------------------------------------------------------------------

_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")
_EXCEPTION_NAME = re.compile(r"\b(?:[A-Z][a-z0-9]+)+(?:Error|Exception)\b")
_SERVER_PATH = re.compile(
    r"(?<![\w/.])/(?:home|srv|usr|opt|var|etc|root|app|tmp|proc|lib)/[\w.\-/]+"
    r"|\b[A-Za-z]:\\[\w.\-\\]+|[\w\-/]+\.py\b"
)


def leaks(text: str, canary: str | None = None) -> tuple[Severity, str] | None:
    """The worst thing `text` (an error reply, a close reason) gives away, if anything."""
    if _TRACEBACK.search(text):
        return ("high", "a traceback")
    path = _SERVER_PATH.search(text)
    if path:
        return ("medium", f"a server file path ({path.group(0)[:80]})")
    name = _EXCEPTION_NAME.search(text)
    if name:
        return ("medium", f"an exception name ({name.group(0)})")
    if canary is not None and canary in text:
        return ("low", "the probe's own input, echoed back")
    return None
