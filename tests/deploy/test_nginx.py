"""deploy/nginx.conf in front of a real gateway, configured as deploy/README.md says.

nginx runs the deployed file itself (tests/support/nginx.py only swaps ports, paths, the
certificate and the host name); the gateway runs in production mode, trusting X-Forwarded-*
from 127.0.0.1 only. Clients are bound to other loopback addresses (127.0.0.5...) so that the
address nginx forwards can be told from nginx's own 127.0.0.1. Production nginx serves
nothing in clear text, so every WebSocket here is wss:// through nginx's TLS port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from nowgate.client import CallError, NowClient, connect
from nowgate.headers import SECURITY_HEADERS
from nowgate.settings import Settings
from tests.support.gateway import Gateway, free_port
from tests.support.nginx import DEPLOY_CONFIG, Nginx

pytestmark = pytest.mark.nginx

CONNECT_BUDGET = 3  # NOWGATE_CONNECT_RATE_PER_ADDRESS below
FORGED = "203.0.113.9"
FORGING_HEADERS = {"X-Forwarded-For": FORGED, "X-Forwarded-Proto": "https"}

Stack = tuple[Gateway, Nginx]
Opening = contextlib.AbstractAsyncContextManager[NowClient]


@contextlib.contextmanager
def proxied_gateway(**env: str) -> Iterator[Stack]:
    """nginx on loopback ports in front of a gateway with deploy/README.md's settings."""
    nginx = Nginx(upstream_port=free_port())
    gateway = Gateway(
        port=nginx.upstream_port,
        env={
            "NOWGATE_MODE": "production",
            "NOWGATE_TRUSTED_PROXIES": "127.0.0.1",
            "NOWGATE_ALLOWED_ORIGINS": nginx.origin,
            "NOWGATE_ALLOWED_HOSTS": "127.0.0.1",
            "NOWGATE_CONNECT_RATE_PER_ADDRESS": f"{CONNECT_BUDGET}/minute",
            "NOWGATE_LOG_FORMAT": "json",
            **env,
        },
    )
    try:
        with gateway, nginx:
            yield gateway, nginx
    finally:
        nginx.cleanup()  # also when the gateway failed to start


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with proxied_gateway() as pair:
        yield pair


def via_nginx(nginx: Nginx, address: str, *, origin: str | None = None, **options: Any) -> Opening:
    """A client at `address` connecting as a browser on the site would: wss, the site's origin."""
    return connect(
        nginx.wss_url,
        origin=origin or nginx.origin,
        ssl=nginx.ssl_context(),
        local_addr=(address, 0),
        open_timeout=5,
        **options,
    )


def direct(gateway: Gateway, nginx: Nginx, address: str, **options: Any) -> Opening:
    """A client at `address` bypassing nginx, straight to the gateway's port."""
    return connect(
        gateway.ws_url, origin=nginx.origin, local_addr=(address, 0), open_timeout=5, **options
    )


async def attempt(opening: Opening) -> int | None:
    """None if the session opened, else the close code the client received."""
    try:
        async with opening:
            return None
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


async def exhaust(opener: Callable[[], Opening]) -> int | None:
    """Use up an address's connection budget; the close code of the first one past it."""
    for _ in range(CONNECT_BUDGET):
        assert await attempt(opener()) is None
    return await attempt(opener())


def log_entries(gateway: Gateway, start: int = 0) -> list[dict[str, Any]]:
    lines = gateway.log[start:].splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def refused_addresses(gateway: Gateway, start: int, expected: int) -> list[str]:
    """Addresses of `connect_rate_limited` events logged after `start`, once there are enough."""
    deadline = time.monotonic() + 5
    while True:
        found = [
            entry.get("address", "")
            for entry in log_entries(gateway, start)
            if entry.get("event") == "connect_rate_limited"
        ]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.02)


# a. The demo, the page and the origin check through nginx ---------------------------------


async def test_demo_drag_is_relayed_through_nginx_over_tls(stack: Stack) -> None:
    _, nginx = stack
    moves: asyncio.Queue[Any] = asyncio.Queue()
    async with via_nginx(nginx, "127.0.0.2") as dragger, \
            via_nginx(nginx, "127.0.0.3") as watcher:
        watcher.on("updatePosition", moves.put_nowait)
        assert await dragger.call("syncPosition", {"left": 10, "top": 20}) is True
        assert await asyncio.wait_for(moves.get(), 5) == {"left": 10, "top": 20}
        assert dragger.client_id != watcher.client_id


