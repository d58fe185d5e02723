"""`prunelora retrain`: exact unlearning, the original's recipe on D_r alone."""

from __future__ import annotations

import argparse

from prunelora.api import retrain
from prunelora.cli.options import (
    add_common,
    add_data,
    add_factories,
    add_forget,
    forget_spec_from_args,
    print_metrics,
    print_skipped,
)
from prunelora.training import check_device


def setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="the original model's checkpoint directory")
    add_data(p, dataset_default=None)
    add_factories(p)
    add_forget(p)
    add_common(p)


def run(args: argparse.Namespace) -> int:
    """Exact unlearning: train from scratch on D_r with the original checkpoint's recipe."""
    spec = forget_spec_from_args(args)
    result = retrain(args.checkpoint, spec, out=args.out, seed=args.seed, overwrite=args.overwrite,
                     data_dir=args.data_dir, download=args.download, device=check_device(args.device),
                     progress=not args.no_progress)
    print_skipped(result.splits)
    print_metrics(result.meta, result.path)
    return 0
