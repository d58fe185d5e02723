"""`prunelora presets`: the shipped unlearning recipes (`unlearn --preset NAME`), one line each.

Benchmark configurations are not presets of `unlearn` and are not listed (`bench --preset NAME`
runs one).
"""

from __future__ import annotations

import argparse

from prunelora.cli.options import listing_options, print_rows
from prunelora.presets import list_presets

setup = listing_options


def run(args: argparse.Namespace) -> int:
    """List the shipped unlearning recipes (unlearn --preset NAME), one line each."""
    rows = [{"name": name, **entry} for name, entry in list_presets().items()]
    if not args.json:
        for row in rows:
            row["method"] = f"{row['method']}, " + (f"{row['epochs']} epochs" if row["epochs"] is not None
                                                    else "its default epochs")
    print_rows(rows, ["name", "method", "summary"], args.json)
    return 0
