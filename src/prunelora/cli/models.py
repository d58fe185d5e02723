"""`prunelora models`: the registered models, one line each."""

from __future__ import annotations

import argparse

from prunelora.cli.options import no_options, print_listing
from prunelora.models import list_models

setup = no_options


def run(args: argparse.Namespace) -> int:
    """List the registered models."""
    print_listing(list_models(), 20)
    return 0
