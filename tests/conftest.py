from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import DEMO_POLICY, Gateway

CHAT_POLICY = Path(__file__).parent / "fixtures" / "chat.toml"


@pytest.fixture(scope="module")
def demo_gateway() -> Iterator[Gateway]:
    with Gateway(DEMO_POLICY) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def chat_gateway() -> Iterator[Gateway]:
    with Gateway(CHAT_POLICY) as gateway:
        yield gateway
