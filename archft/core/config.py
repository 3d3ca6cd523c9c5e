"""Checks shared by the frozen config dataclasses (data, space, search, fine-tuning)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

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
    return cls(**data)
