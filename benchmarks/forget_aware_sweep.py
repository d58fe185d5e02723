"""Forget-aware pruning sweep: criterion x amount on Fashion-MNIST (ResNet-8 and the ViT; class-wise
and random-10% forgetting), against the retrain.

For each model and scenario: train the original and the retrain (the reference) once, then run
PruneLoRA with each criterion and amount (the forget-aware preset's repair otherwise) and evaluate
it; writes `sweep.csv`, `sweep.md` (UA, RA, TA, MIA, Avg.Gap, Probe-FA, wall time, chosen amount)
and `sweep.png` (Avg.Gap and Probe-FA against the method's wall time) to --out.

Run:   .venv/bin/python benchmarks/forget_aware_sweep.py --out benchmarks/results/forget-aware
One model or criterion at a time: add --merge to keep the rows of --out's sweep.csv not measured again.
Quick: .venv/bin/python benchmarks/forget_aware_sweep.py --quick --out /tmp/sweep   (a smoke test on
       digits: 1-epoch originals, 2-step repairs; its numbers mean nothing)
Wall times are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from prunelora.api import apply_train_subset, train
from prunelora.data import ForgetSpec, build_splits, load_dataset
from prunelora.evaluation.evaluate import evaluate
from prunelora.methods import get_method, unlearn
from prunelora.presets import preset_path
from prunelora.pruning.criteria import CRITERIA
from prunelora.training import TrainConfig

MODELS = {  # name -> (registry model, model kwargs, original recipe, forget-aware preset)
    "resnet8": ("resnet8", {}, {"epochs": 30, "optimizer": "sgd", "lr": 0.1}, "prunelora-forget-aware-resnet"),
    "vit": ("vit-tiny", {"width": 0.5, "depth": 4}, {"epochs": 30, "optimizer": "adamw", "lr": 0.001},
            "prunelora-forget-aware-vit"),
}
SCENARIOS = {"class": ForgetSpec(kind="class", classes=(7,)), "random10": ForgetSpec(kind="fraction", fraction=0.1)}
COLUMNS = ["model", "scenario", "criterion", "amount", "chosen_amount", "UA", "RA", "TA", "MIA", "Avg.Gap",
           "Probe-FA", "wall_time_s"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--criteria", nargs="+", default=list(CRITERIA), choices=CRITERIA)
    parser.add_argument("--amounts", nargs="+", type=float, default=[0.03, 0.06, 0.1, 0.5])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--train-subset", type=int, default=10000, help="stratified Fashion-MNIST training images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/forget-aware"))
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of --out's sweep.csv that this run does not measure again (other "
                             "models or criteria)")
    parser.add_argument("--quick", action="store_true",
                        help="digits, 1-epoch originals, 2-step repairs (a smoke test)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> list[dict]:
    torch.manual_seed(args.seed)
    dataset = "digits" if args.quick else "fashion-mnist"
    bundle = load_dataset(dataset)
    subset = None if args.quick else args.train_subset
    bundle = apply_train_subset(bundle, None if subset is None else {"size": subset, "seed": 0})
    attacks = ("confidence-svc",)  # the MIA of Avg.Gap
    rows = []
    for model_name in args.models:
        arch, kwargs, recipe, preset = MODELS[model_name]
        if args.quick:
            kwargs = {"width": 0.25, "depth": 2} if arch.startswith("vit") else {}
            recipe = {**recipe, "epochs": 1}
        recipe = TrainConfig.from_dict({**recipe, "seed": args.seed})
        original = train(dataset, arch, recipe, model_kwargs=kwargs, progress=False, device="cpu",
                         train_subset=subset, subset_seed=0)
        options = yaml.safe_load(preset_path(preset).read_text())
        options.pop("method")
        for scenario in args.scenarios:
            spec = replace(SCENARIOS[scenario], seed=args.seed)
            splits = build_splits(bundle, spec, val_fraction=0.1, seed=0)
            retrain = train(dataset, arch, recipe, model_kwargs=kwargs, progress=False, device="cpu", forget=spec,
                            train_subset=subset, subset_seed=0)
            reference = evaluate(retrain.model, splits, attacks=attacks, throughput=False, macs=False, relearn=None,
                                 device="cpu").metrics
            rows.append(_row(model_name, scenario, "retrain", float("nan"), float("nan"), reference,
                             retrain.meta.get("cost", {}).get("wall_time_s", float("nan"))))
            for criterion in args.criteria:
                for amount in args.amounts:
                    config = dict(options, prune_criterion=criterion, prune_amount=amount, seed=args.seed)
                    if args.quick:
                        config = {k: v for k, v in config.items() if k != "epochs"} | {"steps": 2}
                    result = unlearn(original.model, splits, "prunelora", get_method("prunelora").make_config(**config),
                                     device="cpu", progress=False, original_meta=original.meta)
                    metrics = evaluate(result.model, splits, reference=reference, attacks=attacks, throughput=False,
                                       macs=False, relearn=None, device="cpu").metrics
                    rows.append(_row(model_name, scenario, criterion, amount, result.record["pruning"]["amount"],
                                     metrics, result.record["cost"]["wall_time_s"]))
    return rows


def _row(model: str, scenario: str, criterion: str, amount: float, chosen: float, metrics: dict,
         wall: float) -> dict:
    values = {k: float(metrics.get(k, float("nan"))) for k in ("UA", "RA", "TA", "MIA", "Avg.Gap", "Probe-FA")}
    return {"model": model, "scenario": scenario, "criterion": criterion, "amount": amount, "chosen_amount": chosen,
            **values, "wall_time_s": float(wall)}


def write(rows: list[dict], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "sweep.csv", "md": out / "sweep.md", "png": out / "sweep.png"}
    with paths["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(v if isinstance(v, str) else f"{v:.3g}" for v in row.values()) + " |")
    paths["md"].write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key in zip(axes, ("Avg.Gap", "Probe-FA"), strict=True):
        for (model, scenario, criterion) in sorted({(r["model"], r["scenario"], r["criterion"]) for r in rows}):
            points = [r for r in rows if (r["model"], r["scenario"], r["criterion"]) == (model, scenario, criterion)]
            ax.plot([r["wall_time_s"] for r in points], [r[key] for r in points],
                    "*" if criterion == "retrain" else "o-", label=f"{model} {scenario} {criterion}")
        ax.set_xlabel("wall time of the method (s)")
        ax.set_ylabel(key + (" (lower is better)" if key == "Avg.Gap" else " (%; retrain's is the target)"))
        ax.set_xscale("log")
    axes[1].legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=120)
    plt.close(fig)
    return paths


def read_rows(path: Path) -> list[dict]:
    """The rows of an earlier sweep.csv, with numbers parsed back."""
    with path.open(newline="") as f:
        return [{k: v if k in ("model", "scenario", "criterion") else float(v) for k, v in row.items()}
                for row in csv.DictReader(f)]


def merge(rows: list[dict], path: Path, models: list[str], criteria: list[str] | None = None) -> list[dict]:
    """The earlier rows of `path` that this run did not measure again, then `rows`: a row is
    replaced when its model is in `models` and its criterion in `criteria` (every criterion when
    None) or it is the retrain (each run measures the retrain again)."""
    if not path.exists():
        return rows

    def rerun(row: dict) -> bool:
        return row["model"] in models and (criteria is None or row["criterion"] in {*criteria, "retrain"})

    return [r for r in read_rows(path) if not rerun(r)] + rows


def main(argv: list[str] | None = None) -> tuple[list[dict], dict[str, Path]]:
    args = parse(argv)
    rows = run(args)
    if args.merge:
        rows = merge(rows, args.out / "sweep.csv", args.models, args.criteria)
    paths = write(rows, args.out)
    print(paths["md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return rows, paths


if __name__ == "__main__":
    main()
