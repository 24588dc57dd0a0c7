"""A policy's `now` object as a typed contract: TypeScript declarations and OpenRPC.

`nowgate types POLICY` turns the loaded policy into what a page or another language needs
to call the gateway correctly:

- each server function, its parameters (from the handler's annotations, as validated by
  the gateway) and its result (from the handler's return annotation);
- each client function the page must implement (from the stubs in the handler module),
  with the arguments the server sends and the result it validates;
- the readable variables: the three scopes, with the policy's declared variables typed.

Every type goes through pydantic's JSON Schema (TypeAdapter(...).json_schema), so the
declarations say exactly what the gateway's validation accepts: a model with
`extra="forbid"` becomes a closed interface, `Annotated[int, Field(ge=0)]` a number.

The machine-readable form is OpenRPC 1.3 (https://spec.open-rpc.org): it is made for
JSON-RPC 2.0 (methods, by-position and by-name params, results, JSON Schema components),
which is this wire; AsyncAPI describes channels and messages and would lose the call/answer
pairing. Client functions (server->client calls) and variables have no OpenRPC object, so
they go in `x-client-methods` (Method Objects) and `x-variables`, extension fields that
OpenRPC tooling ignores.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from .policy import Policy, load_policy
from .scope import Context
from .validation import argument_validator

SCHEMA_REF = "#/components/schemas/{model}"
IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
Schema = dict[str, Any]


@dataclass(frozen=True)
class Method:
    """One callable: its positional parameters (name, schema, required) and its result."""

    name: str
    params: tuple[tuple[str, Schema, bool], ...]
    result: Schema


@dataclass(frozen=True)
class Contract:
    title: str
    functions: tuple[Method, ...]
    client_functions: tuple[Method, ...]
    variables: dict[str, tuple[str, Schema]]  # name -> (scope, schema)
    schemas: dict[str, Schema]  # shared named types ($ref targets)


class ContractError(ValueError):
    """The policy cannot be described (two different types share a name, say)."""


def load_contract(path: Path) -> Contract:
    """Load and check the policy at `path` (PolicyFileError on problems) and describe it."""
    policy = load_policy(path)
    handlers = tomllib.loads(path.read_text(encoding="utf-8"))["handlers"]
    return describe(policy, importlib.import_module(handlers), title=path.stem)


def describe(policy: Policy, module: Any, title: str) -> Contract:
    schemas: dict[str, Schema] = {}

    def schema(annotation: Any, mode: typing.Literal["validation", "serialization"]) -> Schema:
        generated = TypeAdapter(annotation).json_schema(mode=mode, ref_template=SCHEMA_REF)
        _merge(schemas, generated.pop("$defs", {}))
        if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
            _merge(schemas, {annotation.__name__: generated})  # a named type, not inlined
            return {"$ref": SCHEMA_REF.format(model=annotation.__name__)}
        return generated

    def method(name: str, function: Any, incoming: bool) -> Method:
        # Parameters travel to the side that validates them; results come back.
        param_mode: typing.Literal["validation", "serialization"] = (
            "validation" if incoming else "serialization"
        )
        result_mode: typing.Literal["validation", "serialization"] = (
            "serialization" if incoming else "validation"
        )
        arguments = argument_validator(function, Context)
        together = arguments.model.model_json_schema(mode=param_mode, ref_template=SCHEMA_REF)
        _merge(schemas, together.pop("$defs", {}))
        required = set(together.get("required", []))
        params = tuple(
            (param, together["properties"][param], param in required) for param in arguments.names
        )
        hints = typing.get_type_hints(function, include_extras=True)
        result = schema(hints.get("return", type(None)), result_mode)
        return Method(name, params, result)

    functions = tuple(
        method(name, function.handler, incoming=True)
        for name, function in sorted(policy.functions.items())
    )
    client_functions = tuple(
        method(name, getattr(module, name), incoming=False)
        for name in sorted(policy.client_functions)
    )
    variables: dict[str, tuple[str, Schema]] = {
        name: (variable.scope, variable.schema.json_schema(ref_template=SCHEMA_REF))
        for name, variable in sorted(policy.variables.items())
    }
    for _, variable_schema in variables.values():
        _merge(schemas, variable_schema.pop("$defs", {}))
    return Contract(title, functions, client_functions, variables, schemas)


def _merge(schemas: dict[str, Schema], definitions: dict[str, Schema]) -> None:
    for name, definition in definitions.items():
        if schemas.setdefault(name, definition) != definition:
            raise ContractError(f"two different types are both named {name!r}")


# ---- TypeScript


def typescript(contract: Contract) -> str:
    """Declarations for `connect<Contract>()` of now.d.ts, self-contained (no imports)."""
    lines = [
        f"// The `now` contract of policy {contract.title!r}, generated by `nowgate types`.",
        "// Do not edit: regenerate when the policy or its handlers change.",
        "// Use: import type { Contract } from './this-file'; const now = connect<Contract>();",
        "",
    ]
    for name, definition in sorted(contract.schemas.items()):
        lines += _doc(definition, "")
        lines.append(f"export type {_type_name(name)} = {_ts(definition, '')};")
        lines.append("")
    lines.append("export interface Contract {")
    lines.append("  /** Server functions: call them as now.name(...) or now.call('name', ...). */")
    lines.append("  functions: {")
    lines += [_signature(m, "    ") for m in contract.functions]
    lines.append("  };")
    lines.append("  /** Client functions the server calls: assign them, now.name = (...) => ... */")
    lines.append("  clientFunctions: {")
    lines += [_signature(m, "    ", answer=True) for m in contract.client_functions]
    lines.append("  };")
    lines.append("  /** The variables the server shares (read-only on the page). */")
    lines.append("  vars: {")
    for scope in ("everyone", "group", "client"):
        declared = {
            name: schema for name, (where, schema) in contract.variables.items() if where == scope
        }
        fields = "".join(f" {_key(n)}?: {_ts(s, '    ')};" for n, s in declared.items())
        record = f"{{{fields} readonly [name: string]: unknown }}"
        if scope == "group":
            lines.append(f"    groups: {{ readonly [group: string]: {record} }};")
        else:
            lines.append(f"    {scope}: {record};")
    lines.append("  };")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _signature(method: Method, indent: str, answer: bool = False) -> str:
    params = ", ".join(
        f"{_identifier(name)}{'' if required else '?'}: {_ts(schema, indent)}"
        for name, schema, required in method.params
    )
    # A page function that returns nothing answers null (now.js sends undefined as null).
    result = "void" if answer and method.result == {"type": "null"} else _ts(method.result, indent)
    return f"{indent}{_key(method.name)}({params}): {result};"


def _doc(schema: Schema, indent: str) -> list[str]:
    text = schema.get("description")
    if not isinstance(text, str) or not text.strip():
        return []
    body = text.strip().replace("*/", "*\\/").splitlines()
    return [f"{indent}/**", *(f"{indent} * {line}".rstrip() for line in body), f"{indent} */"]


def _ts(schema: Any, indent: str) -> str:
    if schema is True or schema == {}:
        return "unknown"
    if not isinstance(schema, dict):
        return "never"
    if "$ref" in schema:
        return _type_name(str(schema["$ref"]).rsplit("/", 1)[-1])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"]) or "never"
    for combinator, joiner in (("anyOf", " | "), ("oneOf", " | "), ("allOf", " & ")):
        if combinator in schema:
            return joiner.join(_grouped(_ts(part, indent)) for part in schema[combinator])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(_ts({**schema, "type": one}, indent) for one in kind)
    if kind == "null":
        return "null"
    if kind == "boolean":
        return "boolean"
    if kind in ("integer", "number"):
        return "number"
    if kind == "string":
        return "string"
    if kind == "array":
        if "prefixItems" in schema:
            items = ", ".join(_ts(item, indent) for item in schema["prefixItems"])
            return f"[{items}]"
        return f"Array<{_ts(schema.get('items', {}), indent)}>"
    if kind == "object":
        return _object(schema, indent)
    return "unknown"


def _grouped(type_text: str) -> str:
    return f"({type_text})" if " | " in type_text or " & " in type_text else type_text


def _object(schema: Schema, indent: str) -> str:
    inner = indent + "  "
    required = set(schema.get("required", []))
    fields = [
        line
        for name, field in schema.get("properties", {}).items()
        for line in [
            *_doc(field, inner),
            f"{inner}{_key(name)}{'' if name in required else '?'}: {_ts(field, inner)};",
        ]
    ]
    extra = schema.get("additionalProperties", True)
    if extra is not False and not (extra is True and fields):
        fields.append(f"{inner}[key: string]: {_ts(extra, inner)};")
    if not fields:
        return "Record<string, never>"
    return "{\n" + "\n".join(fields) + f"\n{indent}}}"


def _key(name: str) -> str:
    return name if IDENTIFIER.fullmatch(name) else json.dumps(name)


def _identifier(name: str) -> str:
    return name if IDENTIFIER.fullmatch(name) else "_" + re.sub(r"\W", "_", name)


def _type_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_$]", "_", name)
    return cleaned if IDENTIFIER.fullmatch(cleaned) else "_" + cleaned


# ---- OpenRPC


def openrpc(contract: Contract) -> dict[str, Any]:
    """The contract as an OpenRPC 1.3 document (client functions and variables as x- fields)."""
    return {
        "openrpc": "1.3.2",
        "info": {"title": f"nowgate policy {contract.title}", "version": "1"},
        "methods": [_openrpc_method(m) for m in contract.functions],
        "components": {"schemas": contract.schemas},
        "x-client-methods": [_openrpc_method(m) for m in contract.client_functions],
        "x-variables": [
            {"name": name, "scope": scope, "schema": schema}
            for name, (scope, schema) in contract.variables.items()
        ],
    }


def _openrpc_method(method: Method) -> dict[str, Any]:
    return {
        "name": method.name,
        "paramStructure": "either",
        "params": [
            {"name": name, "required": required, "schema": schema}
            for name, schema, required in method.params
        ],
        "result": {"name": "result", "schema": method.result},
    }
