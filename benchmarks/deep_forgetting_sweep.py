"""Deep-forgetting sweep: `prunelora-deep`'s subspace rank x strength x repair on Fashion-MNIST
(ResNet-8 and the ViT; one class no benchmark config uses), against the retrain, at the outputs
and in the features.

For each model: train the original and the retrain (the reference) once, then run `prunelora-deep`
with each rank, strength and repair (`subspace`: kept out of the forget subspace; `free`: the same
LoRA unconstrained, the ablation; `none`: the edit alone) and evaluate it with the probe, the class
residue and CKA to the original and the retrain (relearning off); writes `sweep.csv` and
`sweep.md` to --out.

Run:   .venv/bin/python benchmarks/deep_forgetting_sweep.py --out benchmarks/results/deep-forgetting
Digits: the same with --dataset digits (whole originals; small test set, noisy probe)
Quick: .venv/bin/python benchmarks/deep_forgetting_sweep.py --quick --out /tmp/deep-sweep   (a smoke test
       on digits: 1-epoch originals, 2-step repairs; its numbers mean nothing)
Wall times are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

from prunelora.api import apply_train_subset, train
from prunelora.data import ForgetSpec, build_splits, load_dataset
from prunelora.evaluation.evaluate import evaluate
from prunelora.methods import get_method, unlearn
from prunelora.training import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forget_aware_sweep import write_tables  # noqa: E402

MODELS = {  # name -> (registry model, model kwargs, original recipe); the committed configs' recipes
    "resnet8": ("resnet8", {}, {"epochs": 30, "optimizer": "sgd", "lr": 0.1}),
    "vit": ("vit-tiny", {"width": 0.5, "depth": 4}, {"epochs": 30, "optimizer": "adamw", "lr": 0.001}),
}
REPAIRS = ("subspace", "free", "none")
METRICS = ("UA", "RA", "TA", "MIA", "Avg.Gap", "Probe-FA", "Probe-TA", "Probe.Gap", "Probe-Residue", "Residue.Gap",
           "CKA-original-forget", "CKA-retrain-forget", "CKA-original-retain", "CKA-retrain-retain")
COLUMNS = ["model", "class", "rank", "strength", "repair", *METRICS, "wall_time_s"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--forget-class", type=int, default=7,
                        help="the class to forget (not one the benchmark configs use: they use 3 and 8)")
    parser.add_argument("--ranks", nargs="+", type=int, default=[1, 3, 8])
    parser.add_argument("--strengths", nargs="+", type=float, default=[0.5, 1.0])
    parser.add_argument("--repairs", nargs="+", default=list(REPAIRS), choices=REPAIRS)
    parser.add_argument("--epochs", type=float, default=2, help="epochs of LoRA repair")
    parser.add_argument("--train-subset", type=int, default=10000, help="stratified Fashion-MNIST training images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/deep-forgetting"))
    parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "digits"],
                        help="digits: the embedded 8x8 digits, whole (a look at the idea on any machine; its "
                             "probe scores about 22 test images of the class, so its figures move by ~10 points)")
    parser.add_argument("--quick", action="store_true", help="digits, 1-epoch originals, 2-step repairs (a smoke test)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> list[dict]:
    torch.manual_seed(args.seed)
    dataset = "digits" if args.quick else args.dataset
    subset = None if dataset == "digits" else args.train_subset
    bundle = apply_train_subset(load_dataset(dataset), None if subset is None else {"size": subset, "seed": 0})
    spec = ForgetSpec(kind="class", classes=(args.forget_class,), seed=args.seed)
    splits = build_splits(bundle, spec, val_fraction=0.1, seed=0)
    judge = {"attacks": ("confidence-svc",), "throughput": False, "macs": False, "relearn": None, "device": "cpu"}
    rows = []
    for model_name in args.models:
        arch, kwargs, recipe = MODELS[model_name]
        if args.quick:
            kwargs = {"width": 0.25, "depth": 2} if arch.startswith("vit") else {}
            recipe = {**recipe, "epochs": 1}
        recipe = TrainConfig.from_dict({**recipe, "seed": args.seed})
        original = train(dataset, arch, recipe, model_kwargs=kwargs, progress=False, device="cpu",
                         train_subset=subset, subset_seed=0)
        retrain = train(dataset, arch, recipe, model_kwargs=kwargs, progress=False, device="cpu", forget=spec,
                        train_subset=subset, subset_seed=0)
        reference = evaluate(retrain.model, splits, original_model=original.model, **judge).metrics
        rows.append(_row(model_name, args.forget_class, "retrain", float("nan"), float("nan"), reference,
                         retrain.meta.get("cost", {}).get("wall_time_s", float("nan"))))
        for rank, strength, repair in itertools.product(args.ranks, args.strengths, args.repairs):
            budget = {"steps": 2} if args.quick else {"epochs": args.epochs}
            config = get_method("prunelora-deep").make_config(subspace_rank=rank, strength=strength, repair=repair,
                                                              seed=args.seed, **budget)
            result = unlearn(original.model, splits, "prunelora-deep", config, device="cpu", progress=False,
                             original_meta=original.meta)
            metrics = evaluate(result.model, splits, reference=reference, original_model=original.model,
                               reference_model=retrain.model, **judge).metrics
            rows.append(_row(model_name, args.forget_class, repair, rank, strength, metrics,
                             result.cost.wall_time_s))
            print(" ".join(f"{k}={v}" if isinstance(v, str) else f"{k}={v:.3g}" for k, v in rows[-1].items()),
                  flush=True)
    return rows


def _row(model: str, forget_class: int, repair: str, rank: float, strength: float, metrics: dict,
         wall: float) -> dict:
    values = {k: float(metrics.get(k, float("nan"))) for k in METRICS}
    return {"model": model, "class": forget_class, "rank": rank, "strength": strength, "repair": repair, **values,
            "wall_time_s": float(wall)}


def write(rows: list[dict], out: Path) -> dict[str, Path]:
    return write_tables(rows, COLUMNS, out)  # sweep.csv and sweep.md, as the forget-aware sweep writes them


def main(argv: list[str] | None = None) -> tuple[list[dict], dict[str, Path]]:
    args = parse(argv)
    rows = run(args)
    paths = write(rows, args.out)
    print(paths["md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return rows, paths


if __name__ == "__main__":
    main()
