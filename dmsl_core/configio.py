"""Dataclass configurations <-> JSON dicts, one way for every configuration.

:func:`to_dict` gives plain JSON values (tuples as lists, nested dataclasses as dicts).
:func:`from_dict` builds the dataclass back, checking each value against the field's annotation
(``bool``, ``int``, ``float``, ``str``, ``dict``, ``list``, ``tuple[X, ...]``, ``Optional[X]``) and
turning JSON lists into tuples where the field is a tuple. Keys left out take the defaults.

One policy for what is not understood, chosen by the caller:

- ``strict=True`` (configurations a person or a program wrote for this version: a training job, a
  model configuration, a calibration): an unknown key or a value of the wrong type is a
  ``ValueError`` naming ``where`` and the key - a typo is never silently ignored;
- ``strict=False`` (state the app saved itself, possibly by another version: the settings): unknown
  keys and values of the wrong type are dropped (the default stays), each dropped key logged.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import typing
from typing import Any, Optional, TypeVar

log = logging.getLogger("dmsl.configio")

T = TypeVar("T")

_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "an object",
          list: "a list"}


def value_problem(value: Any, hint: Any) -> Optional[str]:
    """What is wrong with a JSON ``value`` for a field annotated ``hint`` ("an integer", ...); None: nothing."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:                                  # Optional[X] (or X | None)
        if value is None and type(None) in args:
            return None
        probs = [value_problem(value, a) for a in args if a is not type(None)]
        return None if any(p is None for p in probs) else " or ".join(p for p in probs if p)
    if origin is tuple:                                         # tuple[X, ...] / tuple[X, Y]: a JSON list
        if not isinstance(value, (list, tuple)) or not value:
            return "a non-empty list"
        inner = args[0] if args else Any
        if any(value_problem(v, inner) for v in value):
            return f"a list of {getattr(inner, '__name__', inner)} values"
        return None
    if origin in (dict, list):
        hint = origin
    if hint is Any:
        return None
    ok = (isinstance(value, bool) if hint is bool else
          isinstance(value, int) and not isinstance(value, bool) if hint is int else
          isinstance(value, (int, float)) and not isinstance(value, bool) if hint is float else
          isinstance(value, hint) if isinstance(hint, type) else True)
    return None if ok else _NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def _convert(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Union:
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return value if value is None or len(inner) != 1 else _convert(value, inner[0])
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def from_dict(cls: type[T], data: Any, *, strict: bool = True, where: str = "", what: str = "",
              skip: tuple = ()) -> T:
    """An instance of the dataclass ``cls`` from ``data`` (see the module docstring). ``where`` (a file)
    and ``what`` ("in the job file") name the place in the messages. ``skip``: keys written beside the
    configuration for the record (ignored, e.g. ``dmsl_version``)."""
    label = f"{where}: " if where else ""
    in_what = f" {what}" if what else ""
    if not isinstance(data, dict):
        raise ValueError(f"{label}expected a JSON object for {cls.__name__}, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kw: dict = {}
    unknown = [k for k in data if k not in names and k not in skip]
    if unknown:
        if strict:
            raise ValueError(f"{label}unknown key{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(repr(k) for k in unknown)}{in_what} (known keys: {', '.join(names)})")
        log.info("%signored unknown key(s) %s", label, ", ".join(unknown))
    for k in names:
        if k not in data:
            continue
        v = data[k]
        problem = value_problem(v, hints.get(k, Any))
        if problem:
            if strict:
                raise ValueError(f"{label}key {k!r}{in_what} must be {problem}, not {json.dumps(v, default=str)}")
            log.info("%sdropped %r = %r (must be %s)", label, k, v, problem)
            continue
        kw[k] = _convert(v, hints.get(k, Any))
    return cls(**kw)


def to_dict(obj: Any) -> dict:
    """A dataclass instance as plain JSON values (tuples as lists)."""
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return {k: plain(v) for k, v in dataclasses.asdict(obj).items()}
