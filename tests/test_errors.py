"""nowgate.errors: the drawn error tree is the class tree, and every error class is drawn."""

from __future__ import annotations

import inspect
import re

import nowgate.errors as errors


def drawn_tree() -> dict[str, str | None]:
    """Class name -> parent name, read from the drawing in the module docstring."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^(\s*[│ ]*(?:[├└]── )?)([A-Z][A-Za-z]+)\b", line)
        if match is None or not line.startswith("    "):
            continue
        depth = len(match.group(1))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[match.group(2)] = stack[-1][1] if stack else None
        stack.append((depth, match.group(2)))
    return parents


def test_every_error_class_is_drawn_under_its_real_parent() -> None:
    classes = {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, errors.NowgateError)
    }
    drawn = drawn_tree()
    assert set(drawn) == set(classes)
    for name, parent in drawn.items():
        base = classes[name].__bases__[0]
        assert (base.__name__ if parent is not None else None) == parent, name


def test_drawn_codes_are_the_classes_codes() -> None:
    for line in (errors.__doc__ or "").splitlines():
        if "──" not in line:
            continue  # prose below the drawing
        match = re.search(r"([A-Z][A-Za-z]+)\s+(-?\d{4,5})\s", line)
        if match is None:
            continue
        cls = getattr(errors, match.group(1))
        code = cls.code if issubclass(cls, errors.RpcError) else cls.close_code
        assert code == int(match.group(2)), match.group(1)
