"""The public API is small and deliberate: `nowgate.__all__` is guarded here (as httpx does)."""

from __future__ import annotations

import types

import nowgate

EXPECTED = [
    "Audience",
    "Client",
    "ClientCallError",
    "Context",
    "Forbidden",
    "Gateway",
    "Handshake",
    "InvalidParams",
    "Lease",
    "Policy",
    "Principal",
    "RemoteClient",
    "RpcError",
    "Settings",
    "create_app",
    "load_policy",
    "serve",
]


def test_all_is_exactly_the_expected_public_api() -> None:
    assert nowgate.__all__ == EXPECTED


def test_all_is_sorted_and_without_duplicates() -> None:
    assert nowgate.__all__ == sorted(set(nowgate.__all__))


def test_every_public_name_of_the_package_is_exported() -> None:
    # Submodules become attributes of the package when imported; they are not API members.
    # The names load lazily: dir() lists them all, getattr() loads them.
    public = sorted(
        name
        for name in dir(nowgate)
        if not name.startswith("_")
        and not isinstance(getattr(nowgate, name), types.ModuleType)
    )
    assert public == nowgate.__all__


def test_every_exported_name_resolves_to_its_defining_module() -> None:
    for name in nowgate.__all__:
        member = getattr(nowgate, name)
        assert member.__module__.startswith("nowgate."), name
        assert member.__name__ == name
