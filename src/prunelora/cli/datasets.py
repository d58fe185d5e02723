"""`prunelora datasets`: the registered datasets and how each is reached offline."""

from __future__ import annotations

import argparse

from prunelora.cli.options import no_options, print_listing
from prunelora.data import list_datasets

setup = no_options


def run(args: argparse.Namespace) -> int:
    """List the registered datasets and how each is reached offline."""
    print_listing(list_datasets(), 20)
    return 0
