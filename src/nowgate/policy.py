"""Policy files: which functions each client may call, at what rate, with what arguments.

A policy is deny-by-default: a function that is not declared does not exist for clients, and
a declared function must exist in the handler module with fully typed parameters. Loading
fails closed with a `PolicyFileError` naming the file and the key. The loaded policy is
frozen, and `authorize()` is a dictionary look-up: a client-supplied name is never resolved
as an attribute.

    handlers = "app.demo"                 # module holding the handlers

    [hooks]                               # optional, names in the handler module
    authenticate = "authenticate"
    connect = "on_connect"
    disconnect = "on_disconnect"

    [functions.syncPosition]              # a server function clients may call
    rate = "60/second"                    # per client identity (limits syntax)
    max_bytes = 1024                      # largest frame carrying a call to it
    roles = []                            # any of these roles may call (empty: everyone)
    groups = []                           # members of any of these groups may call

    [client_functions.updatePosition]     # a client function the server may call
    timeout = 5.0                         # seconds an awaited call waits (default: setting)

    [variables.nickname]                  # a client-writable variable (none by default)
    scope = "client"                      # client | group | everyone
    schema = "Nickname"                   # a type in the handler module
"""

from __future__ import annotations

import importlib
import inspect
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Literal

import limits
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from .errors import PolicyFileError
from .naming import GROUP_NAME, METHOD_NAME, MODULE_NAME, RESERVED_VARIABLES
from .scope import Context
from .validation import (
    STRICT,
    ArgumentValidator,
    SignatureError,
    argument_validator,
    return_adapter,
)

