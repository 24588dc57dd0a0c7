"""Argument and result validation, compiled once at start-up from type hints.

Every server function gets a pydantic model built from its parameters' annotations: strict
(no "1" -> 1 coercion), unknown fields forbidden, NaN and infinities refused. A failure is cut
down to loc/msg/type so that no input value is ever echoed back to the peer.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model

from .errors import InvalidParams

STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)
MAX_REPORTED_ERRORS = 10


class SignatureError(ValueError):
    """A handler signature nowgate cannot validate safely (reported at policy load)."""


def cut_errors(error: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": _location(item["loc"], item["type"]), "msg": item["msg"], "type": item["type"]}
        for item in error.errors(include_url=False, include_context=False, include_input=False)
    ][:MAX_REPORTED_ERRORS]


def _location(loc: tuple[int | str, ...], error_type: str) -> list[int | str]:
    # The name of a forbidden extra field is the client's input: it is not echoed either.
    if error_type == "extra_forbidden":
        return [*loc[:-1], "*"]
    return list(loc)


def _mentions_any(annotation: Any) -> bool:
    if annotation is Any or annotation is object:
        return True
    return any(_mentions_any(arg) for arg in typing.get_args(annotation))


@dataclass(frozen=True)
class ArgumentValidator:
    """Turns JSON-RPC params (by position or by name) into handler keyword arguments."""

    model: type[BaseModel]
    names: tuple[str, ...]
    wants_context: bool

    def validate(self, params: list[Any] | dict[str, Any]) -> dict[str, Any]:
        if isinstance(params, list):
            if len(params) > len(self.names):
                raise InvalidParams(
                    data=[
                        {
                            "loc": [len(self.names)],
                            "msg": "Too many arguments",
                            "type": "too_many_arguments",
                        }
                    ]
                )
            params = dict(zip(self.names, params, strict=False))
        try:
            # strict=True here reaches nested models too, whatever their own config says.
            validated = self.model.model_validate(params, strict=True)
        except ValidationError as error:
            raise InvalidParams(data=cut_errors(error)) from None
        # Attribute access keeps nested models as model instances for the handler.
        return {name: getattr(validated, name) for name in self.names}


def argument_validator(function: Callable[..., Any], context_type: type) -> ArgumentValidator:
    """Compile the validator of one handler; raise SignatureError if it cannot be made safe."""
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as error:  # an unresolvable annotation names a type that does not exist
        raise SignatureError(f"cannot resolve type hints ({type(error).__name__})") from None
    fields: dict[str, Any] = {}
    wants_context = False
    for index, (name, parameter) in enumerate(signature.parameters.items()):
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise SignatureError(f"parameter {name!r}: *args and **kwargs cannot be validated")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise SignatureError(
                f"parameter {name!r}: positional-only parameters are not supported"
            )
        annotation = hints.get(name)
        if index == 0 and annotation is context_type:
            wants_context = True
            continue
        if annotation is None:
            raise SignatureError(f"parameter {name!r} has no type annotation")
        if _mentions_any(annotation):
            raise SignatureError(f"parameter {name!r} is typed Any or object; name a real type")
        if annotation is context_type:
            raise SignatureError(f"parameter {name!r}: the context must be the first parameter")
        if name.startswith("_") or hasattr(BaseModel, name):
            raise SignatureError(f"parameter {name!r}: rename it (reserved by pydantic)")
        loose = _loose_model(annotation)
        if loose is not None:
            raise SignatureError(
                f"parameter {name!r}: model {loose} must set extra='forbid' in its model_config"
            )
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[name] = (annotation, default)
    model = create_model(
        f"{function.__name__}_arguments", __config__=STRICT, **fields
    )
    return ArgumentValidator(model=model, names=tuple(fields), wants_context=wants_context)


def return_adapter(function: Callable[..., Any]) -> TypeAdapter[Any]:
    """A strict adapter for the value a client function stub declares it returns."""
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as error:
        raise SignatureError(f"cannot resolve type hints ({type(error).__name__})") from None
    if "return" not in hints:
        raise SignatureError("declare the return type (-> None if it returns nothing)")
    annotation = hints["return"]
    if _mentions_any(annotation):
        raise SignatureError("the return type is Any or object; name a real type")
    return TypeAdapter(annotation, config=STRICT if _is_plain(annotation) else None)


def _loose_model(annotation: Any, seen: frozenset[type] = frozenset()) -> str | None:
    """The name of a model reachable from `annotation` that accepts unknown fields."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return None
        if annotation.model_config.get("extra") != "forbid":
            return annotation.__name__
        for field in annotation.model_fields.values():
            found = _loose_model(field.annotation, seen | {annotation})
            if found is not None:
                return found
        return None
    for argument in typing.get_args(annotation):
        found = _loose_model(argument, seen)
        if found is not None:
            return found
    return None


def _is_plain(annotation: Any) -> bool:
    # TypeAdapter refuses a config for types that carry their own (models, dataclasses).
    return not (inspect.isclass(annotation) and issubclass(annotation, BaseModel))


def validate_result(adapter: TypeAdapter[Any], value: Any) -> Any:
    try:
        return adapter.validate_python(value, strict=True)
    except ValidationError as error:
        raise InvalidParams(data=cut_errors(error)) from None
