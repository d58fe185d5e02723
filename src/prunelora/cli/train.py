"""`prunelora train`: an image classifier trained from scratch, saved as a checkpoint directory."""

from __future__ import annotations

import argparse

from prunelora.api import train
from prunelora.cli.options import (
    add_common,
    add_config_options,
    add_data,
    add_factories,
    config_from_args,
    print_metrics,
)
from prunelora.errors import InvalidInputError, shown
from prunelora.presets import load_yaml_text
from prunelora.training import TrainConfig, check_device


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
    # every field of the recipe but its seed (the command's --seed, below)
    add_config_options(p.add_argument_group("training recipe"), TrainConfig, exclude={"seed"})
    add_common(p)


def parse_kv(items: list[str] | None, flag: str) -> dict:
    """`key=value` pairs, values parsed as YAML scalars (`width=2` -> 2)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise InvalidInputError(f"{flag} {shown(item)} is not key=value")
        key, value = item.split("=", 1)
        # the one strict YAML reader: an alias cannot expand a short argument into gigabytes
        out[key.strip().replace("-", "_")] = load_yaml_text(value, f"{flag} {shown(item)}: the value")
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
