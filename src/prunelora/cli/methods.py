"""`prunelora methods`: the registered unlearning methods, one line each (or `--json`)."""

from __future__ import annotations

import argparse

from prunelora.cli.options import listing_options, print_rows
from prunelora.methods import get_method, list_methods

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
                     "lora": capabilities.uses_lora})
    return rows


def run(args: argparse.Namespace) -> int:
    """List the registered unlearning methods, one line each."""
    print_rows(method_rows(), ["name", "summary"], args.json)
    return 0
