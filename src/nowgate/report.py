"""`nowgate report POLICY`: the attack surface of a policy under the current settings.

For a security review: every function a client can call (who may call it, its rate and
frame limits, the JSON Schema of its arguments and of its result), every client function
the server calls (timeout, the schema its answer must match), every client-writable
variable, the hooks, and the settings that matter for security, each risky value flagged.

The report is data first (`build_report`, validated by the shipped
`schemas/report.schema.json`); `render_markdown` turns it into a page for people. Secrets
never appear in it: keys are described by count and length, URLs lose their credentials.
"""

from __future__ import annotations

import inspect
import ipaddress
import json
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import limits
from pydantic import TypeAdapter

from .policy import DEFAULT_MAX_BYTES, Policy, ServerFunction
from .settings import MIN_PRODUCTION_KEY_LENGTH, Settings
from .validation import SignatureError, argument_validator

REPORT_VERSION = 1
Severity = Literal["high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low", "info")
# A limit this many times looser than its default is flagged: it was raised on purpose, and
# a reviewer should know by how much.
FAR_ABOVE = 4
# Settings whose larger values give an attacker more room (frames, nesting, budgets, time).
LOOSER_WHEN_LARGER = (
    "token_max_age", "hello_timeout", "max_message_bytes", "max_json_depth",
    "max_collection_items", "violation_limit", "call_timeout", "max_pending_calls",
    "send_queue_limit", "idle_timeout", "ping_timeout", "credential_check_interval",
)  # fmt: skip
RATE_SETTINGS = ("connection_rate", "connect_rate_per_address", "http_rate")
# Trusting a proxy network wider than this lets every host in it forge X-Forwarded-For.
WIDEST_PROXY_PREFIX = {4: 24, 6: 64}


@dataclass(frozen=True)
class Flag:
    severity: Severity
    subject: str  # "settings.mode", "functions.syncPosition", ...
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "subject": self.subject, "message": self.message}


