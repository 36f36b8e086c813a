"""Dotted overrides (``--train.steps=2000``) applied to nested frozen dataclasses.

Each value is parsed against the type annotation of the field it replaces; an unknown key fails
with the closest known keys as a suggestion.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Iterable, Iterator
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from metalearn.errors import ConfigError

__all__ = ["apply_overrides", "flatten", "parse_value"]

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def flatten(config: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(dotted_key, value)`` for every leaf field of a nested dataclass."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        key = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            yield from flatten(value, f"{key}.")
        else:
            yield key, value


def parse_value(text: str, annotation: Any, key: str) -> Any:
    """Parse ``text`` as a value of type ``annotation``.

    Supported: int, float, bool, str, None, Literal, homogeneous tuples, and unions of those.

    Raises:
        ConfigError: naming ``key``, the text and the expected type.
    """
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = get_args(annotation)
        if type(None) in options and text.lower() in {"none", "null", ""}:
            return None
        for option in (o for o in options if o is not type(None)):
            try:
                return parse_value(text, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"--{key}={text}: expected {_describe(annotation)}")
    if origin is Literal:
        choices = get_args(annotation)
        for choice in choices:
            if str(choice) == text:
                return choice
        raise ConfigError(f"--{key}={text}: expected one of {', '.join(map(str, choices))}")
    if origin is tuple:
        item_type = get_args(annotation)[0]
        parts = [p for p in text.strip("()[] ").split(",") if p.strip()]
        return tuple(parse_value(p.strip(), item_type, key) for p in parts)
    return _parse_scalar(text, annotation, key)


def _parse_scalar(text: str, annotation: Any, key: str) -> Any:
    if annotation is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"--{key}={text}: expected a boolean (true/false)")
    if annotation is int and "e" in text.lower():  # 1e4: an int written as a float
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"--{key}={text}: expected int") from None
        if not value.is_integer():  # also nan and inf
            raise ConfigError(f"--{key}={text}: expected a whole number")
        return int(value)
    if annotation in (int, float):
        try:
            return annotation(text)
        except ValueError:
            raise ConfigError(f"--{key}={text}: expected {annotation.__name__}") from None
    if annotation is str:
        return text
    raise ConfigError(f"--{key}: fields of type {_describe(annotation)} cannot be overridden")


def _describe(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _split_override(item: str) -> tuple[str, str]:
    body = item[2:] if item.startswith("--") else item
    if "=" not in body:
        raise ConfigError(f"override {item!r} must look like --section.field=value")
    key, value = body.split("=", 1)
    return key.strip(), value.strip()


def apply_overrides(config: T, overrides: Iterable[str]) -> T:
    """Return ``config`` with each ``section.field=value`` override applied.

    Args:
        config: a frozen dataclass, possibly nesting other dataclasses.
        overrides: strings ``"--train.steps=2000"`` or ``"train.steps=2000"``.

    Raises:
        ConfigError: for an unknown key (with suggestions) or a value of the wrong type.

    Examples:
        >>> @dataclasses.dataclass(frozen=True)
        ... class Train:
        ...     steps: int = 10
        >>> @dataclasses.dataclass(frozen=True)
        ... class Run:
        ...     train: Train = Train()
        >>> apply_overrides(Run(), ["--train.steps=2000"]).train.steps
        2000
    """
    known = [k for k, _ in flatten(config)]
    for item in overrides:
        key, text = _split_override(item)
        if key not in known:
            suggestions = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
            hint = (
                f"; did you mean {' or '.join('--' + s for s in suggestions)}?"
                if suggestions
                else ""
            )
            raise ConfigError(f"unknown config key --{key}{hint}")
        config = _replace_path(config, key.split("."), text, key)
    return config


def _replace_path(config: Any, path: list[str], text: str, key: str) -> Any:
    head, rest = path[0], path[1:]
    if rest:
        inner = _replace_path(getattr(config, head), rest, text, key)
        return dataclasses.replace(config, **{head: inner})
    annotation = get_type_hints(type(config))[head]
    return dataclasses.replace(config, **{head: parse_value(text, annotation, key)})
