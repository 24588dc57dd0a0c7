"""Frame text -> a typed JSON-RPC message, or a typed error. No I/O.

JSON is parsed strictly (RFC 8259): NaN and Infinity, integers beyond JavaScript's safe range,
numbers that overflow a double, duplicate object keys and lone UTF-16 surrogates are all
refused, so that everything accepted can be re-encoded by any peer. Depth and collection
sizes are checked before anything else sees the value.

Every error names the request it answers whenever a strict reading of the frame can tell
which one that is (JSON-RPC 2.0 allows `"id": null` only when it cannot): a frame that is
valid JSON but breaks a limit or the strict profile (too deep, too large, a duplicate key, a
lone surrogate, an unsafe number elsewhere) is answered with its id; text that is not JSON
at all, or whose own `id` member is duplicated or unusable, is answered with `null`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRequest, MethodNotFound, ParseError, RpcError
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


# Reading the id of a frame the strict parser refused. JSON (RFC 8259) itself allows
# duplicate keys, large numbers and lone surrogate escapes; only NaN and Infinity are not
# JSON at all, so they stay unreadable. A duplicated "id" member is ambiguous: unreadable.
_AMBIGUOUS = object()


def _mark_ambiguous_id(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs) and sum(key == "id" for key, _ in pairs) > 1:
        obj["id"] = _AMBIGUOUS
    return obj


_lenient_decoder = json.JSONDecoder(
    object_pairs_hook=_mark_ambiguous_id, parse_constant=_reject_constant, strict=True
)
# Tokens that matter for the structure: strings (whose brackets do not count) and punctuation.
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:,]')
_WHITESPACE = re.compile(r"[ \t\r\n]*")


def _readable_id(text: str) -> RequestId | None:
    """The id of a frame that is JSON but outside the strict profile; None if unreadable."""
    try:
        value = _lenient_decoder.decode(text)
    except RecursionError:
        return _top_level_id(text)
    except (ValueError, TypeError):
        return None
    return _request_id(value) if isinstance(value, dict) else None


def _top_level_id(text: str) -> RequestId | None:
    """The id of a frame nested too deep for the recursive parser: the one "id" member of the
    top-level object, found by an iterative scan (a recursive one would be the hazard)."""
    depth = 0
    expect_key = False
    found: list[int] = []
    for token in _STRUCTURE.finditer(text):
        char = token.group()[0]
        if char in "[{":
            depth += 1
            expect_key = char == "{" and depth == 1
        elif char in "]}":
            depth -= 1
        elif char == ",":
            expect_key = depth == 1
        elif char == '"' and expect_key:
            expect_key = False
            if token.group() == '"id"':
                found.append(token.end())
    if depth != 0 or not text.lstrip().startswith("{") or len(found) != 1:
        return None
    value_at = _WHITESPACE.match(text, text.find(":", found[0]) + 1)
    assert value_at is not None  # the pattern matches the empty string
    try:
        raw, _ = _lenient_decoder.raw_decode(text, value_at.end())
    except (ValueError, RecursionError):
        return None
    return _request_id({"id": raw})


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
    if isinstance(raw, int):
        return raw if abs(raw) <= MAX_SAFE_INTEGER else None
    if isinstance(raw, str) and len(raw) <= MAX_ID_LENGTH and _encodable(raw):
        return raw
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate cannot be echoed back
        return False
    return True


def decode(text: str, limits: Limits) -> Message:
    """Decode one text frame. Raises ParseError, InvalidRequest or MethodNotFound.

    Every error carries `request_id`, the call it answers, when the frame tells which.
    """
    try:
        value = _decoder.decode(text)
    except RecursionError:
        error: RpcError = InvalidRequest("JSON nesting too deep")
        error.request_id = _top_level_id(text)
        raise error from None
    except _Rejected as rejected:
        error = ParseError(f"Parse error: {rejected}")
        error.request_id = _readable_id(text)
        raise error from None
    except (ValueError, TypeError):
        raise ParseError() from None
    request_id = _request_id(value) if isinstance(value, dict) else None
    try:
        _check_shape(value, limits, "\\u" in text)
        if isinstance(value, list):
            raise InvalidRequest("Batches are not supported")
        if not isinstance(value, dict):
            raise InvalidRequest("A message must be a JSON object")
        return _to_message(value, request_id)
    except RpcError as error:
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

