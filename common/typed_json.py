"""Dataclasses from parsed JSON with every field's type checked: the one reader of the records the project writes
(run.json, ONNX metadata, engine sidecars), so a foreign or damaged file is one clear error, never a wrong value."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class _Mismatch(Exception):
    """A value that does not fit its field; the message names the path to it."""


def _decode(value: Any, hint: Any, path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]  # our records use only `X | None` unions
        return _decode(value, inner, path)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _from_dict(hint, value, path)
    if origin in (list, tuple) and isinstance(value, list | tuple):
        fixed = origin is tuple and args[-1] is not Ellipsis  # tuple[float, float], not tuple[str, ...]
        if fixed and len(value) != len(args):
            raise _Mismatch(f"{path} should hold {len(args)} values, not {len(value)}")
        items = [_decode(v, args[i] if fixed else args[0], f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict and isinstance(value, dict):
        if not args:
            return value
        return {k: _decode(v, args[1], f"{path}.{k}") for k, v in value.items()}  # keys are strings in JSON
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool) and type(value) is hint:
        return value
    expected = getattr(hint, "__name__", str(hint))
    raise _Mismatch(f"{path} should be {expected}, not {type(value).__name__} {value!r:.40}")


def _from_dict(cls: type[T], data: Any, path: str) -> T:
    if not isinstance(data, dict):
        raise _Mismatch(f"{path or 'the record'} should be an object, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # cls is a dataclass type
        where = f"{path}.{f.name}" if path else f.name
        if f.name in data:
            kwargs[f.name] = _decode(data[f.name], hints[f.name], where)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _Mismatch(f"{where} is missing")
    return cls(**kwargs)


def from_json(cls: type[T], data: Any, where: str, error: type[Exception]) -> T:
    """`cls` built from `data` (parsed JSON), nested dataclasses and tuples included; unknown keys are ignored (newer
    writers may add some). Raises `error` naming `where` and the first field that is missing or of the wrong type."""
    try:
        return _from_dict(cls, data, "")
    except _Mismatch as err:
        raise error(f"{where}: {err}") from None
