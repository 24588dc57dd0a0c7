"""Operating the gateway: health, readiness, metrics, shutdown, credential lifetime."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from nowgate.client import CallError, connect
from tests.conftest import CHAT_POLICY
from tests.support.gateway import Gateway, free_port


def test_healthz_and_readyz_answer(chat_gateway: Gateway) -> None:
    assert httpx.get(chat_gateway.base_url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(chat_gateway.base_url + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert "connections" not in ready.json()  # public: nothing about the clients


async def test_sigterm_drains_in_flight_calls_closes_1001_and_clients_resume() -> None:
    gateway = Gateway(CHAT_POLICY, env={"NOWGATE_SHUTDOWN_GRACE": "3"})
    with gateway:
        async with connect(gateway.ws_url) as client:
            await client.call("join", "ops")
            await asyncio.sleep(0.1)
            client_id, token = client.client_id, client.token
            in_flight = asyncio.create_task(client.call("nap", 1.0))
            await asyncio.sleep(0.1)
            gateway.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            await asyncio.sleep(0.3)
            with pytest.raises(CallError) as refused:  # no new calls while draining
                await client.call("add", 1, 1)
            assert refused.value.code == -32029
            assert refused.value.data["reason"] == "draining"
            assert await in_flight == "rested"  # finished within the grace period
            assert await asyncio.wait_for(client.wait_closed(), 10) == 1001
        gateway.stop()
        gateway.start()
        async with connect(gateway.ws_url, token=token) as again:
            assert again.resumed is True
            assert again.client_id == client_id
            assert (await again.call("whoami"))["groups"] == ["ops"]


def test_metrics_are_served_on_their_own_loopback_port() -> None:
    metrics_port = free_port()
    with Gateway(CHAT_POLICY, env={"NOWGATE_METRICS_PORT": str(metrics_port)}) as gateway:
        async def traffic() -> None:
            async with connect(gateway.ws_url) as client:
                await client.call("add", 1, 2)
                with pytest.raises(Exception):  # noqa: B017 - the error reply is the point
                    await client.call("add", "x")
        asyncio.run(traffic())
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert 'nowgate_messages_in_total{function="add"} 2.0' in text
        assert 'nowgate_validation_failures_total{function="add"} 1.0' in text
        assert 'nowgate_security_events_total{event="validation_failure"} 1.0' in text
        # Not on the public port.
        assert httpx.get(gateway.base_url + "/metrics").status_code == 404


def test_audit_events_are_logged_without_the_token(chat_gateway: Gateway) -> None:
    async def forged() -> str:
        async with connect(chat_gateway.ws_url, token="forged.token.value\nFAKE LINE") as client:
            return client.client_id
    asyncio.run(forged())
    log = chat_gateway.log
    assert "bad_token" in log
    assert "forged.token.value" not in log
    assert "\nFAKE LINE" not in log
