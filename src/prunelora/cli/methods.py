"""`prunelora methods`: the registered unlearning methods, one line each (or `--json`), with what our
benchmark found each good for (`class`, `records`) and its measured gap and cost."""

from __future__ import annotations

import argparse

from prunelora.cli.options import listing_options, print_rows
from prunelora.methods import get_method, list_methods
from prunelora.recommend import good_for, measured_range

setup = listing_options


def method_rows() -> list[dict]:
    """One dict per registered method: `name`, `summary` and what it declares (`forget_kinds`,
    `trains`, `prunes`, `lora`). The JSON listing prints every key; a column added here (e.g. what
    a method is good for) reaches `--json` with no other change."""
    rows = []
    for name, summary in list_methods().items():
        capabilities = get_method(name).capabilities
        rows.append({"name": name, "summary": summary, "forget_kinds": list(capabilities.forget_kinds),
                     "trains": capabilities.trains, "prunes": capabilities.uses_pruning,
                     "lora": capabilities.uses_lora,
                     # what our committed Fashion-MNIST benchmark found it good for, and at what gap and cost
                     "good_for": good_for(name), "measured": measured_range(name)})
    return rows


def run(args: argparse.Namespace) -> int:
    """List the registered unlearning methods, one line each."""
    rows = method_rows()
    if not args.json:  # the column says what it is on a terminal; JSON keeps the plain value
        rows = [row | {"good_for": f"good for: {row['good_for']}"} for row in rows]
    print_rows(rows, ["name", "good_for", "measured", "summary"], args.json)
    return 0
