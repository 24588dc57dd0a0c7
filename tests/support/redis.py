"""A real redis-server for tests, on a loopback ephemeral port (see TOOLING.md)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.gateway import free_port, terminate


class RedisServer:
    """One non-persistent redis-server; `stop()` then `start()` restarts it on the same port
    (an outage as the gateways see it: connections refused, then an empty server)."""

    def __init__(self, directory: str) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed: run scripts/test, which installs it")
        self._executable = executable
        self._directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [self._executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self._directory, "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            terminate(self.process, sig, 10)
            self.process = None


@contextmanager
def redis_process() -> Iterator[RedisServer]:
    """A running RedisServer, stopped at the end whatever the test did to it."""
    with tempfile.TemporaryDirectory(prefix="nowgate-redis-") as directory:
        server = RedisServer(directory).start()
        try:
            yield server
        finally:
            server.stop()


@contextmanager
def redis_server() -> Iterator[str]:
    """Yield the URL of a fresh, empty, non-persistent redis-server."""
    with redis_process() as server:
        yield server.url


