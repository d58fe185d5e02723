"""Deep-forgetting sweep: `prunelora-deep`'s recipes (subspace rank, strength, repair, forget objective)
on Fashion-MNIST (ResNet-8 and the ViT; a class no benchmark config uses, and a random 10% drawn
with another seed than the configs'), against the retrain, at the outputs and in the features.

For each model: train the original once and, per scenario, the retrain (the reference), then run
each named variant of `prunelora-deep` (VARIANTS, or --variants NAME...) and each peer (PEERS:
the strongest other methods at the benchmark's budgets, for scale) and evaluate it with the probe,
the class residue and CKA to the original and the retrain (relearning off); writes `sweep.csv`
and `sweep.md` to --out (rewritten after every row), one row per model x scenario x variant.

Run:   .venv/bin/python benchmarks/deep_forgetting_sweep.py --out benchmarks/results/deep-forgetting
Digits: the same with --dataset digits (whole originals; small test set, noisy probe)
Quick: .venv/bin/python benchmarks/deep_forgetting_sweep.py --quick --out /tmp/deep-sweep   (a smoke test
       on digits: 1-epoch originals, 2-step repairs; its numbers mean nothing)
Every round in one table: .venv/bin/python benchmarks/deep_forgetting_sweep.py --summarize benchmarks/results/deep-forgetting
Wall times are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from pathlib import Path

import torch

from prunelora.api import RunResult, apply_train_subset, train
from prunelora.checkpoint import load_checkpoint, run_id
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
# prunelora-deep's recipes: name -> options beside the defaults (rank 3, strength 1, the repair kept
# out of the subspace, no forget objective, 2 epochs)
VARIANTS = {
    "deep": {},
    "deep-free": {"repair": "free"},
    "deep-edit-only": {"repair": "none"},
    "deep-rank8": {"subspace_rank": 8},
    "deep-contract": {"forget_objective": "contract"},
    "deep-contract-0.3": {"forget_objective": "contract", "forget_weight": 0.3},
    "deep-rank8-contract": {"subspace_rank": 8, "forget_objective": "contract"},
    "deep-rl": {"forget_objective": "random-label"},
    "deep-rank8-rl": {"subspace_rank": 8, "forget_objective": "random-label"},
    "deep-rl-no-edit": {"strength": 0.0, "forget_objective": "random-label"},
    # round 2, after round 1 on the ResNet showed the edit at strength 1 costing RA that 2 epochs of
    # repair at lr 1e-3 do not give back: half the strength, a faster repair, and both
    "deep-s0.5": {"strength": 0.5},
    "deep-lr3": {"lr": 0.003},
    "deep-s0.5-lr3": {"strength": 0.5, "lr": 0.003},
    "deep-lr3-contract": {"lr": 0.003, "forget_objective": "contract"},
    "deep-lr3-rl": {"lr": 0.003, "forget_objective": "random-label"},
    "deep-s0.5-lr3-rl": {"strength": 0.5, "lr": 0.003, "forget_objective": "random-label"},
    "deep-lr3-rl-no-edit": {"strength": 0.0, "lr": 0.003, "forget_objective": "random-label"},
    # round 3, after round 2: strength 1 removes the class from the features (Probe.Gap ~1) but
    # costs RA, strength 0.5 keeps RA and the class; so: a faster or wider repair at strength 1,
    # and the strength between
    "deep-lr10": {"lr": 0.01},
    "deep-lr3-r32": {"lr": 0.003, "lora_rank": 32, "lora_alpha": 64},
    "deep-s0.75-lr3": {"strength": 0.75, "lr": 0.003},
    "deep-lr10-r32": {"lr": 0.01, "lora_rank": 32, "lora_alpha": 64},
    # round 4, after round 3: neither a faster nor a wider repair gets RA above ~92 at strength 1, so
    # edit less where features are generic (early layers: linear depth scaling), or fewer directions
    "deep-lr3-linear": {"lr": 0.003, "depth_scaling": "linear"},
    "deep-lr3-rank1": {"lr": 0.003, "subspace_rank": 1},
    "deep-lr3-linear-rank1": {"lr": 0.003, "subspace_rank": 1, "depth_scaling": "linear"},
    "deep-lr3-ep3": {"lr": 0.003, "epochs": 3},
    # round 5, after round 4: RA comes back when early layers are spared, and then so does the class;
    # a full fine-tune (the calibration's) restores RA where LoRA alone does not: let the repair also
    # train the normalisation layers and biases
    "deep-lr3-norms": {"lr": 0.003, "train_norms": True},
    "deep-s0.75-lr3-norms": {"strength": 0.75, "lr": 0.003, "train_norms": True},
    "deep-lr3-norms-contract": {"lr": 0.003, "train_norms": True, "forget_objective": "contract"},
}
PEERS = {"random-label": {"epochs": 2}, "opc": {"epochs": 2}}  # the benchmark configs' budgets
METRICS = ("UA", "RA", "TA", "MIA", "Avg.Gap", "Probe-FA", "Probe-TA", "Probe.Gap", "Probe-Residue", "Residue.Gap",
           "CKA-original-forget", "CKA-retrain-forget", "CKA-original-retain", "CKA-retrain-retain")
COLUMNS = ["model", "scenario", "variant", *METRICS, "wall_time_s"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--forget-class", type=int, default=4,
                        help="the class to forget (not one the benchmark configs use: they use 3 and 8)")
    parser.add_argument("--scenarios", nargs="+", default=["class", "random10"], choices=["class", "random10"],
                        help="class: --forget-class; random10: a random 10%% of the training set (--random-seed)")
    parser.add_argument("--random-seed", type=int, default=1,
                        help="the random 10%%'s draw (the benchmark configs use 0)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS))
    parser.add_argument("--epochs", type=float, default=2, help="epochs of LoRA repair")
    parser.add_argument("--train-subset", type=int, default=10000, help="stratified Fashion-MNIST training images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/deep-forgetting"))
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep the originals and retrains here and reuse them on a later run (e.g. to add "
                             "variants); default: none kept")
    parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "digits"],
                        help="digits: the embedded 8x8 digits, whole (a look at the idea on any machine; its "
                             "probe scores about 22 test images of the class, so its figures move by ~10 points)")
    parser.add_argument("--quick", action="store_true", help="digits, 1-epoch originals, 2-step repairs (a smoke test)")
    return parser.parse_args(argv)


def _spec(scenario: str, args: argparse.Namespace) -> ForgetSpec:
    if scenario == "class":
        return ForgetSpec(kind="class", classes=(args.forget_class,), seed=args.seed)
    return ForgetSpec(kind="fraction", fraction=0.1, seed=args.random_seed)


def run(args: argparse.Namespace) -> list[dict]:
    torch.manual_seed(args.seed)
    dataset = "digits" if args.quick else args.dataset
    subset = None if dataset == "digits" else args.train_subset
    bundle = apply_train_subset(load_dataset(dataset), None if subset is None else {"size": subset, "seed": 0})
    judge = {"attacks": ("confidence-svc",), "throughput": False, "macs": False, "relearn": None, "device": "cpu"}
    budget = {"steps": 2} if args.quick else {"epochs": args.epochs}
    rows = []
    for model_name in args.models:
        arch, kwargs, recipe = MODELS[model_name]
        if args.quick:
            kwargs = {"width": 0.25, "depth": 2} if arch.startswith("vit") else {}
            recipe = {**recipe, "epochs": 1}
        recipe = TrainConfig.from_dict({**recipe, "seed": args.seed})
        tag = f"{dataset}-{model_name}-seed{args.seed}" + ("-quick" if args.quick else "")
        original = _trained(args.cache, f"{tag}-original", dataset, arch, recipe, model_kwargs=kwargs,
                            train_subset=subset)
        for scenario in args.scenarios:
            spec = _spec(scenario, args)
            name = f"class{args.forget_class}" if scenario == "class" else f"random10-seed{args.random_seed}"
            splits = build_splits(bundle, spec, val_fraction=0.1, seed=0)
            retrain = _trained(args.cache, f"{tag}-retrain-{name}", dataset, arch, recipe, model_kwargs=kwargs,
                               train_subset=subset, forget=spec)
            reference = evaluate(retrain.model, splits, original_model=original.model, **judge).metrics
            rows.append(_row(model_name, name, "retrain", reference,
                             retrain.meta.get("cost", {}).get("wall_time_s", float("nan"))))
            runs = [("prunelora-deep", variant, VARIANTS[variant]) for variant in args.variants]
            runs += [(peer, peer, PEERS[peer]) for peer in args.peers]
            for method, variant, options in runs:
                options = {**budget, **options} if method == "prunelora-deep" else options  # a variant's own epochs win
                if args.quick:
                    options = {**options, **budget}
                config = get_method(method).make_config(**options, seed=args.seed)
                result = unlearn(original.model, splits, method, config, device="cpu", progress=False,
                                 original_meta=original.meta)
                metrics = evaluate(result.model, splits, reference=reference, original_model=original.model,
                                   reference_model=retrain.model, **judge).metrics
                rows.append(_row(model_name, name, variant, metrics, result.cost.wall_time_s))
                write(rows, args.out)  # after every row: a stopped sweep keeps what it measured
                print(" ".join(f"{k}={v}" if isinstance(v, str) else f"{k}={v:.3g}" for k, v in rows[-1].items()),
                      flush=True)
    return rows


def _trained(cache: Path | None, name: str, dataset: str, arch: str, recipe: TrainConfig, **options) -> RunResult:
    """A trained model: from the cache when an earlier run saved this very run there, else trained
    (and saved there, when a cache is given). The folder's name ends with a hash of everything that
    defines the run (dataset, model and its options, recipe, train subset, forget set), so a changed
    recipe or subset is never mistaken for a cached one: it trains into a folder of its own."""
    key = run_id({"dataset": dataset, "arch": arch, "recipe": dataclasses.asdict(recipe), **options})[:8]
    folder = None if cache is None else cache / f"{name}-{key}"
    if folder is not None and (folder / "meta.json").is_file():
        model, meta = load_checkpoint(folder)
        return RunResult(model.eval(), meta, folder)
    return train(dataset, arch, recipe, progress=False, device="cpu", subset_seed=0, out=folder, **options)


def _row(model: str, scenario: str, variant: str, metrics: dict, wall: float) -> dict:
    values = {k: float(metrics.get(k, float("nan"))) for k in METRICS}
    return {"model": model, "scenario": scenario, "variant": variant, **values, "wall_time_s": float(wall)}


def write(rows: list[dict], out: Path) -> dict[str, Path]:
    return write_tables(rows, COLUMNS, out)  # sweep.csv and sweep.md, as the forget-aware sweep writes them


SUMMARY = ("UA", "RA", "TA", "Avg.Gap", "Probe-FA", "Probe.Gap", "Residue.Gap", "CKA-original-forget",
           "CKA-retrain-forget", "wall_time_s")


def summarize(root: Path) -> str:
    """One markdown table of every `sweep.csv` under `root` (each round of the sweep wrote its own
    folder): one row per dataset folder x model x scenario x variant, the first measured (a cached
    retrain evaluates the same in every round), ordered by model and scenario."""
    seen: dict[tuple, dict] = {}
    for path in sorted(root.rglob("sweep.csv")):
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                group = "digits" if any(part.startswith("digits") for part in path.parts[len(root.parts):]) else "fashion-mnist"
                seen.setdefault((group, row["model"], row["scenario"], row["variant"]), {**row, "round": path.parent.name})
    order = sorted(seen, key=lambda k: (k[0], k[1], k[2], k[3] != "retrain"))
    head = ["data", "model", "scenario", "variant", *SUMMARY, "folder"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in order:
        row = seen[key]
        values = [f"{float(row[k]):.3g}" if row.get(k) not in (None, "", "nan") else "—" for k in SUMMARY]
        lines.append("| " + " | ".join([*key, *values, row["round"]]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> tuple[list[dict], dict[str, Path]]:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--summarize"]:  # every round's table in one: --summarize DIR writes DIR/summary.md
        root = Path(argv[1])
        (root / "summary.md").write_text(summarize(root))
        print((root / "summary.md").read_text())
        return [], {"md": root / "summary.md"}
    args = parse(argv)
    rows = run(args)
    paths = write(rows, args.out)
    print(paths["md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return rows, paths


if __name__ == "__main__":
    main()
