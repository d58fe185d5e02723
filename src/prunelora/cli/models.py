"""`prunelora models`: the registered models, one line each (or `--json`)."""

from __future__ import annotations

import argparse

from prunelora.cli.options import listing_options, print_rows
from prunelora.models import list_models

setup = listing_options


def run(args: argparse.Namespace) -> int:
    """List the registered models."""
    print_rows([{"name": name, "description": text} for name, text in list_models().items()],
               ["name", "description"], args.json)
    return 0
