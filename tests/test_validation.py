"""nowgate.validation: strict models from handler type hints; errors cut to loc/msg/type."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from app.demo import Position
from nowgate.errors import InvalidParams
from nowgate.scope import Context
from nowgate.validation import (
    MAX_REPORTED_ERRORS,
    ArgumentValidator,
    SignatureError,
    argument_validator,
    return_adapter,
    validate_result,
)
from tests.fixtures.broken import parameters as broken

SECRET = "s3cr3t-input-value"


class Point(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
    x: float
    y: float


async def move(ctx: Context, count: int, label: str = "step", ratio: float = 1.0) -> None: ...


async def place(ctx: Context, point: Point) -> None: ...


async def numbers(ctx: Context, values: list[Annotated[int, Field(ge=0)]]) -> None: ...


async def no_context(a: int, b: int = 0) -> int:
    return a + b


async def optional(ctx: Context, note: str | None = None) -> None: ...


async def varargs(ctx: Context, *values: int) -> None: ...


async def varkw(ctx: Context, **values: int) -> None: ...


async def positional_only(ctx: Context, value: int, /) -> None: ...


async def untyped(ctx: Context, value) -> None: ...  # type: ignore[no-untyped-def]


async def any_typed(ctx: Context, value: Any) -> None: ...


async def object_typed(ctx: Context, value: object) -> None: ...


async def nested_any(ctx: Context, value: dict[str, Any]) -> None: ...


async def list_of_object(ctx: Context, value: list[object]) -> None: ...


async def optional_any(ctx: Context, value: int | Any = 0) -> None: ...


async def late_context(value: int, ctx: Context) -> None: ...


async def unresolvable(ctx: Context, value: NoSuchType) -> None: ...  # type: ignore[name-defined]  # noqa: F821


class Counter(BaseModel):
    """Forbids extra fields but leaves strictness to the caller (no strict=True of its own)."""

    model_config = ConfigDict(extra="forbid")
    n: int


async def count_with(ctx: Context, counter: Counter, more: list[Counter]) -> None: ...


def stub_str(question: str) -> str: ...


def stub_none() -> None: ...


def stub_point() -> Point: ...


def stub_unannotated(question: str): ...  # type: ignore[no-untyped-def]


def stub_any() -> Any: ...


@pytest.fixture(scope="module")
def mover() -> ArgumentValidator:
    return argument_validator(move, Context)


def invalid(validator: ArgumentValidator, params: Any) -> list[dict[str, Any]]:
    with pytest.raises(InvalidParams) as caught:
        validator.validate(params)
    assert caught.value.code == -32602
    data: list[dict[str, Any]] = caught.value.data
    return data


# Building validators ----------------------------------------------------------------------


def test_the_context_parameter_is_not_an_argument(mover: ArgumentValidator) -> None:
    assert mover.wants_context
    assert mover.names == ("count", "label", "ratio")


def test_a_handler_without_context_takes_only_arguments() -> None:
    validator = argument_validator(no_context, Context)
    assert not validator.wants_context
    assert validator.names == ("a", "b")


@pytest.mark.parametrize(
    "handler, problem",
    [
        (varargs, "*args and **kwargs cannot be validated"),
        (varkw, "*args and **kwargs cannot be validated"),
        (positional_only, "positional-only parameters are not supported"),
        (untyped, "has no type annotation"),
        (any_typed, "typed Any or object"),
        (object_typed, "typed Any or object"),
        (nested_any, "typed Any or object"),
        (list_of_object, "typed Any or object"),
        (optional_any, "typed Any or object"),
        (late_context, "the context must be the first parameter"),
        (unresolvable, "cannot resolve type hints (NameError)"),
    ],
)
def test_handlers_that_cannot_be_validated_safely_are_refused(handler: Any, problem: str) -> None:
    with pytest.raises(SignatureError) as caught:
        argument_validator(handler, Context)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    "handler, name",
    [(broken.underscored, "_x"), (broken.model_config, "model_config"),
     (broken.schema, "schema"), (broken.copy, "copy")],
)
def test_parameters_named_like_pydantic_internals_are_refused(handler: Any, name: str) -> None:
    # A leading "_" makes a private attribute, BaseModel attributes clash with the model's own.
    with pytest.raises(SignatureError) as caught:
        argument_validator(handler, Context)
    assert f"parameter {name!r}" in str(caught.value)


@pytest.mark.parametrize(
    "handler, model",
    [(broken.loose, "Loose"), (broken.allowing, "Allowing"), (broken.loose_list, "Loose"),
     (broken.loose_optional, "Loose"), (broken.loose_field, "Loose")],
)
def test_models_that_do_not_forbid_extra_fields_are_refused_naming_the_model(
    handler: Any, model: str
) -> None:
    with pytest.raises(SignatureError) as caught:
        argument_validator(handler, Context)
    assert f"model {model} must set extra='forbid'" in str(caught.value)


# Params by position and by name ------------------------------------------------------------


def test_params_by_position_fill_parameters_in_order(mover: ArgumentValidator) -> None:
    assert mover.validate([3, "jump", 0.5]) == {"count": 3, "label": "jump", "ratio": 0.5}


def test_params_by_name_fill_the_named_parameters(mover: ArgumentValidator) -> None:
    assert mover.validate({"ratio": 2.0, "count": 3}) == {
        "count": 3, "label": "step", "ratio": 2.0
    }


def test_defaults_fill_missing_optional_parameters(mover: ArgumentValidator) -> None:
    assert mover.validate([3]) == {"count": 3, "label": "step", "ratio": 1.0}
    assert argument_validator(optional, Context).validate([]) == {"note": None}


def test_a_missing_required_parameter_is_refused(mover: ArgumentValidator) -> None:
    assert invalid(mover, []) == [{"loc": ["count"], "msg": "Field required", "type": "missing"}]
    assert invalid(mover, {"label": "x"})[0]["type"] == "missing"


def test_too_many_positional_params_are_refused(mover: ArgumentValidator) -> None:
    assert invalid(mover, [1, "a", 1.0, "extra"]) == [
        {"loc": [3], "msg": "Too many arguments", "type": "too_many_arguments"}
    ]


def test_positional_params_for_a_handler_without_parameters_are_refused() -> None:
    async def nothing(ctx: Context) -> None: ...

    validator = argument_validator(nothing, Context)
    assert validator.validate([]) == {}
    assert invalid(validator, [1])[0]["type"] == "too_many_arguments"


def test_unknown_named_params_are_refused_without_echoing_their_names(
    mover: ArgumentValidator,
) -> None:
    [error] = invalid(mover, {"count": 1, "colour": "red"})
    assert error["type"] == "extra_forbidden"
    assert error["msg"] == "Extra inputs are not permitted"
    assert "colour" not in json.dumps(error)


def test_the_context_cannot_be_passed_by_name(mover: ArgumentValidator) -> None:
    [error] = invalid(mover, {"count": 1, "ctx": {"client_id": "c-admin"}})
    assert error["type"] == "extra_forbidden"


# Strictness ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, error_type",
    [("1", "int_type"), (1.5, "int_type"), (1.0, "int_type"), (True, "int_type"),
     (None, "int_type"), ([1], "int_type")],
)
def test_only_an_int_is_an_int(mover: ArgumentValidator, value: Any, error_type: str) -> None:
    assert invalid(mover, [value])[0] == {
        "loc": ["count"], "msg": "Input should be a valid integer", "type": error_type
    }


def test_a_number_is_not_a_string(mover: ArgumentValidator) -> None:
    assert invalid(mover, [1, 2])[0]["type"] == "string_type"


def test_an_int_is_accepted_as_a_float(mover: ArgumentValidator) -> None:
    assert mover.validate([1, "a", 2])["ratio"] == 2.0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused(mover: ArgumentValidator, value: float) -> None:
    assert invalid(mover, [1, "a", value])[0]["type"] == "finite_number"


def test_nested_models_are_validated_and_handed_over_as_models() -> None:
    validator = argument_validator(place, Context)
    arguments = validator.validate([{"x": 1, "y": 2.5}])
    assert arguments == {"point": Point(x=1, y=2.5)}
    assert isinstance(arguments["point"], Point)


def test_nested_models_refuse_extra_fields_and_coercion() -> None:
    validator = argument_validator(place, Context)
    [extra] = invalid(validator, [{"x": 1, "y": 2, "z": 3}])
    assert extra["type"] == "extra_forbidden" and extra["loc"][0] == "point"
    assert invalid(validator, [{"x": "1", "y": 2}])[0]["loc"] == ["point", "x"]


def test_nested_models_without_a_strict_config_are_still_validated_strictly() -> None:
    assert Counter.model_validate({"n": "1"}).n == 1  # lax on its own
    validator = argument_validator(count_with, Context)
    assert validator.validate([{"n": 1}, [{"n": 2}]]) == {
        "counter": Counter(n=1), "more": [Counter(n=2)]
    }
    assert invalid(validator, [{"n": "1"}, []]) == [
        {"loc": ["counter", "n"], "msg": "Input should be a valid integer", "type": "int_type"}
    ]
    assert invalid(validator, [{"n": 1}, [{"n": 2.0}]])[0]["loc"] == ["more", 0, "n"]
    assert invalid(validator, [{"n": True}, []])[0]["type"] == "int_type"


def test_the_demo_position_refuses_out_of_bounds_and_non_numbers() -> None:
    async def sync(ctx: Context, position: Position) -> None: ...

    validator = argument_validator(sync, Context)
    assert invalid(validator, [{"left": -1, "top": 0}])[0]["type"] == "greater_than_equal"
    assert invalid(validator, [{"left": 10_001, "top": 0}])[0]["type"] == "less_than_equal"
    assert invalid(validator, [{"left": "10", "top": 0}])[0]["type"] == "float_type"
    assert invalid(validator, [{"left": 1}])[0]["type"] == "missing"


def test_constraints_of_annotated_types_are_enforced() -> None:
    validator = argument_validator(numbers, Context)
    assert validator.validate([[0, 5]]) == {"values": [0, 5]}
    assert invalid(validator, [[0, -1]])[0]["loc"] == ["values", 1]


# What errors say, and what they do not ----------------------------------------------------


def test_errors_carry_only_loc_msg_and_type(mover: ArgumentValidator) -> None:
    data = invalid(mover, {"count": SECRET, "label": 7, "ratio": SECRET, "other": SECRET})
    assert len(data) == 4
    for item in data:
        assert set(item) == {"loc", "msg", "type"}
        assert isinstance(item["loc"], list)


def test_errors_never_echo_the_input(mover: ArgumentValidator) -> None:
    data = invalid(mover, {"count": SECRET, "label": [SECRET], SECRET: SECRET})
    # Neither a value nor the name of an unknown field (client input too) is echoed.
    assert len(data) == 3
    assert SECRET not in json.dumps(data)


def test_errors_are_cut_to_a_bounded_list() -> None:
    validator = argument_validator(numbers, Context)
    data = invalid(validator, [[-1] * 50])
    assert len(data) == MAX_REPORTED_ERRORS


# Client function stubs and their results ---------------------------------------------------


def test_a_stub_return_type_validates_the_answer_strictly() -> None:
    adapter = return_adapter(stub_str)
    assert validate_result(adapter, "yes") == "yes"
    with pytest.raises(InvalidParams) as caught:
        validate_result(adapter, 1)
    assert caught.value.data == [
        {"loc": [], "msg": "Input should be a valid string", "type": "string_type"}
    ]


def test_a_stub_returning_none_accepts_only_null() -> None:
    adapter = return_adapter(stub_none)
    assert validate_result(adapter, None) is None
    with pytest.raises(InvalidParams):
        validate_result(adapter, 0)


def test_a_stub_returning_a_model_validates_with_the_model() -> None:
    adapter: TypeAdapter[Any] = return_adapter(stub_point)
    assert validate_result(adapter, {"x": 1, "y": 2}) == Point(x=1, y=2)
    with pytest.raises(InvalidParams):
        validate_result(adapter, {"x": 1, "y": 2, "z": 3})


@pytest.mark.parametrize(
    "stub, problem",
    [(stub_unannotated, "declare the return type"), (stub_any, "is Any or object")],
)
def test_stubs_without_a_usable_return_type_are_refused(stub: Any, problem: str) -> None:
    with pytest.raises(SignatureError, match=problem):
        return_adapter(stub)
