"""Pydantic validation errors rewritten for an operator: where, what, and the likely fix.

Pydantic reports `loc` tuples and messages written for programmers ("Input should be a
valid dictionary or instance of Match"). This module places each error on its line and
adds what pydantic cannot know: the key that was probably meant, and that YAML turned
an unquoted `1` or `on` into a number or a boolean.
"""

import difflib
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from bascule.config.document import Document, Loc
from bascule.config.problem import Problem

__all__ = ["did_you_mean", "problems_from"]

# Pydantic's wording for type mismatches, replaced by what a YAML author would write.
_EXPECTED = {
    "model_type": "expected a mapping of keys to values",
    "model_attributes_type": "expected a mapping of keys to values",
    "dict_type": "expected a mapping of keys to values",
    "list_type": "expected a list",
    "string_type": "expected a string",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
}


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """ "did you mean 'x'?" for the closest choice, or None when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else None


def problems_from(error: ValidationError, model: type[BaseModel], doc: Document) -> list[Problem]:
    """One Problem per pydantic error, placed in `doc` and phrased for the file's author."""
    return [_problem(details, model, doc) for details in error.errors()]


def _problem(details: ErrorDetails, model: type[BaseModel], doc: Document) -> Problem:
    loc: Loc = tuple(details["loc"])
    kind = details["type"]
    value = details["input"]
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        key = str(loc[-1])
        return doc.problem(loc, "unknown key", _unknown_key_hint(key, parent), at_key=True)
    if kind == "missing":
        return doc.problem(loc, "required key is missing")
    if kind == "value_error":
        return doc.problem(loc, str(details.get("ctx", {}).get("error", details["msg"])))
    if kind == "literal_error":
        expected = details.get("ctx", {}).get("expected", "")
        hint = None
        if isinstance(value, str):
            hint = did_you_mean(
                value, (s.strip(" '") for s in expected.replace(" or ", ",").split(","))
            )
        return doc.problem(loc, f"expected {expected}, got {_describe(value)}", hint)
    if kind == "too_short":
        least = details.get("ctx", {}).get("min_length", 1)
        return doc.problem(loc, f"needs at least {least} item{'s' if least != 1 else ''}")
    message = _EXPECTED.get(kind, details["msg"][:1].lower() + details["msg"][1:])
    return doc.problem(loc, f"{message}, got {_describe(value)}", _quote_hint(kind, loc, doc))


def _describe(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _quote_hint(kind: str, loc: Loc, doc: Document) -> str | None:
    """YAML reads `1`, `on`, `no`, `1.0` as non-strings; quoting is the fix."""
    written = doc.scalar(loc)
    if kind != "string_type" or written is None:
        return None
    return f'put it in quotes to keep it as text: "{written}"'


def _unknown_key_hint(key: str, model: type[BaseModel] | None) -> str | None:
    if model is None:
        return None
    # A right key at the wrong level (`path` on a route instead of under `match`).
    for name, field in model.model_fields.items():
        child = _model_type(field.annotation)
        parent = field.alias or name
        if child is not None and key in _keys_of(child):
            return f"did you mean '{parent}.{key}'? '{key}' goes under '{parent}'"
    names = _keys_of(model)
    return did_you_mean(key, names) or "valid keys: " + ", ".join(names)


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc`, following the field types."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {field.alias or name: field for name, field in current.model_fields.items()}
            if part not in fields:
                return None
            current = _strip(fields[str(part)].annotation)
        elif typing.get_origin(current) is list and isinstance(part, int):
            current = _strip(typing.get_args(current)[0])
        elif typing.get_origin(current) is dict:
            current = _strip(typing.get_args(current)[1])
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _model_type(annotation: Any) -> type[BaseModel] | None:
    inner = _strip(annotation)
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def _strip(annotation: Any) -> Any:
    """Peel `Annotated[...]` and `X | None` down to X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
