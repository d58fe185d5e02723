"""How long a ResNet-20 needs to reach >= 95% test accuracy on digits, on this machine.

Trains from scratch with the CLI's default recipe (SGD, lr 0.05, momentum 0.9, cosine, batch 128)
for increasing epoch budgets and prints wall time (training alone) and test accuracy for each.
Run: .venv/bin/python benchmarks/digits_time_to_accuracy.py
"""

from __future__ import annotations

import argparse
import os

import torch

from prunelora.api import train
from prunelora.training import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--epochs", type=int, nargs="+", default=[2, 4, 6, 8, 10, 15, 20, 30])
    parser.add_argument("--target", type=float, default=95.0)
    args = parser.parse_args()
    print(f"{args.model} on digits; {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}")
    print(f"{'epochs':>6s} {'train s':>8s} {'test %':>7s}")
    first = None
    for epochs in args.epochs:
        result = train("digits", args.model, TrainConfig(epochs=epochs, seed=0), progress=False)
        acc, wall = result.meta["metrics"]["test"], result.meta["cost"]["wall_time_s"]
        print(f"{epochs:6d} {wall:8.1f} {acc:7.2f}")
        if first is None and acc >= args.target:
            first = (epochs, wall, acc)
    if first:
        print(f"first budget reaching >= {args.target}%: {first[0]} epochs, {first[1]:.1f} s ({first[2]:.2f}%)")
    else:
        print(f"no budget reached {args.target}%")


if __name__ == "__main__":
    main()
