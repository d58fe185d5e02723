"""`prunelora datasets`: the registered datasets and how each is reached offline."""

from __future__ import annotations

import argparse

from prunelora.data import list_datasets


def setup(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    """List the registered datasets and how each is reached offline."""
    for name, how in list_datasets().items():
        print(f"{name:20s} {how}")
    return 0
