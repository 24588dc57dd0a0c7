"""The probe's manners: bounded requests, connections and time; it stops at signs of distress.

Every request and every connection is counted before it is made. The run stops (and says why)
when a bound is reached, when a connection is refused, when the server answers with a burst
of 5xx statuses or 1011 closes or stops answering, or when it asks the probe to back off
(HTTP 429, close 1013 at connect time). A stopped run reports what it found so far and exits
non-zero.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

DISTRESS_BURST = 3  # this many server errors in a row end the run


class ProbeStopped(Exception):
    """The probe stops here; the message says why (shown to the operator)."""


@dataclass
class Limits:
    max_requests: int = 1000
    max_connections: int = 40
    time_budget: float = 120.0


class Budget:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._started = time.monotonic()
        self.requests = 0
        self.connections = 0
        self._server_errors = 0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def _check_time(self) -> None:
        if self.elapsed > self.limits.time_budget:
            raise ProbeStopped(f"the time budget of {self.limits.time_budget:g} s ran out")

    def request(self, count: int = 1) -> None:
        self._check_time()
        if self.requests + count > self.limits.max_requests:
            raise ProbeStopped(f"the request budget of {self.limits.max_requests} ran out")
        self.requests += count

    def connection(self) -> None:
        self._check_time()
        if self.connections >= self.limits.max_connections:
            raise ProbeStopped(
                f"the connection budget of {self.limits.max_connections} ran out"
            )
        self.connections += 1

    def server_error(self, what: str) -> None:
        """A 5xx, a 1011 or a missing answer: after a burst of them the server is in
        distress, and we stop."""
        self._server_errors += 1
        if self._server_errors >= DISTRESS_BURST:
            raise ProbeStopped(f"the server is in distress ({what}, {DISTRESS_BURST} in a row)")

    def healthy_answer(self) -> None:
        self._server_errors = 0
