"""`nowgate serve --workers N`: N processes on one port that form one cluster through Redis."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nowgate.client import NowClient, connect
from tests.support.gateway import REPO, Gateway
from tests.support.redis import redis_server

POLICY = Path(__file__).resolve().parents[1] / "fixtures" / "cluster.toml"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.redis
async def test_workers_share_one_port_as_one_cluster_and_stop_together() -> None:
    with redis_server() as url:
        gateway = Gateway(POLICY, env={"NOWGATE_REDIS_URL": url, "TEST_NODE_NAME": "w"},
                          command=lambda host, port: [
                              sys.executable, "-m", "nowgate", "serve", "--policy", str(POLICY),
                              "--host", host, "--port", str(port), "--workers", "2"])
        with gateway:
            clients: dict[int, NowClient] = {}
            openings = []
            for _ in range(40):  # the kernel spreads connections over the workers
                opening = connect(gateway.ws_url)
                client = await opening.__aenter__()
                openings.append(opening)
                clients.setdefault(await client.call("process"), client)
                if len(clients) == 2:
                    break
            try:
                assert len(clients) == 2, "every connection reached the same worker"
                (pid_a, first), (pid_b, second) = clients.items()
                assert gateway.process is not None and gateway.process.pid not in clients
                # A broadcast and a call cross from one worker to the other.
                heard: list[str] = []
                second.on("message", lambda room, text: heard.append(text))
                second.on("answer", lambda question: "from the other worker")
                await first.call("shout", "hello")
                assert await first.call("ask", second.client_id, "?") == "from the other worker"
                for _ in range(100):
                    if heard:
                        break
                    await asyncio.sleep(0.02)
                assert heard == ["hello"]
            finally:
                for opening in openings:
                    await opening.__aexit__(None, None, None)
            assert gateway.stop() == 0
            assert not alive(pid_a) and not alive(pid_b)


def test_more_than_one_worker_without_redis_is_refused_with_the_setting_named() -> None:
    env = {key: value for key, value in os.environ.items() if key != "NOWGATE_REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "nowgate", "serve", "--policy", str(POLICY), "--workers", "3"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "--workers 3 needs NOWGATE_REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr
