"""`prunelora import`: weights you trained elsewhere, made a checkpoint as `train` writes one.

(The module is named after its command; `import` being a keyword, the command table loads it by
name with importlib.)
"""

from __future__ import annotations

import argparse

from prunelora.cli.options import (
    add_common,
    add_config_options,
    add_data,
    add_factories,
    config_from_args,
    held_out_line,
    parse_kv,
)
from prunelora.errors import InvalidInputError
from prunelora.importing import import_model
from prunelora.training import TrainConfig, check_device


def setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, metavar="FILE",
                   help="your trained weights: a state dict in .safetensors, or .pt/.pth/.bin read with "
                        "torch.load(weights_only=True), so no pickled code runs")
    p.add_argument("--model", default=None,
                   help="the registered model (see `prunelora models`) the weights are the state dict of; "
                        "or --model-factory")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                   help="model argument, e.g. width=2 (repeatable)")
    p.add_argument("--dataset", default=None,
                   help="the data it was trained on: a dataset name (see `prunelora datasets`) or "
                        "imagefolder:PATH; or --dataset-factory")
    add_data(p, dataset_default=None)
    p.add_argument("--image-size", type=int, default=32, metavar="PX",
                   help="the side imagefolder:PATH images are resized to (default: %(default)s)")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="share of the training records to hold out for validation: records your model never "
                        "trained on, never forgotten (default: 0, none held out, as a model trained elsewhere "
                        "usually saw the whole training set)")
    p.add_argument("--val-indices", default=None, metavar="FILE",
                   help="instead of --val-fraction: the training indices your model never trained on, one per line")
    add_factories(p)
    add_config_options(p.add_argument_group("training recipe (what a retrain repeats: ideally the one your weights "
                                            "were trained with)"), TrainConfig, exclude={"seed"})
    add_common(p)


def run(args: argparse.Namespace) -> int:
    """Bring in a model trained elsewhere: its weights, model and data made a checkpoint, as train writes one."""
    if args.model is None:
        raise InvalidInputError("say which model the weights are for: --model NAME or --model-factory FILE.py:FUNC")
    if args.dataset is None:
        raise InvalidInputError("say which data the model was trained on: --dataset NAME or "
                                "--dataset-factory FILE.py:FUNC")
    result = import_model(args.weights, args.model, args.dataset, recipe=config_from_args(TrainConfig, args),
                          model_kwargs=parse_kv(args.model_arg, "--model-arg"), val_fraction=args.val_fraction,
                          val_indices=args.val_indices, data_dir=args.data_dir, download=args.download,
                          image_size=args.image_size, out=args.out, overwrite=args.overwrite,
                          device=check_device(args.device))
    test = result.meta.metrics["test"]
    print(f"imported: the weights of {args.weights} load into {result.meta.model.name} (strictly: every tensor, "
          f"every shape); test accuracy {test:.2f} on {len(result.splits.test_retain)} images -> {result.path}")
    print(held_out_line(result.splits))
    return 0
