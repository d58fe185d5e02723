"""Strict types for the fields of a config dataclass (a recipe, a method's options).

YAML and Python both let a wrong type through silently: `epochs: true` would train one epoch and
`batch_size: 1.5` one image per batch. Here a bool is not a number and a float is not an int (the
ranges are each config's own checks; a float must be finite here, so that no check compares NaN).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing

from prunelora.errors import InvalidInputError


@functools.cache
def _hints(cls: type) -> dict[str, typing.Any]:
    return typing.get_type_hints(cls)


def _accepts(annotation, value) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(a, value) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:  # NaN and infinity are no hyper-parameter: `--momentum nan` would train NaN
        return isinstance(value, (int, float)) and not isinstance(value, bool) \
            and (isinstance(value, int) or math.isfinite(value))
    if annotation is str:
        return isinstance(value, str)
    if origin is tuple:  # tuple[str, ...]; a comma-separated string is split by the config itself
        item = typing.get_args(annotation)[0]
        return isinstance(value, str) or (isinstance(value, (tuple, list)) and all(_accepts(item, v) for v in value))
    return True  # mappings and other types are checked by their owners


def _name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if origin is tuple:
        return "a list of " + _name(typing.get_args(annotation)[0])
    return {bool: "true/false", int: "an integer", float: "a finite number", str: "a string"}.get(
        annotation, getattr(annotation, "__name__", str(annotation)))


def check_field_types(config) -> None:
    """Refuse, with one line naming the field, a dataclass field whose value has the wrong type."""
    hints = _hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if not _accepts(hints[f.name], value):
            raise InvalidInputError(f"{f.name} {value!r} must be {_name(hints[f.name])}")


def check_values(cls: type, values: dict) -> None:
    """`check_field_types` before construction, for values meant for the dataclass `cls` (so that a
    wrong type is named before any `__post_init__` compares it)."""
    hints = _hints(cls)
    for name, value in values.items():
        if name in hints and not _accepts(hints[name], value):
            raise InvalidInputError(f"{name} {value!r} must be {_name(hints[name])}")


SEED_LIMIT = 2**63  # torch.manual_seed takes at most a signed 64-bit integer


def check_seed(seed, name: str = "seed") -> None:
    """Refuse a seed that is not an integer in [0, 2^63) (what `torch.manual_seed` takes).

    Args:
        seed: the value given.
        name: how the message names it (e.g. `"--subset-seed"`).

    Raises:
        InvalidInputError: a bool, a non-integer, a negative seed or one of 2^63 or more.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise InvalidInputError(f"{name} {repr(seed)[:40]} is not an integer in [0, 2^63)")