DEFAULT_MAX_BYTES = 16_384


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FunctionRule(_Rules):
    rate: str | None = None
    max_bytes: int = Field(DEFAULT_MAX_BYTES, ge=64, le=16 * 1024 * 1024)
    # TOML arrays arrive as lists; strict mode would refuse them for a tuple.
    roles: tuple[str, ...] = Field((), strict=False)
    groups: tuple[str, ...] = Field((), strict=False)

    def allows(self, roles: frozenset[str], groups: set[str]) -> bool:
        """Anyone when no roles or groups are named; else a member of one of them."""
        if not self.roles and not self.groups:
            return True
        return bool(roles.intersection(self.roles)) or bool(groups.intersection(self.groups))

    @field_validator("rate")
    @classmethod
    def _rate_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                limits.parse(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a rate such as '10/second'") from None
        return value


class ClientFunctionRule(_Rules):
    timeout: float | None = Field(None, gt=0, le=300)


class VariableRule(_Rules):
    scope: Literal["client", "group", "everyone"]
    schema_name: str = Field(alias="schema")
    rate: str | None = None


class HookNames(_Rules):
    authenticate: str | None = None
    connect: str | None = None
    disconnect: str | None = None


class PolicyDocument(_Rules):
    handlers: str
    hooks: HookNames = HookNames()
    functions: dict[str, FunctionRule] = {}
    client_functions: dict[str, ClientFunctionRule] = {}
    variables: dict[str, VariableRule] = {}


@dataclass(frozen=True)
class ServerFunction:
    name: str
    rule: FunctionRule
    handler: Callable[..., Awaitable[Any]]
    arguments: ArgumentValidator
    rate: limits.RateLimitItem | None


@dataclass(frozen=True)
class ClientFunction:
    name: str
    timeout: float | None
    result: TypeAdapter[Any]


@dataclass(frozen=True)
class Variable:
    name: str
    scope: Literal["client", "group", "everyone"]
    schema: TypeAdapter[Any]
    rate: limits.RateLimitItem | None


@dataclass(frozen=True)
class Policy:
    source: str
    functions: Mapping[str, ServerFunction]
    client_functions: Mapping[str, ClientFunction]
    variables: Mapping[str, Variable]
    authenticate: Callable[..., Awaitable[Any]] | None
    on_connect: Callable[..., Awaitable[Any]] | None
    on_disconnect: Callable[..., Awaitable[Any]] | None

    def authorize(self, name: str, roles: frozenset[str], groups: set[str]) -> bool:
        """May a client with these roles and groups call the declared function `name`?"""
        function = self.functions.get(name)
        return function is not None and function.rule.allows(roles, groups)

    def callable_names(self, roles: frozenset[str], groups: set[str]) -> list[str]:
        return sorted(name for name in self.functions if self.authorize(name, roles, groups))


def load_policy(path: Path) -> Policy:
    """Read, check and bind a policy file; raise PolicyFileError on any problem.

    A handler whose first parameter is annotated `nowgate.Context` receives the caller's
    context; every other parameter is a validated argument.
    """
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PolicyFileError(source, "", f"cannot read the file ({error.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise PolicyFileError(source, "", f"not valid TOML: {error}") from None
    try:
        document = PolicyDocument.model_validate(raw)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        key = ".".join(str(part) for part in first["loc"])
        raise PolicyFileError(source, key, first["msg"]) from None
    return _bind(source, document)


def _bind(source: str, document: PolicyDocument) -> Policy:
    if not MODULE_NAME.fullmatch(document.handlers):
        raise PolicyFileError(source, "handlers", "must be a dotted module name")
    try:
        module = importlib.import_module(document.handlers)
    except ImportError as error:
        raise PolicyFileError(source, "handlers", f"cannot import module ({error})") from None
    except Exception as error:  # the module itself fails while importing
        raise PolicyFileError(
            source, "handlers", f"importing the module failed ({type(error).__name__}: {error})"
        ) from None

    def attribute(key: str, name: str) -> Any:
        # Names come from the trusted policy file, and are checked against the same pattern
        # as client method names so that a dunder never resolves.
        if not METHOD_NAME.fullmatch(name):
            raise PolicyFileError(source, key, f"{name!r} is not a valid name")
        value = _module_attribute(module, name)
        if value is None:
            raise PolicyFileError(source, key, f"{document.handlers} has no {name!r}")
        return value

    functions = {}
    for name, rule in document.functions.items():
        key = f"functions.{name}"
        handler = attribute(key, name)
        if not inspect.iscoroutinefunction(handler):
            raise PolicyFileError(source, key, "the handler must be an async function")
        for group in rule.groups:
            if not GROUP_NAME.fullmatch(group):
                raise PolicyFileError(
                    source, f"{key}.groups", f"{group!r} does not match {GROUP_NAME.pattern}"
                )
        try:
            arguments = argument_validator(handler, Context)
        except SignatureError as error:
            raise PolicyFileError(source, key, str(error)) from None
        rate = limits.parse(rule.rate) if rule.rate else None
        functions[name] = ServerFunction(name, rule, handler, arguments, rate)

    client_functions = {}
    for name, client_rule in document.client_functions.items():
        key = f"client_functions.{name}"
        stub = attribute(key, name)
        try:
            adapter = return_adapter(stub)
        except SignatureError as error:
            raise PolicyFileError(source, key, f"stub {name}: {error}") from None
        client_functions[name] = ClientFunction(name, client_rule.timeout, adapter)

    variables = {}
    for name, variable_rule in document.variables.items():
        key = f"variables.{name}"
        _check_name(source, key, name)
        if name in RESERVED_VARIABLES:
            raise PolicyFileError(source, key, "identity fields can never be client-writable")
        schema_type = attribute(f"{key}.schema", variable_rule.schema_name)
        try:
            schema = TypeAdapter(schema_type, config=None if _has_config(schema_type) else STRICT)
        except Exception as error:  # pydantic refuses types it cannot build a schema for
            raise PolicyFileError(source, f"{key}.schema", type(error).__name__) from None
        rate = limits.parse(variable_rule.rate) if variable_rule.rate else None
        variables[name] = Variable(name, variable_rule.scope, schema, rate)

    hooks = document.hooks
    hook_functions: dict[str, Callable[..., Awaitable[Any]] | None] = {}
    for hook_name in ("authenticate", "connect", "disconnect"):
        target = getattr(hooks, hook_name)
        if target is None:
            hook_functions[hook_name] = None
            continue
        hook = attribute(f"hooks.{hook_name}", target)
        if not inspect.iscoroutinefunction(hook):
            raise PolicyFileError(source, f"hooks.{hook_name}", "must be an async function")
        hook_functions[hook_name] = hook

    return Policy(
        source=source,
        functions=MappingProxyType(functions),
        client_functions=MappingProxyType(client_functions),
        variables=MappingProxyType(variables),
        authenticate=hook_functions["authenticate"],
        on_connect=hook_functions["connect"],
        on_disconnect=hook_functions["disconnect"],
    )


def _check_name(source: str, key: str, name: str) -> None:
    if not METHOD_NAME.fullmatch(name):
        raise PolicyFileError(source, key, f"{name!r} does not match {METHOD_NAME.pattern}")


def _module_attribute(module: ModuleType, name: str) -> Any:
    # vars() is the module's own namespace: no inherited or computed attribute can answer.
    return vars(module).get(name)


def _has_config(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)
