"""`prunelora methods`: the registered unlearning methods, one line each, with what our benchmark found
each good for (`class`, `records`) and its measured gap and cost."""

from __future__ import annotations

import argparse

from prunelora.cli.options import no_options
from prunelora.methods import list_methods
from prunelora.recommend import good_for, measured_range

setup = no_options


def run(args: argparse.Namespace) -> int:
    """List the registered unlearning methods, one line each."""
    for name, summary in list_methods().items():
        print(f"{name:16s} good for: {good_for(name):30s} {measured_range(name):36s} {summary}")
    return 0