async def test_origin_check_still_applies_behind_nginx(stack: Stack) -> None:
    _, nginx = stack
    for origin in ("https://evil.example", None):  # production: a missing Origin is refused
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                nginx.wss_url, origin=origin, ssl=nginx.ssl_context(), local_addr=("127.0.0.4", 0)
            ):
                pass
        assert refused.value.response.status_code == 403


async def test_the_gateway_sees_the_https_scheme_nginx_forwards() -> None:
    # With an empty allow-list the gateway accepts its own origin only, built from the Host
    # nginx forwards ($host: without the port) and the scheme in X-Forwarded-Proto.
    with proxied_gateway(NOWGATE_MODE="development", NOWGATE_ALLOWED_ORIGINS="") as (_, nginx):
        assert await attempt(via_nginx(nginx, "127.0.0.14", origin="https://127.0.0.1")) is None
        with pytest.raises(InvalidStatus) as refused:
            async with via_nginx(nginx, "127.0.0.14", origin="http://127.0.0.1"):
                pass
        assert refused.value.response.status_code == 403


def test_page_is_served_through_nginx_with_security_headers(stack: Stack) -> None:
    _, nginx = stack
    with httpx.Client(verify=nginx.ssl_context(), timeout=5) as http:
        page = http.get(nginx.https_url + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="draggable"' in page.text and "/nowjs/now.js" in page.text
    for name, value in SECURITY_HEADERS:  # set by the gateway, passed on by nginx
        assert page.headers[name] == value, name
    assert page.headers["strict-transport-security"] == "max-age=63072000"  # set by nginx
    assert page.headers["server"] == "nginx"  # no version


def test_clear_text_http_only_redirects_to_https_and_answers_acme(stack: Stack) -> None:
    _, nginx = stack
    for path in ("/", "/ws?x=1", "/healthz"):
        response = httpx.get(nginx.http_url + path, timeout=5)
        assert response.status_code == 301
        assert response.headers["location"] == "https://127.0.0.1" + path
    challenge = nginx.acme_root / ".well-known" / "acme-challenge" / "t0ken"
    challenge.parent.mkdir(parents=True)
    challenge.write_text("t0ken.thumbprint", encoding="ascii")
    response = httpx.get(nginx.http_url + "/.well-known/acme-challenge/t0ken", timeout=5)
    assert (response.status_code, response.text) == (200, "t0ken.thumbprint")


def test_unknown_host_names_get_no_answer(stack: Stack) -> None:
    _, nginx = stack
    with httpx.Client(verify=nginx.ssl_context(), timeout=5) as http:
        for url in (nginx.http_url, nginx.https_url):
            # 444: closed (reset, with reset_timedout_connection on) without a response.
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                http.get(url + "/", headers={"Host": "evil.example"})


def test_proxy_timeouts_outlast_the_gateway_heartbeat() -> None:
    # An idle WebSocket carries only the gateway's pings and the pongs: nginx must not time
    # it out in between (its 60 s default would be enough too; a shorter value would not).
    defaults = Settings.model_fields
    heartbeat = defaults["ping_interval"].default + defaults["ping_timeout"].default
    config = DEPLOY_CONFIG.read_text(encoding="utf-8")
    for name in ("proxy_read_timeout", "proxy_send_timeout"):
        values = re.findall(rf"^\s*{name}\s+(\d+)s;", config, flags=re.MULTILINE)
        assert values and all(int(value) > heartbeat for value in values), name


# b. Limits and the audit log see the client's address, not nginx's ------------------------


async def test_connect_rate_is_per_forwarded_address_and_logged_with_it(stack: Stack) -> None:
    gateway, nginx = stack
    start = len(gateway.log)
    assert await exhaust(partial(via_nginx, nginx, "127.0.0.5")) == 1013
    # Keyed on 127.0.0.5, not on nginx's 127.0.0.1: another address still gets in.
    assert await attempt(via_nginx(nginx, "127.0.0.6")) is None
    assert await refused_addresses(gateway, start, 1) == ["127.0.0.5"]


# c. A forged X-Forwarded-For is never believed ---------------------------------------------


async def test_forged_x_forwarded_for_sent_directly_to_the_gateway_is_ignored(
    stack: Stack,
) -> None:
    gateway, nginx = stack
    start = len(gateway.log)
    opener = partial(direct, gateway, nginx, "127.0.0.7", additional_headers=FORGING_HEADERS)
    assert await exhaust(opener) == 1013
    # Were it keyed on the forged address, this one (same forged header) would be refused.
    other = direct(gateway, nginx, "127.0.0.9", additional_headers=FORGING_HEADERS)
    assert await attempt(other) is None
    assert await refused_addresses(gateway, start, 1) == ["127.0.0.7"]
    assert FORGED not in gateway.log[start:]


@pytest.mark.parametrize(
    ("address", "other"),
    [
        ("127.0.0.8", "127.0.0.10"),
        # 127.0.0.1 is itself a trusted proxy address (think: another process on the proxy
        # host). uvicorn would skip it and believe the planted address if nginx appended to
        # the client's X-Forwarded-For; only nginx's overwrite keeps 203.0.113.9 out.
        ("127.0.0.1", "127.0.0.11"),
    ],
)
async def test_forged_x_forwarded_for_sent_through_nginx_is_overwritten(
    stack: Stack, address: str, other: str
) -> None:
    gateway, nginx = stack
    start = len(gateway.log)
    opener = partial(via_nginx, nginx, address, additional_headers=FORGING_HEADERS)
    assert await exhaust(opener) == 1013
    assert await attempt(via_nginx(nginx, other, additional_headers=FORGING_HEADERS)) is None
    assert await refused_addresses(gateway, start, 1) == [address]
    assert FORGED not in gateway.log[start:]


# d. A gateway restart behind nginx: 1001 reaches the clients, identities resume ------------


async def test_sigterm_closes_clients_with_1001_through_nginx_and_they_resume() -> None:
    with proxied_gateway(NOWGATE_SHUTDOWN_GRACE="1") as (gateway, nginx):
        moves: asyncio.Queue[Any] = asyncio.Queue()
        # Resumed by hand below, after the restart: no automatic reconnection here.
        async with via_nginx(nginx, "127.0.0.12", reconnect=False) as dragger, \
                via_nginx(nginx, "127.0.0.13", reconnect=False) as watcher:
            watcher.on("updatePosition", moves.put_nowait)
            identities = [(c.client_id, c.token) for c in (dragger, watcher)]

            async def drag() -> None:
                left = 0
                with contextlib.suppress(CallError, ConnectionError, ConnectionClosed):
                    while True:
                        left = (left + 1) % 1000
                        await dragger.call("syncPosition", {"left": left, "top": 5})
                        await asyncio.sleep(0.005)

            traffic = asyncio.create_task(drag())
            for _ in range(5):  # moves are flowing through nginx
                await asyncio.wait_for(moves.get(), 5)
            assert gateway.process is not None
            gateway.process.send_signal(signal.SIGTERM)
            codes = await asyncio.wait_for(
                asyncio.gather(dragger.wait_closed(), watcher.wait_closed()), 10
            )
            assert codes == [1001, 1001]  # "going away, resume later", through nginx
            await asyncio.wait_for(traffic, 5)
        # Exited on its own within the grace (uvicorn re-raises SIGTERM: -15), not killed.
        assert gateway.stop() in (0, -signal.SIGTERM)
        gateway.start()

        async with via_nginx(nginx, "127.0.0.12", token=identities[0][1]) as dragger, \
                via_nginx(nginx, "127.0.0.13", token=identities[1][1]) as watcher:
            assert (dragger.resumed, watcher.resumed) == (True, True)
            assert [dragger.client_id, watcher.client_id] == [i for i, _ in identities]
            resumed_moves: asyncio.Queue[Any] = asyncio.Queue()
            watcher.on("updatePosition", resumed_moves.put_nowait)
            assert await dragger.call("syncPosition", {"left": 7, "top": 8}) is True
            assert await asyncio.wait_for(resumed_moves.get(), 5) == {"left": 7, "top": 8}

