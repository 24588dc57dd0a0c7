"""A Redis that goes silent instead of refusing (a network partition, a failover that leaves
the old address black-holed): connections stay open but nothing comes back.

Redis is reached through a TCP relay in the test that can freeze (hold every byte, close
nothing). The gateway must not hang its clients: the rate limiter gives up on the shared
storage after its bounded timeouts and counts locally, the backplane notices the silence by
its PING and /readyz says so, and both come back by themselves once bytes flow again.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from nowgate.client import connect
from tests.cluster.test_redis_outage import eventually, metric, readyz
from tests.conftest import CHAT_POLICY
from tests.support.gateway import Gateway, free_port
from tests.support.redis import RedisServer, redis_process

pytestmark = pytest.mark.redis


class FreezableRelay:
    """127.0.0.1:port -> target_port, in a thread of its own (Gateway.start() blocks)."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._target = target_port
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FreezableRelay:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def freeze(self, frozen: bool = True) -> None:
        flip = self._flowing.clear if frozen else self._flowing.set
        self._loop.call_soon_threadsafe(flip)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._relay, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()
        server.close()
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.run_until_complete(asyncio.sleep(0))
        self._loop.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self._target
            )
        except OSError:
            writer.close()
            return

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    await self._flowing.wait()  # frozen: hold the bytes, close nothing
                    sink.write(data)
                    await sink.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_process() as server:
        yield server


async def test_a_silent_redis_hangs_no_client_and_is_noticed_and_recovered(
    redis: RedisServer,
) -> None:
    with FreezableRelay(redis.port) as relay:
        url = f"redis://127.0.0.1:{relay.port}/0"
        env = {"NOWGATE_REDIS_URL": url, "NOWGATE_RATE_LIMIT_STORAGE": url,
               "NOWGATE_REDIS_TIMEOUT": "0.5", "NOWGATE_METRICS_PORT": str(free_port())}
        with Gateway(CHAT_POLICY, env=env) as gateway:
            async with connect(gateway.ws_url) as alice:
                assert await alice.call("add", 1, 1) == 2
                relay.freeze()
                # The first call waits out NOWGATE_REDIS_TIMEOUT twice (a pooled connection,
                # one retry), later ones are counted locally at once. The bound only tells
                # the setting apart from redis-py's own 5 s default timeouts.
                for number in range(10):
                    assert await asyncio.wait_for(alice.call("add", number, 1), 4) == number + 1
                assert metric(gateway, "nowgate_rate_limit_local") == 1
                # Noticed by the keepalive PING (5 s of quiet, then 1 s for the answer).
                await eventually(lambda: readyz(gateway)[0] == 503, within=15)

                relay.freeze(False)
                await eventually(lambda: readyz(gateway)[0] == 200, within=10)
                for _ in range(40):
                    await alice.call("add", 0, 0)  # the shared storage is re-checked on traffic
                    if metric(gateway, "nowgate_rate_limit_local") == 0:
                        break
                    await asyncio.sleep(0.25)
                assert metric(gateway, "nowgate_rate_limit_local") == 0
                assert alice.close_code is None
