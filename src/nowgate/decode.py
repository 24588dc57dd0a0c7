"""Frame text -> a typed JSON-RPC message, or a typed error. No I/O.

JSON is parsed strictly (RFC 8259): NaN and Infinity, integers beyond JavaScript's safe range,
numbers that overflow a double, duplicate object keys and lone UTF-16 surrogates are all
refused, so that everything accepted can be re-encoded by any peer. Depth and collection
sizes are checked before anything else sees the value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRequest, MethodNotFound, ParseError
from .naming import is_method_name

JSONRPC_VERSION = "2.0"
MAX_SAFE_INTEGER = 2**53 - 1
MAX_ID_LENGTH = 128

RequestId = int | str
Params = list[Any] | dict[str, Any]


@dataclass(frozen=True, slots=True)
class Request:
    """A call; `id` is None for a notification (executed, never answered)."""

    method: str
    params: Params
    id: RequestId | None

    @property
    def is_notification(self) -> bool:
        return self.id is None


@dataclass(frozen=True, slots=True)
class Response:
    """A client's answer to a server->client call."""

    id: RequestId
    result: Any = None
    error: dict[str, Any] | None = None


Message = Request | Response


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = 32
    max_items: int = 1_000


class _Rejected(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _Rejected(f"{name} is not JSON")


def _bounded_int(text: str) -> int:
    value = int(text)  # Python itself refuses more than 4,300 digits
    if abs(value) > MAX_SAFE_INTEGER:
        raise _Rejected("integer out of range")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Rejected("number out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Rejected("duplicate object key")
    return obj


_decoder = json.JSONDecoder(
    object_pairs_hook=_unique_keys,
    parse_int=_bounded_int,
    parse_float=_finite_float,
    parse_constant=_reject_constant,
    strict=True,
)


def parse_json(text: str, limits: Limits) -> Any:
    """Strictly parse one JSON value and check its shape limits."""
    try:
        value = _decoder.decode(text)
    except RecursionError:
        raise InvalidRequest("JSON nesting too deep") from None
    except (ValueError, TypeError):
        raise ParseError() from None
    _check_shape(value, limits, "\\u" in text)
    return value


def _check_shape(value: Any, limits: Limits, may_hold_surrogates: bool) -> None:
    # Iterative walk: a recursive one would itself be a stack-depth hazard.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
            if may_hold_surrogates:
                for key in item:
                    _check_text(key)
        elif isinstance(item, list):
            children = item
        else:
            if may_hold_surrogates and isinstance(item, str):
                _check_text(item)
            continue
        if depth > limits.max_depth:
            raise InvalidRequest("JSON nesting too deep")
        if len(item) > limits.max_items:
            raise InvalidRequest("JSON collection too large")
        stack.extend((child, depth + 1) for child in children)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ParseError("Lone surrogate in string") from None


def _request_id(obj: dict[str, Any]) -> RequestId | None:
    """The id if it is usable in a reply, else None (errors are then answered with id null)."""
    raw = obj.get("id")
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int) or (isinstance(raw, str) and len(raw) <= MAX_ID_LENGTH):
        return raw
    return None


def decode(text: str, limits: Limits) -> Message:
    """Decode one text frame. Raises ParseError, InvalidRequest or MethodNotFound.

    InvalidRequest and MethodNotFound carry `request_id` so the reply can name the call.
    """
    value = parse_json(text, limits)
    if isinstance(value, list):
        raise InvalidRequest("Batches are not supported")
    if not isinstance(value, dict):
        raise InvalidRequest("A message must be a JSON object")
    request_id = _request_id(value)
    try:
        return _to_message(value, request_id)
    except (InvalidRequest, MethodNotFound) as error:
        error.request_id = request_id
        raise


def _to_message(obj: dict[str, Any], request_id: RequestId | None) -> Message:
    if obj.get("jsonrpc") != JSONRPC_VERSION:
        raise InvalidRequest('"jsonrpc" must be "2.0"')
    if "id" in obj and request_id is None:
        raise InvalidRequest('"id" must be a string of at most 128 characters or an integer')
    if "method" not in obj:
        return _to_response(obj, request_id)
    if "result" in obj or "error" in obj:
        raise InvalidRequest("A request cannot carry result or error")
    extra = obj.keys() - {"jsonrpc", "id", "method", "params"}
    if extra:
        raise InvalidRequest("Unknown request member")
    method = obj["method"]
    if not isinstance(method, str):
        raise InvalidRequest('"method" must be a string')
    if not is_method_name(method):
        raise MethodNotFound()
    params = obj.get("params", [])
    if not isinstance(params, (list, dict)):
        raise InvalidRequest('"params" must be an array or an object')
    return Request(method=method, params=params, id=request_id)


def _to_response(obj: dict[str, Any], request_id: RequestId | None) -> Response:
    if request_id is None:
        raise InvalidRequest('A message needs "method" or an "id"')
    has_result, has_error = "result" in obj, "error" in obj
    if has_result == has_error:
        raise InvalidRequest("A response carries exactly one of result and error")
    if obj.keys() - {"jsonrpc", "id", "result", "error"}:
        raise InvalidRequest("Unknown response member")
    error = obj.get("error")
    if has_error and not (
        isinstance(error, dict)
        and type(error.get("code")) is int
        and isinstance(error.get("message"), str)
    ):
        raise InvalidRequest('"error" must be an object with an integer code and a message')
    return Response(id=request_id, result=obj.get("result"), error=error)

