"""Measure PruneLoRA on digits against retrain: budget (epochs) x BatchNorm recalibration.

Chooses and documents the digits presets' budgets and the `bn_recalibrate` default.
Run: .venv/bin/python benchmarks/digits_presets.py [--seeds 0 1 2]
Prints one row per (model, budget, bn_recalibrate): UA, RA, TA (mean over seeds), gap of RA to
retrain, and wall time as a fraction of retrain's.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import yaml

from prunelora.api import split_metrics, train
from prunelora.data import ForgetSpec, build_splits, load_dataset
from prunelora.methods import unlearn
from prunelora.presets import preset_path
from prunelora.training import TrainConfig

ORIGINALS = {
    "resnet8": ({}, TrainConfig(epochs=15, lr=0.05)),
    "vit-tiny": ({"width": 0.5, "depth": 3}, TrainConfig(epochs=60, optimizer="adamw", lr=3e-3,
                                                          weight_decay=0.05, warmup_fraction=0.1)),
}
PRESETS = {"resnet8": "prunelora-digits-resnet", "vit-tiny": "prunelora-digits-vit"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=float, nargs="+", default=[5, 15, 30])
    parser.add_argument("--models", nargs="+", default=list(ORIGINALS))
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    splits = build_splits(load_dataset("digits"), ForgetSpec.from_classes("3"))
    print(f"{'model':10s} {'epochs':>6s} {'bn_recal':>8s} {'UA':>6s} {'RA':>6s} {'TA':>6s} {'RA gap':>6s} {'time/retrain':>12s}")
    for name in args.models:
        kwargs, recipe = ORIGINALS[name]
        preset = {k: v for k, v in yaml.safe_load(preset_path(PRESETS[name]).read_text()).items() if k != "method"}
        rows: dict = {}
        retrain_ra, retrain_time = [], []
        for seed in args.seeds:
            recipe.seed = seed
            original = train("digits", name, recipe, model_kwargs=kwargs, progress=False)
            start = time.perf_counter()
            exact = unlearn(original.model, splits, "retrain", seed=seed, progress=False, original_meta=original.meta)
            retrain_time.append(time.perf_counter() - start)
            retrain_ra.append(split_metrics(exact.model, splits)["RA"])
            for epochs in args.epochs:
                for recal in (True, False):
                    cfg = dict(preset, epochs=epochs, bn_recalibrate=recal, seed=seed)
                    res = unlearn(original.model, splits, "prunelora", progress=False, **cfg)
                    m = split_metrics(res.model, splits)
                    rows.setdefault((epochs, recal), []).append(
                        (m["UA"], m["RA"], m["TA"], res.cost.wall_time_s))
        ra_ref, t_ref = statistics.mean(retrain_ra), statistics.mean(retrain_time)
        print(f"{name:10s} {'retrain':>6s} {'':>8s} {100.0:6.1f} {ra_ref:6.1f} {'':>6s} {'':>6s} {1.0:12.2f}")
        for (epochs, recal), vals in rows.items():
            ua, ra, ta, t = (statistics.mean(v) for v in zip(*vals, strict=True))
            print(f"{name:10s} {epochs:6g} {str(recal):>8s} {ua:6.1f} {ra:6.1f} {ta:6.1f} {ra - ra_ref:6.1f} {t / t_ref:12.2f}")


if __name__ == "__main__":
    main()
