"""Test-only access to a nowgate.client connection: frames the public API never sends."""

from __future__ import annotations

import json
from typing import Any

from nowgate.client import NowClient


async def send_raw(client: NowClient, message: Any) -> None:
    """Send `message` (a str as is, anything else as JSON) on the client's current socket."""
    connection = client._connection  # past the public API, on purpose
    assert connection is not None, "the client is not connected"
    await connection.send(message if isinstance(message, str) else json.dumps(message))
