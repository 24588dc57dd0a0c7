"""Settings: zero configuration in development, refusals with instructions in production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from nowgate.settings import Settings

KEY = "k" * 40
SAFE = {"mode": "production", "secret_keys": KEY, "allowed_origins": "https://app.example"}


def test_development_needs_no_configuration() -> None:
    settings = Settings()
    assert settings.mode == "development"
    assert settings.missing_origin_allowed is True
    assert len(settings.signing_keys()[0]) >= 32
    assert settings.trusted_proxies == ()


def test_a_safe_production_configuration_starts() -> None:
    settings = Settings(**SAFE)  # type: ignore[arg-type]
    assert settings.missing_origin_allowed is False
    assert settings.signing_keys() == [KEY]


@pytest.mark.parametrize(
    ("change", "instruction"),
    [
        ({"secret_keys": ""}, "set NOWGATE_SECRET_KEYS"),
        ({"secret_keys": "short"}, "32+ characters"),
        ({"secret_keys": f"{KEY},short"}, "32+ characters"),
        ({"allowed_origins": ""}, "set NOWGATE_ALLOWED_ORIGINS"),
        ({"allow_missing_origin": True}, "unset NOWGATE_ALLOW_MISSING_ORIGIN"),
        ({"trusted_proxies": "*"}, "NOWGATE_TRUSTED_PROXIES must list"),
        ({"trusted_proxies": "0.0.0.0/0"}, "NOWGATE_TRUSTED_PROXIES must list"),
        ({"trusted_proxies": "::/0"}, "NOWGATE_TRUSTED_PROXIES must list"),
    ],
)
def test_production_refuses_each_unsafe_setting_and_says_what_to_set(
    change: dict[str, object], instruction: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(**{**SAFE, **change})  # type: ignore[arg-type]
    assert instruction in str(refused.value)


def test_unparseable_proxy_addresses_are_refused_in_any_mode() -> None:
    with pytest.raises(ValidationError, match="not an IP address or network"):
        Settings(trusted_proxies="127.0.0.l")  # type: ignore[arg-type]
    assert Settings(trusted_proxies="127.0.0.1, 10.0.0.0/8").trusted_proxies == (  # type: ignore[arg-type]
        "127.0.0.1", "10.0.0.0/8")


def test_lists_come_from_comma_separated_environment_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOWGATE_SECRET_KEYS", f"{KEY}, {'o' * 40}")
    monkeypatch.setenv("NOWGATE_ALLOWED_ORIGINS", "https://a.example,https://b.example")
    settings = Settings()
    assert settings.signing_keys() == [KEY, "o" * 40]
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert KEY not in repr(settings)  # secrets never show in a repr or a log line
