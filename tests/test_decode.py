"""nowgate.decode: frame text -> Request/Response, or a typed error carrying the request id."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nowgate.decode import (
    MAX_ID_LENGTH,
    MAX_SAFE_INTEGER,
    Limits,
    Request,
    Response,
    decode,
    parse_json,
)
from nowgate.errors import InvalidRequest, MethodNotFound, ParseError, RpcError
from nowgate.naming import is_method_name

LIMITS = Limits()


def frame(**members: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", **members})


def rejection(text: str, limits: Limits = LIMITS) -> RpcError:
    with pytest.raises(RpcError) as caught:
        decode(text, limits)
    return caught.value


# Accepted shapes --------------------------------------------------------------------------


def test_request_with_params_by_position_is_decoded() -> None:
    message = decode(frame(id=7, method="syncPosition", params=[{"left": 10, "top": 20}]), LIMITS)
    assert message == Request(method="syncPosition", params=[{"left": 10, "top": 20}], id=7)
    assert not message.is_notification


def test_request_with_params_by_name_is_decoded() -> None:
    message = decode(frame(id="a-1", method="say", params={"room": "red", "text": "hi"}), LIMITS)
    assert message == Request(method="say", params={"room": "red", "text": "hi"}, id="a-1")


def test_request_without_params_gets_an_empty_positional_list() -> None:
    assert decode(frame(id=1, method="rooms"), LIMITS) == Request("rooms", [], 1)


def test_notification_has_no_id() -> None:
    message = decode(frame(method="shout", params=["hello"]), LIMITS)
    assert isinstance(message, Request)
    assert message.id is None
    assert message.is_notification


def test_protocol_method_names_are_accepted() -> None:
    message = decode(frame(id=1, method="now.hello", params={"protocol": 1}), LIMITS)
    assert isinstance(message, Request)
    assert message.method == "now.hello"


def test_response_with_result_is_decoded() -> None:
    assert decode(frame(id="call-1", result={"ok": True}), LIMITS) == Response(
        id="call-1", result={"ok": True}
    )


def test_response_with_null_result_is_decoded() -> None:
    assert decode(frame(id="call-1", result=None), LIMITS) == Response(id="call-1", result=None)


def test_response_with_error_is_decoded() -> None:
    error = {"code": -32000, "message": "no", "data": [1]}
    assert decode(frame(id=3, error=error), LIMITS) == Response(id=3, error=error)


def test_largest_safe_integer_and_longest_string_id_are_accepted() -> None:
    assert decode(frame(id=MAX_SAFE_INTEGER, method="a"), LIMITS).id == MAX_SAFE_INTEGER
    assert decode(frame(id=-MAX_SAFE_INTEGER, method="a"), LIMITS).id == -MAX_SAFE_INTEGER
    long_id = "x" * MAX_ID_LENGTH
    assert decode(frame(id=long_id, method="a"), LIMITS).id == long_id


def test_surrogate_pair_escapes_are_accepted() -> None:
    message = decode('{"jsonrpc":"2.0","method":"say","params":["\\ud83d\\ude00"]}', LIMITS)
    assert isinstance(message, Request)
    assert message.params == ["\N{GRINNING FACE}"]


def test_whitespace_around_the_value_is_accepted() -> None:
    assert decode(" \n" + frame(method="a") + "\t ", LIMITS) == Request("a", [], None)


# Not JSON, or not strict JSON: -32700 with id null -------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "{",
        '{"jsonrpc":"2.0","method":"a"} trailing',
        "{'jsonrpc':'2.0','method':'a'}",
        '{"jsonrpc":"2.0","method":"a",}',
        '\ufeff{"jsonrpc":"2.0","method":"a"}',
        '{"jsonrpc":"2.0","method":"a","params":["raw\tcontrol character"]}',
    ],
    ids=["empty", "words", "truncated", "trailing", "single-quotes", "trailing-comma", "bom",
         "control-char"],
)
def test_text_that_is_not_json_is_a_parse_error(text: str) -> None:
    error = rejection(text)
    assert type(error) is ParseError
    assert error.code == -32700
    assert error.request_id is None


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_constants_are_a_parse_error(constant: str) -> None:
    error = rejection(f'{{"jsonrpc":"2.0","id":1,"method":"a","params":[{constant}]}}')
    assert type(error) is ParseError
    assert error.request_id is None


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1E400"])
def test_numbers_that_overflow_a_double_are_a_parse_error(number: str) -> None:
    assert type(rejection(f'{{"jsonrpc":"2.0","id":1,"method":"a","params":[{number}]}}')) is (
        ParseError
    )


@pytest.mark.parametrize("number", [MAX_SAFE_INTEGER + 1, -(MAX_SAFE_INTEGER + 1), 10**30])
def test_integers_beyond_the_safe_range_are_a_parse_error(number: int) -> None:
    assert type(rejection(frame(id=1, method="a", params=[number]))) is ParseError


def test_an_id_beyond_the_safe_range_is_a_parse_error() -> None:
    error = rejection(frame(id=MAX_SAFE_INTEGER + 1, method="a"))
    assert type(error) is ParseError
    assert error.request_id is None


def test_an_integer_of_thousands_of_digits_is_a_parse_error() -> None:
    assert type(rejection('{"jsonrpc":"2.0","method":"a","params":[' + "9" * 5000 + "]}")) is (
        ParseError
    )


def test_duplicate_keys_are_a_parse_error_answered_with_the_id() -> None:
    error = rejection('{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}')
    assert type(error) is ParseError
    assert error.request_id == 1


def test_a_duplicated_id_is_a_parse_error_answered_with_null() -> None:
    error = rejection('{"jsonrpc":"2.0","id":1,"id":2,"method":"a"}')
    assert type(error) is ParseError
    assert error.request_id is None


def test_duplicate_keys_in_nested_params_are_a_parse_error() -> None:
    assert type(rejection('{"jsonrpc":"2.0","method":"a","params":{"x":1,"x":2}}')) is ParseError
    error = rejection('{"jsonrpc":"2.0","id":"d","method":"a","params":{"x":1,"x":2}}')
    assert error.request_id == "d"


@pytest.mark.parametrize(
    "text",
    [
        '{"jsonrpc":"2.0","id":1,"method":"a","params":["\\ud800"]}',
        '{"jsonrpc":"2.0","id":1,"method":"a","params":["\\udfff tail"]}',
        '{"jsonrpc":"2.0","id":1,"method":"a","params":{"\\udc00":1}}',
        '{"jsonrpc":"2.0","id":1,"method":"a","params":["\\ude00\\ud83d"]}',
        '"\\ud800"',
    ],
    ids=["high-in-value", "low-in-value", "in-key", "reversed-pair", "top-level"],
)
def test_lone_surrogate_escapes_are_a_parse_error(text: str) -> None:
    error = rejection(text)
    assert type(error) is ParseError
    assert error.request_id == (None if text.startswith('"') else 1)


def test_a_lone_surrogate_in_the_id_is_answered_with_null() -> None:
    error = rejection('{"jsonrpc":"2.0","id":"\\ud800","method":"a"}')
    assert type(error) is ParseError
    assert error.request_id is None


# Shape limits: -32600 --------------------------------------------------------------------


def test_nesting_at_the_depth_limit_is_accepted() -> None:
    # The message object is level 1, params level 2: two more lists reach depth 4.
    assert decode(frame(id=1, method="a", params=[[[]]]), Limits(max_depth=4)).params == [[[]]]


def test_nesting_over_the_depth_limit_is_an_invalid_request() -> None:
    error = rejection(frame(id=1, method="a", params=[[[[]]]]), Limits(max_depth=4))
    assert type(error) is InvalidRequest
    assert error.code == -32600


def test_nesting_over_the_default_depth_limit_is_an_invalid_request() -> None:
    nested = "[" * 40 + "]" * 40
    error = rejection('{"jsonrpc":"2.0","id":1,"method":"a","params":' + nested + "}")
    assert type(error) is InvalidRequest


@pytest.mark.parametrize("opening, closing", [("[", "]"), ('{"a":', "}")])
def test_ten_thousand_levels_of_nesting_are_a_typed_error_not_a_crash(
    opening: str, closing: str
) -> None:
    text = opening * 10_000 + "1" * (opening == '{"a":') + closing * 10_000
    error = rejection(text)
    assert type(error) is InvalidRequest
    assert error.request_id is None


def test_ten_thousand_levels_of_nesting_inside_a_request_are_a_typed_error() -> None:
    text = '{"jsonrpc":"2.0","id":1,"method":"a","params":' + "[" * 10_000 + "]" * 10_000 + "}"
    error = rejection(text)
    assert type(error) is InvalidRequest
    assert error.request_id == 1


@pytest.mark.parametrize(
    "text, request_id",
    [
        ('{"x":{"id":3},"id" : "top","params":' + "[" * 5_000 + "]" * 5_000 + "}", "top"),
        ('{"id":"s:[{,","params":' + "[" * 5_000 + "]" * 5_000 + "}", "s:[{,"),
        ('{"id":1,"id":2,"params":' + "[" * 5_000 + "]" * 5_000 + "}", None),
        ('{"id":[1],"params":' + "[" * 5_000 + "]" * 5_000 + "}", None),
        ('{"params":' + "[" * 5_000 + "]" * 5_000 + ',"id":7}', 7),
        ('{"id":1,"params":' + "[" * 5_000, None),  # not JSON: unterminated
    ],
    ids=["nested-id-ignored", "brackets-in-string", "duplicated", "not-scalar", "id-last",
         "truncated"],
)
def test_the_id_of_a_frame_too_deep_to_parse_is_read_by_a_scan(
    text: str, request_id: object
) -> None:
    error = rejection(text)
    assert type(error) is InvalidRequest
    assert error.request_id == request_id


def test_collection_at_the_size_limit_is_accepted() -> None:
    params = list(range(10))
    assert decode(frame(id=1, method="a", params=params), Limits(max_items=10)).params == params


def test_array_over_the_size_limit_is_an_invalid_request() -> None:
    error = rejection(frame(id=1, method="a", params=list(range(11))), Limits(max_items=10))
    assert type(error) is InvalidRequest


def test_object_over_the_size_limit_is_an_invalid_request() -> None:
    params = {f"k{i}": i for i in range(11)}
    assert type(rejection(frame(id=1, method="a", params=params), Limits(max_items=10))) is (
        InvalidRequest
    )


def test_nested_collection_over_the_size_limit_is_an_invalid_request() -> None:
    params = [{"list": list(range(1001))}]
    assert type(rejection(frame(id=1, method="a", params=params))) is InvalidRequest


def test_parse_json_applies_the_same_limits_to_any_value() -> None:
    assert parse_json("[[1]]", Limits(max_depth=2)) == [[1]]
    with pytest.raises(InvalidRequest):
        parse_json("[[[1]]]", Limits(max_depth=2))
    with pytest.raises(ParseError):
        parse_json("NaN", LIMITS)


# Not a JSON-RPC message: -32600 -----------------------------------------------------------


def test_a_batch_is_an_invalid_request() -> None:
    error = rejection(json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "a"}]))
    assert type(error) is InvalidRequest
    assert error.request_id is None


def test_an_empty_batch_is_an_invalid_request() -> None:
    assert type(rejection("[]")) is InvalidRequest


@pytest.mark.parametrize("text", ['"now.hello"', "1", "null", "true"])
def test_a_value_that_is_not_an_object_is_an_invalid_request(text: str) -> None:
    assert type(rejection(text)) is InvalidRequest


@pytest.mark.parametrize("version", ["1.0", 2.0, 2, None, "2.0 "])
def test_wrong_jsonrpc_version_is_an_invalid_request_naming_the_id(version: Any) -> None:
    error = rejection(json.dumps({"jsonrpc": version, "id": 5, "method": "a"}))
    assert type(error) is InvalidRequest
    assert error.request_id == 5


def test_missing_jsonrpc_member_is_an_invalid_request() -> None:
    error = rejection(json.dumps({"id": "q", "method": "a"}))
    assert type(error) is InvalidRequest
    assert error.request_id == "q"


@pytest.mark.parametrize("method", [1, None, ["a"], {"name": "a"}, True])
def test_non_string_method_is_an_invalid_request_naming_the_id(method: Any) -> None:
    error = rejection(frame(id=9, method=method))
    assert type(error) is InvalidRequest
    assert error.request_id == 9


@pytest.mark.parametrize(
    "request_id",
    [1.5, 1.0, True, False, None, {"a": 1}, [1], "x" * (MAX_ID_LENGTH + 1)],
    ids=["float", "integral-float", "true", "false", "null", "object", "array", "long-string"],
)
def test_unusable_id_is_an_invalid_request_answered_with_null_id(request_id: Any) -> None:
    error = rejection(frame(id=request_id, method="a"))
    assert type(error) is InvalidRequest
    assert error.request_id is None


@pytest.mark.parametrize("params", ["text", 1, True, None], ids=["string", "int", "bool", "null"])
def test_params_that_are_neither_array_nor_object_are_an_invalid_request(params: Any) -> None:
    error = rejection(frame(id=4, method="a", params=params))
    assert type(error) is InvalidRequest
    assert error.request_id == 4


def test_unknown_request_member_is_an_invalid_request() -> None:
    error = rejection(frame(id=4, method="a", params=[], extra=1))
    assert type(error) is InvalidRequest
    assert error.request_id == 4


def test_request_carrying_a_result_is_an_invalid_request() -> None:
    assert type(rejection(frame(id=4, method="a", result=1))) is InvalidRequest


def test_message_with_neither_method_nor_id_is_an_invalid_request() -> None:
    assert type(rejection(frame(result=1))) is InvalidRequest


def test_response_with_both_result_and_error_is_an_invalid_request() -> None:
    error = rejection(frame(id="c", result=1, error={"code": 1, "message": "m"}))
    assert type(error) is InvalidRequest
    assert error.request_id == "c"


def test_response_with_neither_result_nor_error_is_an_invalid_request() -> None:
    assert type(rejection(frame(id="c"))) is InvalidRequest


def test_response_with_unknown_member_is_an_invalid_request() -> None:
    assert type(rejection(frame(id="c", result=1, extra=2))) is InvalidRequest


@pytest.mark.parametrize(
    "error",
    ["boom", None, {"message": "m"}, {"code": "1", "message": "m"}, {"code": 1.5, "message": "m"},
     {"code": 1}, {"code": 1, "message": 2}],
)
def test_response_with_malformed_error_is_an_invalid_request(error: Any) -> None:
    assert type(rejection(frame(id="c", error=error))) is InvalidRequest


@pytest.mark.parametrize("code", [True, False])
def test_response_with_a_boolean_error_code_is_an_invalid_request(code: bool) -> None:
    # bool is a subclass of int in Python, but JSON true is not an integer.
    error = rejection(frame(id="c", error={"code": code, "message": "m"}))
    assert type(error) is InvalidRequest
    assert error.request_id == "c"


# Method names: -32601, never looked up ----------------------------------------------------


@pytest.mark.parametrize(
    "method",
    [
        "__class__",
        "__proto__",
        "_private",
        "now.__dict__",
        "now.",
        "now.now.hello",
        "a.b",
        "bad-name",
        "9lives",
        "",
        " add",
        "add ",
        "add\u0000",
        "caf\u00e9",
        "a" * 65,
        "now." + "a" * 65,
    ],
)
def test_method_name_outside_the_pattern_is_method_not_found_naming_the_id(method: str) -> None:
    error = rejection(frame(id=11, method=method))
    assert type(error) is MethodNotFound
    assert error.code == -32601
    assert error.request_id == 11


def test_bad_method_name_in_a_notification_is_method_not_found_without_id() -> None:
    error = rejection(frame(method="__class__"))
    assert type(error) is MethodNotFound
    assert error.request_id is None


@pytest.mark.parametrize(
    "name", ["constructor", "toString", "a", "A" + "b" * 63, "sync_Position2", "now.hello"]
)
def test_names_matching_the_pattern_pass_decode(name: str) -> None:
    # "constructor" is a well-formed name: it is refused later because no policy declares it.
    assert is_method_name(name)
    message = decode(frame(id=1, method=name), LIMITS)
    assert isinstance(message, Request)
    assert message.method == name


def test_a_name_of_64_characters_is_the_longest_accepted() -> None:
    assert is_method_name("a" * 64)
    assert not is_method_name("a" * 65)
