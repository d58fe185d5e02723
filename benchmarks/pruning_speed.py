"""Does pruning make the model smaller and faster? Original vs mask-pruned vs physically pruned.

For resnet20, resnet50 (3x32x32 input, 10 classes) and vit-tiny, at each pruning amount: parameters,
multiply-accumulates per image, and CPU inference throughput (batch 256 after a warm-up batch,
median of --repeats, best of --rounds round-robin rounds) as a ratio to the original measured in
the same run. Mask pruning zeroes
channels (same shape, same speed); physical pruning removes them (prunelora.pruning.physical).
ResNets prune every conv (the paper's recipe); vit-tiny the paper's last-block attention and MLP
(`--vit-scope all` prunes every block).

Then (unless --no-ta) the test accuracy on retained classes (TA) after PruneLoRA with each prune
mode, forgetting class 3 of Fashion-MNIST (digits when its files are absent). Kept cheap: a small
original trained a few epochs on a subset, adapters trained --ta-lora-epochs; TA says whether the
smaller model still classifies, not what a full recipe reaches.

Run:   .venv/bin/python benchmarks/pruning_speed.py [--models resnet20 resnet50 vit-tiny] [--no-ta]
Quick: .venv/bin/python benchmarks/pruning_speed.py --no-ta --models resnet20
Timings are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import time
from pathlib import Path

import torch
from torch import nn

from prunelora.data import ForgetSpec, build_splits, load_dataset
from prunelora.evaluation.evaluate import count_macs, inference_throughput
from prunelora.methods import unlearn
from prunelora.models import create_model
from prunelora.pruning import physical_prune, prune
from prunelora.training import TrainConfig, accuracy_on, fit

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
VIT_LAST_BLOCK = {"types": ("mha", "linear"), "pattern": r"blocks\.{last}\.(attn|mlp)"}  # prunelora-vit.yaml
VIT_LORA = {"lora_types": ("mha",), "lora_pattern": r"blocks\.{last}\.attn$", "lora_rank": 16, "lora_alpha": 32}
ORIGINAL_RECIPES = {  # small originals for the TA part
    "resnet": TrainConfig(epochs=3, lr=0.05),
    "vit": TrainConfig(epochs=3, optimizer="adamw", lr=3e-3, weight_decay=0.05, warmup_fraction=0.1),
}


def prune_selection(name: str, vit_scope: str) -> dict:
    if name.startswith("vit"):
        return dict(VIT_LAST_BLOCK) if vit_scope == "last" else {"types": ("mha", "linear"), "pattern": None}
    return {"types": ("conv",), "pattern": None}


def variants(model: nn.Module, name: str, amounts: list[float], vit_scope: str, sample: torch.Tensor):
    """(label, amount, model) for the original and each prune mode and amount."""
    selection = prune_selection(name, vit_scope)
    yield "original", 0.0, model
    for amount in amounts:
        masked = copy.deepcopy(model)
        prune(masked, amount, **selection, bake=True, example_inputs=sample)
        yield "mask", amount, masked
        physical = copy.deepcopy(model)
        physical_prune(physical, amount, **selection, example_inputs=sample)
        yield "physical", amount, physical


def speed_table(args) -> dict[tuple[str, str, float], dict]:
    """Throughput is measured round-robin over a model's variants, `--rounds` times, keeping each
    one's best round: background load then slows all variants alike instead of one of them."""
    rows = {}
    sample = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for name in args.models:
        torch.manual_seed(0)
        model = create_model(name, 10, 3, 32).eval()
        models = {(name, label, amount): variant
                  for label, amount, variant in variants(model, name, args.amounts, args.vit_scope, sample)}
        best = dict.fromkeys(models, 0.0)
        for _ in range(args.rounds):
            for key, variant in models.items():
                ips = inference_throughput(variant, sample, batch_size=args.batch_size, repeats=args.repeats,
                                           device="cpu")
                best[key] = max(best[key], ips)
        baseline = best[(name, "original", 0.0)]
        for key, variant in models.items():
            rows[key] = {
                "params": sum(p.numel() for p in variant.parameters()),
                "nonzero": sum(int((p != 0).sum()) for p in variant.parameters()),
                "macs": count_macs(variant, sample), "throughput": best[key], "ratio": best[key] / baseline,
            }
    return rows


def ta_table(args) -> tuple[str, dict[tuple[str, str, float], float]]:
    dataset = args.ta_dataset
    if dataset == "auto":
        dataset = "fashion-mnist" if FASHION_DIR.is_dir() else "digits"
    bundle = load_dataset(dataset)
    splits = build_splits(bundle, ForgetSpec.from_classes(3), val_fraction=0.1, seed=0)
    gen = torch.Generator().manual_seed(0)
    train_set = splits.retain.concat(splits.forget)
    train_set = train_set.subset(torch.randperm(len(train_set), generator=gen)[: args.ta_train_size])
    small = dataclasses.replace(
        splits, retain=splits.retain.subset(torch.randperm(len(splits.retain), generator=gen)[: args.ta_train_size]))
    out = {}
    for name in args.models:
        kind = "vit" if name.startswith("vit") else "resnet"
        torch.manual_seed(0)
        original = create_model(name, bundle.num_classes, bundle.in_channels, bundle.image_size)
        fit(original, train_set, dataclasses.replace(ORIGINAL_RECIPES[kind], epochs=args.ta_epochs), progress=False)
        out[(name, "original", 0.0)] = accuracy_on(original, splits.test_retain)
        selection = prune_selection(name, args.vit_scope)
        options = {"prune_types": selection["types"], "prune_pattern": selection["pattern"],
                   "epochs": args.ta_lora_epochs, **(VIT_LORA if kind == "vit" else {})}
        for amount in args.amounts:
            for mode in ("mask", "physical"):
                result = unlearn(original, small, "prunelora", progress=False, prune_mode=mode, prune_amount=amount,
                                 **options)
                out[(name, mode, amount)] = accuracy_on(result.model, splits.test_retain)
    return dataset, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet50", "vit-tiny"])
    parser.add_argument("--amounts", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    parser.add_argument("--vit-scope", choices=("last", "all"), default="last",
                        help="prune the last block (the paper's ViT recipe) or every block")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="timed batches per model and round (median)")
    parser.add_argument("--rounds", type=int, default=3, help="round-robin rounds over the variants (best)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-ta", action="store_true", help="skip the PruneLoRA test-accuracy part")
    parser.add_argument("--ta-dataset", choices=("auto", "fashion-mnist", "digits"), default="auto")
    parser.add_argument("--ta-train-size", type=int, default=5000, help="training images for the TA part")
    parser.add_argument("--ta-epochs", type=float, default=3, help="epochs of the small original")
    parser.add_argument("--ta-lora-epochs", type=float, default=2, help="PruneLoRA epochs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads; "
          f"batch {args.batch_size}, median of {args.repeats}, best of {args.rounds} rounds")
    start = time.perf_counter()
    speed = speed_table(args)
    ta_dataset, ta = (None, {}) if args.no_ta else ta_table(args)
    header = f"{'model':10s} {'variant':9s} {'amount':>6s} {'params':>10s} {'nonzero':>10s} {'MMACs':>9s} " \
             f"{'img/s':>8s} {'speed':>6s}"
    if ta:
        header += f" {'TA ' + ta_dataset:>16s}"
    print(header)
    for (name, label, amount), row in speed.items():
        line = (f"{name:10s} {label:9s} {amount:6.0%} {row['params']:10,d} {row['nonzero']:10,d} "
                f"{row['macs'] / 1e6:9.2f} {row['throughput']:8.1f} {row['ratio']:5.2f}x")
        if ta:
            line += f" {ta[(name, label, amount)]:16.2f}"
        print(line)
    print(f"# {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
