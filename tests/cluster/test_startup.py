"""`nowgate serve` with a Redis it cannot reach: one line naming the setting and the URL
(its password hidden), a non-zero exit, no traceback, no uvicorn started."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.gateway import DEMO_POLICY, REPO, free_port

PASSWORD = "hunter2-not-for-logs"


def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nowgate", "serve", "--policy", str(DEMO_POLICY),
         "--port", str(free_port())],
        cwd=REPO, env={**os.environ, "NOWGATE_REDIS_TIMEOUT": "0.5", **env},
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize(
    ("setting", "url", "shown"),
    [
        ("NOWGATE_REDIS_URL", "redis://:{pw}@127.0.0.1:{port}/0", "redis://:***@127.0.0.1:{port}/0"),
        ("NOWGATE_RATE_LIMIT_STORAGE", "redis://ops:{pw}@127.0.0.1:{port}",
         "redis://ops:***@127.0.0.1:{port}"),
    ],
)
def test_unreachable_redis_at_start_up_is_one_line_naming_the_setting(
    setting: str, url: str, shown: str
) -> None:
    port = free_port()  # nothing listens there
    result = serve({setting: url.format(pw=PASSWORD, port=port)})
    assert result.returncode == 1
    output = result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("nowgate:")]
    assert errors == [
        f"nowgate: cannot reach {shown.format(port=port)} ({setting}): ConnectionError: "
        f"Error 111 connecting to 127.0.0.1:{port}. Connection refused."
    ]
    assert PASSWORD not in output
    assert "Traceback" not in output
    assert "Uvicorn running" not in output
