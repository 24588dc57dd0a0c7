"""The shared `now` variables: written by the server, read by clients.

Three scopes: `everyone`, `group:<name>` and `client` (one per connected client). Only
top-level names are addressed (`path` is one name), so a write can never reach into, or
replace, another scope. Group variables go away with their group.
"""

from __future__ import annotations

from typing import Any

EVERYONE = "everyone"
CLIENT = "client"
GROUP_PREFIX = "group:"


class VariableStore:
    def __init__(self) -> None:
        self.everyone: dict[str, Any] = {}
        self._groups: dict[str, dict[str, Any]] = {}
        self._clients: dict[str, dict[str, Any]] = {}

    def scope(self, scope: str, client_id: str | None = None) -> dict[str, Any]:
        """The mutable dictionary of a scope (created on first use)."""
        if scope == EVERYONE:
            return self.everyone
        if scope == CLIENT:
            if client_id is None:
                raise ValueError("the client scope needs a client id")
            return self._clients.setdefault(client_id, {})
        if scope.startswith(GROUP_PREFIX):
            return self._groups.setdefault(scope[len(GROUP_PREFIX) :], {})
        raise ValueError("unknown scope")

    def snapshot(self, client_id: str, groups: set[str]) -> dict[str, Any]:
        return {
            "everyone": dict(self.everyone),
            "groups": {name: dict(self._groups[name]) for name in groups if name in self._groups},
            "client": dict(self._clients.get(client_id, {})),
        }

    def drop_group(self, group: str) -> None:
        self._groups.pop(group, None)

    def drop_client(self, client_id: str) -> None:
        self._clients.pop(client_id, None)
