"""`prunelora methods`: the registered unlearning methods, one line each."""

from __future__ import annotations

import argparse

from prunelora.cli.options import no_options, print_listing
from prunelora.methods import list_methods

setup = no_options


def run(args: argparse.Namespace) -> int:
    """List the registered unlearning methods, one line each."""
    print_listing(list_methods(), 16)
    return 0
