"""pydantic's validation errors, said the way cnnlab says errors: the key, what is valid, what was found."""
from __future__ import annotations

import re
import types
import typing

import annotated_types as at
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from ..errors import closest


def _found(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _num(v) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) >= 10_000:
        v = int(v)
    return f"{v:,}" if isinstance(v, int) and abs(v) >= 10_000 else f"{v:g}" if isinstance(v, float) else str(v)


def _options(annotation) -> list:
    """The alternatives of a Union / Optional (or [annotation] itself)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return list(typing.get_args(annotation))
    return [annotation]


def expected(field: FieldInfo) -> str | None:
    """'an integer from 1 to 65,536', 'a number in [0, 1)', 'true or false', "one of 'a', 'b'" — or None."""
    options = _options(field.annotation)
    nullable = type(None) in options
    options = [o for o in options if o is not type(None)]
    if len(options) != 1:
        return None
    kind = options[0]
    meta = list(field.metadata)
    if typing.get_origin(kind) is typing.Annotated:
        kind, *extra = typing.get_args(kind)
        meta += [m for e in extra for m in getattr(e, "metadata", [e])]
    tail = " (or null)" if nullable else ""
    if kind is bool:
        return "true or false" + tail
    if typing.get_origin(kind) is typing.Literal:
        return "one of " + ", ".join(str(v) for v in typing.get_args(kind)) + tail
    if kind not in (int, float):
        return None
    lo = next(((m.ge, "[") for m in meta if isinstance(m, at.Ge)), None) or \
        next(((m.gt, "(") for m in meta if isinstance(m, at.Gt)), None)
    hi = next(((m.le, "]") for m in meta if isinstance(m, at.Le)), None) or \
        next(((m.lt, ")") for m in meta if isinstance(m, at.Lt)), None)
    if kind is int and lo and hi and lo[1] == "[" and hi[1] == "]":
        return f"an integer from {_num(lo[0])} to {_num(hi[0])}{tail}"
    noun = "an integer" if kind is int else "a number"
    if lo and hi:
        return f"{noun} in {lo[1]}{_num(lo[0])}, {_num(hi[0])}{hi[1]}{tail}"
    if lo:
        return f"{noun} {'>=' if lo[1] == '[' else '>'} {_num(lo[0])}{tail}"
    return noun + tail


def field_at(model: type[BaseModel], loc: tuple) -> FieldInfo | None:
    """The field a pydantic error location points at, walking nested models."""
    field = None
    for key in loc:
        if model is None or not isinstance(key, str) or key not in model.model_fields:
            return None
        field = model.model_fields[key]
        model = next((o for o in _options(field.annotation) if isinstance(o, type) and issubclass(o, BaseModel)), None)
    return field


def valid_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys valid inside the section at `loc` ([] if it is not a section); a list index steps into the
    list's items (`loggers.0`: a logger's keys)."""
    annotation = None
    for key in loc:
        if isinstance(key, int):  # an item of the list the previous key holds
            annotation = next((typing.get_args(o)[0] for o in _options(annotation)
                               if typing.get_origin(o) is list and typing.get_args(o)), None)
            model = _section(annotation)
        elif model is not None and key in model.model_fields:
            annotation = model.model_fields[key].annotation
            model = _section(annotation)
        elif not _is_member(key):
            return []
    return list(model.model_fields) if model is not None else []


def _section(annotation) -> type[BaseModel] | None:
    """The model among an annotation's alternatives (`X | None`, `Literal[...] | X`), if any."""
    return next((o for o in _options(annotation) if isinstance(o, type) and issubclass(o, BaseModel)), None)


def _is_member(key) -> bool:
    """A union member's name in an error location: ('augment', 'AugmentConfig', 'crop'), ('x', 'literal[...]')."""
    return isinstance(key, str) and (key[:1].isupper() or key in ("bool", "int", "float", "str", "list", "dict")
                                     or key.startswith(("literal[", "nullable[", "function-")))


def _rank(error: dict) -> int:
    if error["type"] == "extra_forbidden":
        return 0  # a misspelt key explains the 'missing' error that comes with it
    if any(_is_member(k) and k[:1].isupper() for k in error["loc"]) and error["type"] not in ("model_type", "dict_type"):
        return 1  # inside the union member that the input's shape chose (a mapping for augment)
    return 2


def first_error(exc: ValidationError, model: type[BaseModel]) -> tuple[tuple, str]:
    """(location, message) of the most telling error of validating against `model`, in cnnlab's words."""
    errors = exc.errors(include_url=False)
    error = min(errors, key=_rank)
    loc = tuple(k for k in error["loc"] if not _is_member(k))
    if _rank(error) == 2 and any(_is_member(k) for k in error["loc"]):  # 'auto' | bool: say both
        same = [e for e in errors if tuple(k for k in e["loc"] if not _is_member(k)) == loc]
        words = [re.sub(r"a valid dictionary or instance of \w+", "a mapping of its keys", e["msg"])
                 .replace("Input should be ", "").replace("a valid boolean", "true or false") for e in same]
        return loc, f"must be {' or '.join(dict.fromkeys(words))}, got {_found(error.get('input'))}"
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else ""
        valid = valid_keys(model, loc[:-1])
        dotted = ".".join(str(k) for k in loc)
        return loc, f"unknown key '{dotted:.60}'{closest(key, valid)}; valid: {', '.join(valid) or 'none'}"
    if kind == "missing":
        return loc, "is required"
    if kind == "value_error":
        text = msg.removeprefix("Value error, ")
        if text.startswith("unknown"):  # it names what was found already
            return loc, text
    else:
        field = field_at(model, loc)
        want = expected(field) if field is not None else None
        text = f"must be {want}" if want else msg.replace("Input should be", "must be")
    return loc, f"{text}, got {_found(error.get('input'))}"
