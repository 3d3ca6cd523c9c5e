"""Checks shared by the frozen config dataclasses (data, space, search, fine-tuning)."""

from __future__ import annotations

import types
from dataclasses import fields
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from archft.core.errors import ConfigError

T = TypeVar("T")


def require_positive_ints(config: Any, *names: str) -> None:
    """Raises ConfigError unless every named field is an int >= 1."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def from_plain(cls: type[T], data: dict, what: str, **nested: type) -> T:
    """Builds a config dataclass from plain data (YAML/JSON), refusing unknown fields.

    Args:
        cls: the dataclass.
        data: field name -> value.
        what: how the options are called in errors ("search", "finetune").
        nested: field name -> dataclass, for fields that hold a nested config.
    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {what} option {unknown[0]!r}")
    data = dict(data)
    for name, sub in nested.items():
        if isinstance(data.get(name), dict):
            data[name] = from_plain(sub, data[name], name)
    hints = get_type_hints(cls)
    for name, value in data.items():
        data[name] = _checked_scalar(value, hints[name], f"{what} option {name!r}")
    return cls(**data)


_SCALARS = (bool, int, float, str)


def _checked_scalar(value: Any, hint: Any, what: str) -> Any:
    """`value` checked against a scalar field type (bool, int, float, str, optionally
    `| None`); other field types are left to the dataclass's own checks.

    A float field takes an int, and a string that is a number: YAML 1.1 reads `3e-3` (no dot)
    as a string, and a user who writes it means the number.
    """
    allowed = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    if not all(t in _SCALARS or t is type(None) for t in allowed):
        return value
    if value is None and type(None) in allowed:
        return value
    if float in allowed and not isinstance(value, bool):
        if isinstance(value, int):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    if type(value) in allowed:  # exactly: a bool is not an int here
        return value
    names = " or ".join("null" if t is type(None) else {bool: "true/false", int: "an integer",
                        float: "a number", str: "a string"}[t] for t in allowed)
    raise ConfigError(f"{what} must be {names}, got {value!r}")
