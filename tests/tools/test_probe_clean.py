"""`nowgate probe` finds nothing on nowgate itself: development and production mode, directly
and behind deploy/nginx.conf with TLS, and exits 0.

Every check ran (none was skipped or stopped early), within its budgets, and the gateway's
controls were really exercised: its audit log shows the refusals the probe provoked.
"""

from __future__ import annotations

import asyncio

import pytest

from nowgate.probe import CATEGORIES, ProbeError
from tests.support.gateway import Gateway, free_port
from tests.support.nginx import Nginx
from tests.tools.probing import described, probe, probe_command

KEY = "production-key-" + "x" * 32


async def test_development_gateway_is_clean(demo_gateway: Gateway) -> None:
    result = await probe(demo_gateway.base_url)
    assert result.findings == [], described(result)
    assert result.stopped is None, described(result)
    assert set(result.checks) == set(CATEGORIES)
    assert result.exit_code == 0
    assert any("without Origin is accepted" in note for note in result.notes)
    assert any(note.startswith("a request for Host nowgate-probe.invalid is served (200)")
               for note in result.notes)
    await asyncio.sleep(0.3)
    log = demo_gateway.log
    for event in ("origin_refused", "unknown_call", "validation_failure", "denied_call",
                  "bad_token", "violation_close"):
        assert event in log, event


def test_production_gateway_is_clean_and_the_command_exits_0() -> None:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    env = {"NOWGATE_MODE": "production", "NOWGATE_SECRET_KEYS": KEY,
           "NOWGATE_ALLOWED_ORIGINS": origin, "NOWGATE_ALLOWED_HOSTS": "127.0.0.1"}
    with Gateway(port=port, env=env) as gateway:
        status, document = probe_command(gateway.base_url)
    assert status == 0, document
    assert document["findings"] == [] and document["exit_code"] == 0
    assert any("without Origin is refused" in note for note in document["notes"])
    assert "a request for Host nowgate-probe.invalid is refused (400)" in document["notes"]
    assert document["connections"] <= 40 and document["requests"] <= 1000


@pytest.mark.nginx
async def test_gateway_behind_the_deployed_nginx_is_clean() -> None:
    nginx = Nginx(upstream_port=free_port())
    gateway = Gateway(port=nginx.upstream_port, env={
        "NOWGATE_MODE": "production", "NOWGATE_SECRET_KEYS": KEY,
        "NOWGATE_TRUSTED_PROXIES": "127.0.0.1", "NOWGATE_ALLOWED_ORIGINS": nginx.origin,
        "NOWGATE_ALLOWED_HOSTS": "127.0.0.1",
    })
    try:
        with gateway, nginx:
            result = await probe(nginx.https_url, cafile=str(nginx.certificate.ca))
            # Clear text only redirects: there is nothing to probe there, and the probe says so.
            with pytest.raises(ProbeError, match=r"refused \(InvalidURI: https://"):
                await probe(nginx.http_url)
    finally:
        nginx.cleanup()
    assert result.findings == [], described(result)
    assert result.stopped is None, described(result)
    assert set(result.checks) == set(CATEGORIES)
