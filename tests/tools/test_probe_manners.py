"""The probe is polite: it keeps to its budgets, stops at signs of distress, and says so.

A run that stops early is reported with the reason and a non-zero exit status (3, or 1 when
it found something first); a target that is not there, or not a nowgate gateway, is exit 2.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nowgate.probe import CATEGORIES, ProbeError
from tests.support.gateway import REPO, Gateway, free_port
from tests.support.naive_server import NaiveServer
from tests.tools.probing import described, probe


async def test_the_request_budget_is_kept(demo_gateway: Gateway) -> None:
    result = await probe(demo_gateway.base_url, max_requests=40)
    assert result.stopped == "the request budget of 40 ran out", described(result)
    assert result.requests <= 40
    assert result.exit_code == 3
    assert "rate-limit" not in result.checks


async def test_the_connection_budget_is_kept(demo_gateway: Gateway) -> None:
    result = await probe(demo_gateway.base_url, max_connections=5)
    assert result.stopped == "the connection budget of 5 ran out", described(result)
    assert result.connections == 5


@pytest.fixture
def distressed(tmp_path: Path) -> Iterator[NaiveServer]:
    server = NaiveServer(tmp_path, "--distress")
    yield server
    server.stop()


async def test_a_burst_of_server_errors_stops_the_run(distressed: NaiveServer) -> None:
    result = await probe(distressed.url)
    assert result.stopped is not None and "distress" in result.stopped, described(result)
    assert "HTTP 503" in result.stopped
    # The welcome, then three HTTP requests: the third 503 in a row ends it.
    assert result.requests == 4
    assert result.checks == []


async def test_a_closed_port_is_not_a_target() -> None:
    with pytest.raises(ProbeError, match="refused"):
        await probe(f"http://127.0.0.1:{free_port()}")


async def test_a_path_without_a_gateway_is_not_a_target(demo_gateway: Gateway) -> None:
    with pytest.raises(ProbeError, match=r"/healthz .* was refused \(HTTP 403\)"):
        await probe(demo_gateway.base_url, ws_path="/healthz")


def test_the_command_exits_2_when_it_cannot_probe() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "nowgate", "probe", f"http://127.0.0.1:{free_port()}"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("nowgate probe: ") and "refused" in completed.stderr
    assert "Traceback" not in completed.stderr


async def test_valid_calls_only_when_allowed_and_then_the_burst_meets_the_function_rate(
    demo_gateway: Gateway,
) -> None:
    start = len(demo_gateway.log)
    result = await probe(demo_gateway.base_url, skip=frozenset(CATEGORIES) - {"rate-limit"})
    await asyncio.sleep(0.3)
    assert result.findings == [] and "rate_limited" not in demo_gateway.log[start:]
    start = len(demo_gateway.log)
    result = await probe(demo_gateway.base_url, allow_valid_calls=True,
                         skip=frozenset(CATEGORIES) - {"rate-limit"})
    await asyncio.sleep(0.3)
    assert result.findings == [], described(result)
    # grab() takes no arguments: the burst called it until its 20/second rate answered -32029.
    assert "rate_limited" in demo_gateway.log[start:]
