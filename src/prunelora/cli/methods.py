"""`prunelora methods`: the registered unlearning methods, one line each."""

from __future__ import annotations

import argparse

from prunelora.methods import list_methods


def setup(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    """List the registered unlearning methods, one line each."""
    for name, summary in list_methods().items():
        print(f"{name:16s} {summary}")
    return 0
