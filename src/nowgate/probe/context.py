"""What every check shares: the options, the wire, the findings so far, the canary."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

import httpx

from .findings import Category, Finding, ProbeResult, Severity, leaks
from .wire import Outcome, Welcome, Wire


@dataclass(frozen=True)
class ProbeOptions:
    url: str  # the deployment's base http(s) address
    ws_path: str = "/ws"
    origin: str | None = None  # default: the URL's own origin
    cafile: str | None = None
    timeout: float = 5.0
    allow_valid_calls: bool = False
    burst: int = 250
    frame_bytes: int = 1024 * 1024 + 1
    max_functions: int = 12
    max_requests: int = 1000
    max_connections: int = 40
    time_budget: float = 120.0
    skip: frozenset[str] = frozenset()


@dataclass
class Run:
    options: ProbeOptions
    wire: Wire
    http: httpx.AsyncClient
    result: ProbeResult
    welcome: Welcome
    # A random marker in every value the probe sends: seen in an answer, the input was echoed.
    canary: str = field(default_factory=lambda: "nowgateprobe" + secrets.token_hex(4))

    def find(
        self, category: Category, severity: Severity, title: str, sent: str, received: str
    ) -> None:
        self.result.add(Finding(category, severity, title, sent, received))

    def note(self, text: str) -> None:
        if text not in self.result.notes:
            self.result.notes.append(text)

    def inspect(self, outcome: Outcome) -> None:
        """Every error answer and close reason is read for leaks."""
        if "information-leak" in self.options.skip:
            return
        texts = []
        if outcome.reply is not None and "result" not in outcome.reply:
            texts.append(json.dumps(outcome.reply, ensure_ascii=False))
        if outcome.close_reason:
            texts.append(outcome.close_reason)
        for text in texts:
            leak = leaks(text, self.canary)
            if leak is not None:
                severity, what = leak
                self.find("information-leak", severity, f"an error answer gives away {what}",
                          outcome.sent, text)
