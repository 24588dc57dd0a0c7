"""Running the probe in tests: in-process (to read its findings) or as the command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import jsonschema

from nowgate.probe import ProbeOptions, ProbeResult, run_probe
from nowgate.probe.render import result_schema
from tests.support.gateway import REPO


async def probe(url: str, **options: Any) -> ProbeResult:
    result = await run_probe(ProbeOptions(url=url, **options))
    jsonschema.validate(result.as_dict(), result_schema())
    return result


def described(result: ProbeResult) -> str:
    """The whole result, for assertion messages."""
    return json.dumps(result.as_dict(), indent=1)


def probe_command(*args: str) -> tuple[int, dict[str, Any]]:
    """`nowgate probe ARGS --format json`: exit status and the validated JSON document."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("NOWGATE_")}
    completed = subprocess.run(
        [sys.executable, "-m", "nowgate", "probe", *args, "--format", "json"],
        cwd=REPO, env=clean, capture_output=True, text=True, timeout=180, check=False,
    )
    assert completed.stdout, completed.stderr
    document: dict[str, Any] = json.loads(completed.stdout)
    jsonschema.validate(document, result_schema())
    return completed.returncode, document
