"""`prunelora datasets`: the registered datasets and how each is reached offline (or `--json`)."""

from __future__ import annotations

import argparse

from prunelora.cli.options import listing_options, print_rows
from prunelora.data import list_datasets

setup = listing_options


def run(args: argparse.Namespace) -> int:
    """List the registered datasets and how each is reached offline."""
    print_rows([{"name": name, "description": text} for name, text in list_datasets().items()],
               ["name", "description"], args.json)
    return 0
