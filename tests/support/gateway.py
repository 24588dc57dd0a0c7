"""A real gateway for tests: `python -m nowgate serve` in a subprocess on a loopback port."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx

REPO = Path(__file__).resolve().parents[2]
DEMO_POLICY = REPO / "policies" / "demo.toml"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def terminate(process: subprocess.Popen[bytes], sig: int, timeout: float) -> int | None:
    """Signal a child started with start_new_session; kill its group if it lingers."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


class Gateway:
    """One gateway process; `stop()` then `start()` restarts it on the same port and key.

    By default `python -m nowgate serve --policy POLICY`; `command(host, port)` runs
    something else that serves the gateway (plain uvicorn, an embedding application).
    """

    def __init__(
        self,
        policy: Path = DEMO_POLICY,
        env: dict[str, str] | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        command: Callable[[str, int], list[str]] | None = None,
        cwd: Path = REPO,
    ) -> None:
        self.policy = policy
        self.command = command or self._serve
        self.cwd = cwd
        self.host = host
        self.port = port or free_port(host)
        self.env = {
            "NOWGATE_SECRET_KEYS": secrets.token_urlsafe(32),
            # Tests open many connections from one address in a short time.
            "NOWGATE_CONNECT_RATE_PER_ADDRESS": "1000/minute",
            # The demo page, as scripts/demo serves it.
            "NOWGATE_STATIC_DIR": str(REPO / "static"),
            **(env or {}),
        }
        descriptor, self._log_path = tempfile.mkstemp(prefix="nowgate-", suffix=".log")
        self._log = os.fdopen(descriptor, "wb")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def log(self) -> str:
        return Path(self._log_path).read_text(encoding="utf-8", errors="replace")

    def _serve(self, host: str, port: int) -> list[str]:
        return [sys.executable, "-m", "nowgate", "serve", "--policy", str(self.policy),
                "--host", host, "--port", str(port)]

    def start(self, timeout: float = 20.0) -> Gateway:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            self.command(self.host, self.port),
            cwd=self.cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gateway did not become healthy:\n{self.log}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.process is None:
            return None
        process, self.process = self.process, None
        return terminate(process, sig, timeout)

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
        self._log.close()
        os.unlink(self._log_path)

