"""`prunelora train`: an image classifier trained from scratch, saved as a checkpoint directory."""

from __future__ import annotations

import argparse

import yaml

from prunelora.api import train
from prunelora.cli.options import (
    add_common,
    add_data,
    add_factories,
    config_from_args,
    print_metrics,
)
from prunelora.errors import InvalidInputError
from prunelora.training import TrainConfig, check_device
from prunelora.training.distributed import MIXED_PRECISION
from prunelora.training.loop import OPTIMIZERS, SCHEDULES


def setup(p: argparse.ArgumentParser) -> None:
    add_data(p)
    p.add_argument("--model", default="resnet20", help="model name (see `prunelora models`) (default: %(default)s)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="model argument, e.g. width=2 (repeatable)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of train held out for validation")
    p.add_argument("--train-subset", type=int, default=None, metavar="N",
                   help="train on N images of the train set, stratified by class (default: all)")
    p.add_argument("--subset-seed", type=int, default=0, help="seed choosing the --train-subset (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=32, metavar="PX",
                   help="the side imagefolder:PATH images are resized to (default: %(default)s)")
    add_factories(p)
    add_recipe(p)
    add_common(p)


def add_recipe(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training recipe")
    g.add_argument("--epochs", type=float, default=30, help="training epochs (default: %(default)s)")
    g.add_argument("--steps", type=int, default=None, help="optimizer steps; overrides --epochs")
    g.add_argument("--batch-size", type=int, default=128, help="(default: %(default)s)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="(default: %(default)s)")
    g.add_argument("--lr", type=float, default=0.05, help="peak learning rate (default: %(default)s)")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: %(default)s)")
    g.add_argument("--weight-decay", type=float, default=5e-4, help="(default: %(default)s)")
    g.add_argument("--schedule", choices=SCHEDULES, default="cosine", help="(default: %(default)s)")
    g.add_argument("--warmup-fraction", type=float, default=0.0, help="share of steps for linear warm-up")
    g.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm to this value")
    g.add_argument("--label-smoothing", type=float, default=0.0, help="(default: %(default)s)")
    g.add_argument("--augment", action="store_true", help="random crop + flip (32x32 colour data)")
    g.add_argument("--mixed-precision", choices=MIXED_PRECISION, default="no",
                   help="bf16 or fp16 autocast on a GPU; the CPU always trains in fp32 (default: %(default)s)")


def parse_kv(items: list[str] | None, flag: str) -> dict:
    """`key=value` pairs, values parsed as YAML scalars (`width=2` -> 2)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise InvalidInputError(f"{flag} {item!r} is not key=value")
        key, value = item.split("=", 1)
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except (yaml.YAMLError, RecursionError):
            raise InvalidInputError(f"{flag} {item!r}: the value is not a YAML scalar") from None
    return out


def run(args: argparse.Namespace) -> int:
    """Train an image classifier from scratch and save it as a checkpoint directory."""
    result = train(args.dataset, args.model, config_from_args(TrainConfig, args),
                   model_kwargs=parse_kv(args.model_arg, "--model-arg"), data_dir=args.data_dir,
                   download=args.download, val_fraction=args.val_fraction, train_subset=args.train_subset,
                   subset_seed=args.subset_seed, image_size=args.image_size, out=args.out, overwrite=args.overwrite,
                   device=check_device(args.device), progress=not args.no_progress)
    print_metrics(result.meta, result.path)
    return 0
