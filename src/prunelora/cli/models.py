"""`prunelora models`: the registered models, one line each."""

from __future__ import annotations

import argparse

from prunelora.models import list_models


def setup(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    """List the registered models."""
    for name, desc in list_models().items():
        print(f"{name:20s} {desc}")
    return 0