def report_schema() -> dict[str, Any]:
    """The JSON Schema of `build_report`'s output (package data)."""
    text = resources.files("nowgate").joinpath("schemas/report.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def build_report(policy: Policy, settings: Settings) -> dict[str, Any]:
    flags: list[Flag] = []
    has_authenticate = policy.authenticate is not None
    functions = [
        _function(function, settings, has_authenticate, flags)
        for function in sorted(policy.functions.values(), key=lambda f: f.name)
    ]
    client_functions = [
        {
            "name": name,
            "timeout": function.timeout if function.timeout is not None else settings.call_timeout,
            "timeout_from": "policy" if function.timeout is not None else "NOWGATE_CALL_TIMEOUT",
            "parameters": _stub_parameters(policy, name),
            "result": _schema(function.result),
        }
        for name, function in sorted(policy.client_functions.items())
    ]
    variables = []
    for name, variable in sorted(policy.variables.items()):
        subject = f"variables.{name}"
        if variable.scope == "everyone":
            flags.append(Flag("medium", subject, "any client can write what every client reads"))
        if variable.rate is None:
            flags.append(Flag("low", subject, "no rate: only the connection rate bounds writes"))
        variables.append({
            "name": name,
            "scope": variable.scope,
            "rate": _rate_text(variable.rate),
            "schema": _schema(variable.schema),
        })
    hooks = {
        "authenticate": _hook_name(policy.authenticate),
        "connect": _hook_name(policy.on_connect),
        "disconnect": _hook_name(policy.on_disconnect),
    }
    if not has_authenticate:
        flags.append(Flag("info", "hooks.authenticate",
                          "no authentication hook: every client is anonymous, with no roles"))
    settings_rows = _settings_rows(settings, flags)
    flags.sort(key=lambda flag: (SEVERITIES.index(flag.severity), flag.subject))
    return {
        "nowgate_report": REPORT_VERSION,
        "policy": policy.source,
        "summary": {
            "functions": len(functions),
            "client_functions": len(client_functions),
            "writable_variables": len(variables),
            "flags": {severity: sum(f.severity == severity for f in flags)
                      for severity in SEVERITIES},
        },
        "flags": [flag.as_dict() for flag in flags],
        "functions": functions,
        "client_functions": client_functions,
        "variables": variables,
        "hooks": hooks,
        "settings": settings_rows,
    }


def _function(
    function: ServerFunction, settings: Settings, has_authenticate: bool, flags: list[Flag]
) -> dict[str, Any]:
    rule = function.rule
    subject = f"functions.{function.name}"
    if function.rate is None:
        flags.append(Flag("low", subject, f"no rate: only the connection rate "
                                          f"({settings.connection_rate}) bounds calls"))
    if rule.max_bytes > FAR_ABOVE * DEFAULT_MAX_BYTES:
        flags.append(Flag("medium", subject, f"max_bytes {rule.max_bytes} is more than "
                                             f"{FAR_ABOVE}x the default {DEFAULT_MAX_BYTES}"))
    if rule.roles and not has_authenticate:
        flags.append(Flag("info", subject, "restricted to roles, but no authentication hook "
                                           "gives any client a role"))
    return {
        "name": function.name,
        "callers": "restricted" if rule.roles or rule.groups else "everyone",
        "roles": list(rule.roles),
        "groups": list(rule.groups),
        "rate": _rate_text(function.rate),
        "max_bytes": rule.max_bytes,
        # The frame limit applies first: a larger max_bytes is never reached.
        "effective_max_bytes": min(rule.max_bytes, settings.max_message_bytes),
        "parameters": function.arguments.model.model_json_schema(),
        "result": _result_schema(function.handler),
    }


def _rate_text(rate: limits.RateLimitItem | None) -> str | None:
    if rate is None:
        return None
    unit = rate.GRANULARITY.name
    per = f"{rate.multiples} {unit}s" if rate.multiples != 1 else unit
    return f"{rate.amount}/{per}"


def _schema(adapter: TypeAdapter[Any], mode: Literal["validation", "serialization"] =
            "validation") -> dict[str, Any]:
    try:
        return adapter.json_schema(mode=mode)
    except Exception as error:  # a type pydantic validates but cannot describe
        return {"description": f"no JSON Schema for this type ({type(error).__name__})"}


def _result_schema(handler: Callable[..., Any]) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(handler, include_extras=True)
    except Exception as error:
        return {"description": f"the return type cannot be resolved ({type(error).__name__})"}
    if "return" not in hints:
        return {"description": "the handler declares no return type"}
    return _schema(TypeAdapter(hints["return"]), mode="serialization")


def _stub_parameters(policy: Policy, name: str) -> dict[str, Any]:
    """The arguments the server sends a client function, from the stub in the handler module."""
    known = [f.handler for f in policy.functions.values()]
    known += [h for h in (policy.authenticate, policy.on_connect, policy.on_disconnect) if h]
    modules = {inspect.getmodule(function) for function in known}
    stub = next((vars(m)[name] for m in modules if m is not None and name in vars(m)), None)
    if stub is None:
        return {"description": "the stub is not reachable from a server function's module"}
    try:
        return argument_validator(stub, type(None)).model.model_json_schema()
    except SignatureError as error:
        return {"description": f"the stub's parameters cannot be described ({error})"}


def _hook_name(hook: Callable[..., Any] | None) -> str | None:
    return None if hook is None else getattr(hook, "__name__", "?")


# Settings --------------------------------------------------------------------------------


def _settings_rows(settings: Settings, flags: list[Flag]) -> list[dict[str, Any]]:
    defaults = Settings.model_fields
    rows = []
    for name, field in defaults.items():
        value = _shown(name, getattr(settings, name))
        default = _shown(name, field.default)
        flag = _setting_flag(name, settings, field.default)
        if flag is not None:
            flags.append(Flag(flag[0], f"settings.{name}", flag[1]))
        rows.append({
            "name": name,
            "variable": f"NOWGATE_{name.upper()}",
            "value": value,
            "default": default,
            "flag": None if flag is None else {"severity": flag[0], "message": flag[1]},
        })
    return rows


def _shown(name: str, value: Any) -> Any:
    """A setting's value as it may appear in a report: no secrets, no credentials."""
    if name == "secret_keys":
        keys = [key.get_secret_value() for key in value]
        if not keys:
            return "(none)"
        return f"{len(keys)} key(s), shortest {min(len(k) for k in keys)} characters"
    if isinstance(value, str) and "://" in value:
        return _without_credentials(value)
    if isinstance(value, tuple):
        return [str(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _setting_flag(name: str, settings: Settings, default: Any) -> tuple[Severity, str] | None:
    value = getattr(settings, name)
    if name == "mode" and value == "development":
        return ("high", "development mode: a per-process signing key, handshakes without "
                        "Origin accepted, and unsafe settings are not refused")
    if name == "secret_keys":
        if not value:
            return ("high", "no signing keys: identities do not survive a restart, and "
                            "production refuses to start")
        if any(len(k.get_secret_value()) < MIN_PRODUCTION_KEY_LENGTH for k in value):
            return ("high", f"a key shorter than {MIN_PRODUCTION_KEY_LENGTH} characters")
    if name == "allowed_origins" and not value:
        return ("medium", "no origin allow-list: only the Host-derived own origin is "
                          "accepted, which a proxy or a forged Host can change")
    if name == "allow_missing_origin" and settings.missing_origin_allowed:
        return ("low", "handshakes without an Origin header are accepted")
    if name == "trusted_proxies":
        return _proxies_flag(value)
    if name == "allowed_hosts" and not value:
        return ("low", "any Host header is served (DNS rebinding); list your host names")
    if name == "metrics_host" and settings.metrics_port is not None and not _loopback(value):
        return ("medium", "the metrics listener is reachable beyond loopback")
    if name == "rate_limit_storage" and settings.redis_url and value.startswith("memory"):
        return ("low", "several nodes share a backplane but each counts rate limits alone")
    if name in LOOSER_WHEN_LARGER and value > FAR_ABOVE * default:
        return ("medium", f"{value} is more than {FAR_ABOVE}x the default {default}")
    if name in RATE_SETTINGS and _per_second(value) > FAR_ABOVE * _per_second(default):
        return ("medium", f"{value} is more than {FAR_ABOVE}x the default {default}")
    return None


def _proxies_flag(entries: Iterable[str]) -> tuple[Severity, str] | None:
    for entry in entries:
        if entry == "*":
            return ("high", "every peer is trusted to set X-Forwarded-For: any client can "
                            "forge its address")
        network = ipaddress.ip_network(entry, strict=False)
        if network.prefixlen == 0:
            return ("high", f"{entry} trusts every address to set X-Forwarded-For")
        if network.prefixlen < WIDEST_PROXY_PREFIX[network.version]:
            return ("medium", f"{entry} trusts {network.num_addresses} addresses to set "
                              "X-Forwarded-For; list the proxies themselves")
    return None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _per_second(rate: str) -> float:
    item = limits.parse(rate)
    return item.amount / item.get_expiry()


# Markdown --------------------------------------------------------------------------------


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Attack surface of `{report['policy']}`", ""]
    counts = report["summary"]["flags"]
    lines += [
        f"{report['summary']['functions']} callable functions, "
        f"{report['summary']['client_functions']} client functions, "
        f"{report['summary']['writable_variables']} client-writable variables; flags: "
        + ", ".join(f"{counts[s]} {s}" for s in SEVERITIES),
        "",
        "## Flags",
        "",
    ]
    if report["flags"]:
        lines += ["| severity | subject | why |", "| --- | --- | --- |"]
        lines += [f"| {f['severity']} | `{f['subject']}` | {_cell(f['message'])} |"
                  for f in report["flags"]]
    else:
        lines.append("None.")
    lines += ["", "## Functions clients can call", ""]
    if not report["functions"]:
        lines.append("None.")
    for function in report["functions"]:
        who = "everyone" if function["callers"] == "everyone" else (
            "roles " + (", ".join(function["roles"]) or "-")
            + "; groups " + (", ".join(function["groups"]) or "-"))
        lines += [
            f"### `{function['name']}`",
            "",
            f"- callers: {who}",
            f"- rate: {function['rate'] or 'none (connection rate only)'}",
            f"- max_bytes: {function['max_bytes']} "
            f"(effective {function['effective_max_bytes']})",
            "- parameters:", "", _json_block(function["parameters"]), "",
            "- result:", "", _json_block(function["result"]), "",
        ]
    lines += ["## Client functions the server calls", ""]
    if not report["client_functions"]:
        lines.append("None.")
    for function in report["client_functions"]:
        lines += [
            f"### `{function['name']}`",
            "",
            f"- timeout: {function['timeout']} s (from {function['timeout_from']})",
            "- parameters sent:", "", _json_block(function["parameters"]), "",
            "- answer must match:", "", _json_block(function["result"]), "",
        ]
    lines += ["## Client-writable variables", ""]
    if not report["variables"]:
        lines.append("None: clients cannot write any variable.")
    for variable in report["variables"]:
        lines += [
            f"### `{variable['name']}`",
            "",
            f"- scope: {variable['scope']}",
            f"- rate: {variable['rate'] or 'none (connection rate only)'}",
            "- schema:", "", _json_block(variable["schema"]), "",
        ]
    lines += ["", "## Hooks", "", "| hook | handler |", "| --- | --- |"]
    lines += [f"| {hook} | {f'`{name}`' if name else '(none)'} |"
              for hook, name in report["hooks"].items()]
    lines += ["", "## Settings", "", "| variable | value | default | flag |",
              "| --- | --- | --- | --- |"]
    for row in report["settings"]:
        flag = row["flag"]
        lines.append(
            f"| `{row['variable']}` | {_cell(_plain(row['value']))} | "
            f"{_cell(_plain(row['default']))} | "
            f"{'' if flag is None else _cell(flag['severity'] + ': ' + flag['message'])} |"
        )
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def _json_block(schema: dict[str, Any]) -> str:
    return "```json\n" + json.dumps(schema, indent=2, sort_keys=True) + "\n```"


def _plain(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, list):
        return ", ".join(value) or "(empty)"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
