"""Turn pydantic validation errors into located, human messages (``path:line:col: field: ...``).

Pydantic's own texts ("Input should be a valid string") are rewritten to say what was found and
what to write instead; unknown keys get a "did you mean" from the model's real field names.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from reconciler.core.yamlread import Mark, Path

Locator = Callable[[Path, bool], tuple[str, Mark]]
_TYPE_WORDS = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "a whole number",
    "float_type": "a number",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def field_path(loc: Iterable[str | int]) -> str:
    """``('schedules', 0, 'cron')`` -> ``'schedules[0].cron'``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def describe(value: Any) -> str:
    """A short description of a YAML value: its YAML type and, for scalars, the value itself."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _message(error: ErrorDetails, model: type[BaseModel], loc: Path) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "value_error":
        return error["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        return f"unknown key {key!r}{_suggest(key, _fields_at(model, loc[:-1]))}"
    if kind == "missing":
        return f"missing required key {str(loc[-1])!r}"
    if kind in _TYPE_WORDS:
        hint = ""
        if kind == "string_type" and isinstance(value, int | float | date):
            hint = "; put it in quotes"
        return f"expected {_TYPE_WORDS[kind]}, found {describe(value)}{hint}"
    if kind == "enum":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{value!r} is not allowed; use one of {expected}"
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        return f"{value!r} does not match the pattern {pattern}"
    msg = error["msg"]
    return f"{msg[0].lower()}{msg[1:]}, found {describe(value)}"


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _fields_at(model: type[BaseModel], loc: Path) -> list[str]:
    """The field names of the (sub)model that ``loc`` points into, for suggestions."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = _inner_model(field.annotation)
    return list(getattr(current, "model_fields", {}))


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def explain(
    exc: ValidationError, model: type[BaseModel], locate: Locator, prefix: Path = ()
) -> list[tuple[str, Mark, str]]:
    """``(file, mark, message)`` for each error of ``exc``; ``locate`` maps a path to a file."""
    found = []
    for error in exc.errors(include_url=False):
        loc: Path = tuple(error["loc"])
        on_key = bool(loc) and loc[-1] == "[key]"
        if on_key:
            loc = loc[:-1]
        on_key = on_key or error["type"] == "extra_forbidden"
        file, mark = locate((*prefix, *loc), on_key)
        where = field_path(loc)
        text = _message(error, model, loc)
        found.append((file, mark, f"{where}: {text}" if where else text))
    return found
