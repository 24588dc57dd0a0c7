"""Redis URLs are shown in start-up errors and logs: never with their password."""

from __future__ import annotations

import pytest

from nowgate.urls import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@10.0.0.5:6379/0", "redis://:***@10.0.0.5:6379/0"),
        ("rediss://ops:s3cret@redis.internal:6380", "rediss://ops:***@redis.internal:6380"),
        ("redis://s3cret@10.0.0.5", "redis://***@10.0.0.5"),
        ("redis://:p%40ss:w@h:1", "redis://:***@h:1"),
        ("unix:///run/redis.sock?db=0&password=s3cret", "unix:///run/redis.sock?db=0&password=***"),
        ("redis+sentinel://:s3cret@h1:26379,h2:26379/main",
         "redis+sentinel://:***@h1:26379,h2:26379/main"),
    ],
)
def test_the_password_never_shows(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url)
