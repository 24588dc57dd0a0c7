"""The naming rules every layer checks against: one leaf module, no imports of nowgate.

A name a client sends (a method, a variable) and a name server code chooses (a group, a
handler in a policy file) are matched against these patterns before anything looks them up,
so no dunder, path or oversized key ever reaches a dictionary or a module namespace.
"""

from __future__ import annotations

import re

# Functions, client functions and variables: what a policy can declare and a client name.
METHOD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# Group names are chosen by server code; they travel in tokens and `group:<name>` scopes.
GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
# The handler module a policy names (a dotted import path).
MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# Methods of the protocol itself; a policy cannot declare names with this prefix.
PROTOCOL_PREFIX = "now."
HELLO = PROTOCOL_PREFIX + "hello"
CLIENT_SET = PROTOCOL_PREFIX + "set"
# Names a client may never write, whatever a policy says: they are the identity.
RESERVED_VARIABLES = frozenset(
    {"client_id", "clientId", "uuid", "user", "roles", "groups", "token"}
)


def is_method_name(name: str) -> bool:
    """A name that may reach the policy table: a declarable name or a protocol `now.` name."""
    if name.startswith(PROTOCOL_PREFIX):
        return METHOD_NAME.fullmatch(name[len(PROTOCOL_PREFIX) :]) is not None
    return METHOD_NAME.fullmatch(name) is not None


def check_variable_name(path: str) -> None:
    """Raise ValueError for a variable name server code may not write."""
    if not METHOD_NAME.fullmatch(path):
        raise ValueError(f"invalid variable name (must match {METHOD_NAME.pattern})")


def check_group_name(group: str) -> None:
    """Raise ValueError for a group name server code may not use."""
    if not GROUP_NAME.fullmatch(group):
        raise ValueError(f"invalid group name (must match {GROUP_NAME.pattern})")
