"""The checks of a benchmark configuration's fields: types, ranges and safe names.

A bench config is a file anyone may hand over; what it holds becomes folder names under `--out`,
seeds handed to torch, numpy and scikit-learn, and lines in the terminal and the report. Each check
raises one `InvalidInputError` line naming the field (`seeds`, `scenarios[1].name`, ...) and what
is accepted, and shows the bad value only bounded (`prunelora.errors.shown`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from prunelora.errors import InvalidInputError, shown

# Seeds go to torch.manual_seed, numpy and the random module: any integer in [0, 2^63) is one.
MAX_SEED = 2**63
# The probe's seed is also scikit-learn's `random_state`, which takes [0, 2^32).
MAX_SKLEARN_SEED = 2**32
# Each seed is a cell per method and scenario, and the noise floor compares every pair of retrains.
MAX_SEEDS = 1000
MAX_NAME = 64
# A name that becomes a folder under --out: letters, digits, '.', '_', '-'; never '.' or '..'.
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def is_int(value: Any) -> bool:
    """An integer, and not a bool (YAML's `true` is not the seed 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_text(source: str, field: str, value: Any, *, optional: bool = False, empty: bool = True) -> None:
    """`value` is a string (None too when `optional`; the empty string unless `empty` is False)."""
    if value is None and optional:
        return
    if not isinstance(value, str) or (not empty and not value.strip()):
        what = ("a string" if empty else "a non-empty string") + (" or null" if optional else "")
        raise InvalidInputError(f"{source}: {field} must be {what}, not {shown(value)}")


def check_fraction(source: str, field: str, value: Any, low: float = 0.0, high: float = 1.0) -> None:
    """`value` is a number (not a bool, not a string) in [low, high)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value < high:
        raise InvalidInputError(f"{source}: {field} must be a number in [{low:g}, {high:g}), not {shown(value)}")


def check_seed(source: str, field: str, value: Any, limit: int = MAX_SEED) -> None:
    """`value` is an integer seed in [0, limit)."""
    if not is_int(value) or not 0 <= value < limit:
        bound = "2^63" if limit == MAX_SEED else "2^32" if limit == MAX_SKLEARN_SEED else str(limit)
        raise InvalidInputError(f"{source}: {field} must be an integer in [0, {bound}), not {shown(value)}")


def check_seed_list(source: str, field: str, value: Any, *, optional: bool = False) -> None:
    """`value` is a non-empty list of at most `MAX_SEEDS` seeds (None too when `optional`)."""
    if value is None and optional:
        return
    if not isinstance(value, list) or not value:
        raise InvalidInputError(f"{source}: {field} must be a non-empty list of integers (e.g. [0, 1, 2]), "
                                f"not {shown(value)}")
    if len(value) > MAX_SEEDS:
        raise InvalidInputError(f"{source}: {field} lists {len(value):,} seeds; at most {MAX_SEEDS:,} are accepted")
    for i, seed in enumerate(value):
        check_seed(source, f"{field}[{i}]", seed)


def check_safe_name(source: str, field: str, value: Any) -> None:
    """`value` can name a folder under --out and nothing else: a string of letters, digits, '.',
    '_' and '-' (no path separator, not '.' or '..', not starting with '.' or '-'), at most
    `MAX_NAME` characters."""
    if not isinstance(value, str):
        hint = " (quote it in the YAML, e.g. '3')" if isinstance(value, (int, float)) else ""
        raise InvalidInputError(f"{source}: {field} must be a string{hint}, not {shown(value)}")
    if len(value) > MAX_NAME or not SAFE_NAME.fullmatch(value):
        raise InvalidInputError(f"{source}: {field} {shown(value)} is not a safe name: up to {MAX_NAME} letters, "
                                "digits, '.', '_' or '-', not starting with '.' or '-' (it names a folder under --out)")


def check_forget_values(source: str, owner: str, scenario: dict) -> None:
    """The types of a scenario's forget request (its values are `ForgetSpec`'s to judge):
    `forget_class` an index, a string of indices or a list of indices; `forget_fraction` a number;
    `forget_indices` a file name."""
    value = scenario.get("forget_class")
    if value is not None and not (is_int(value) or (isinstance(value, str) and len(value) <= 10_000)
                                  or (isinstance(value, list) and all(is_int(v) for v in value))):
        raise InvalidInputError(f"{source}: {owner}: forget_class must be a class index or a list of them, "
                                f"not {shown(value)}")
    value = scenario.get("forget_fraction")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise InvalidInputError(f"{source}: {owner}: forget_fraction must be a number in (0, 1), not {shown(value)}")
    check_text(source, f"{owner}: forget_indices", scenario.get("forget_indices"), optional=True, empty=False)
