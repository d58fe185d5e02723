"""Forget-aware pruning sweep: criterion x amount on Fashion-MNIST (ResNet-8 and the ViT; class-wise
and random-10% forgetting), against the retrain.

For each model and scenario: train the original and the retrain (the reference) once, then run
PruneLoRA with each criterion and amount (the forget-aware preset's repair otherwise) and evaluate
it; writes `sweep.csv`, `sweep.md` (UA, RA, TA, MIA, Avg.Gap, Probe-FA, wall time, chosen amount)
and `sweep.png` (Avg.Gap and Probe-FA against the method's wall time) to --out.

Run:   .venv/bin/python benchmarks/forget_aware_sweep.py --out benchmarks/results/forget-aware
A part at a time (a model, scenario, criterion or amount): --merge keeps the rows of --out's
       sweep.csv that the run does not measure again. --replot runs nothing and redraws the table and plot from sweep.csv.
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
                             "models, scenarios, criteria or amounts)")
    parser.add_argument("--replot", action="store_true",
                        help="run nothing: rewrite the table and plot from --out's sweep.csv")
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
                    rows.append(_row(model_name, scenario, criterion, amount, result.record.pruning.amount,
                                     metrics, result.cost.wall_time_s))
    return rows


def _row(model: str, scenario: str, criterion: str, amount: float, chosen: float, metrics: dict,
         wall: float) -> dict:
    values = {k: float(metrics.get(k, float("nan"))) for k in ("UA", "RA", "TA", "MIA", "Avg.Gap", "Probe-FA")}
    return {"model": model, "scenario": scenario, "criterion": criterion, "amount": amount, "chosen_amount": chosen,
            **values, "wall_time_s": float(wall)}


def write_tables(rows: list[dict], columns: list[str], out: Path) -> dict[str, Path]:
    """A sweep's rows as `out/sweep.csv` and `out/sweep.md` (numbers to 3 significant digits); also
    what benchmarks/deep_forgetting_sweep.py writes."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "sweep.csv", "md": out / "sweep.md"}
    with paths["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(v if isinstance(v, str) else f"{v:.3g}" for v in row.values()) + " |")
    paths["md"].write_text("\n".join(lines) + "\n")
    return paths


def write(rows: list[dict], out: Path) -> dict[str, Path]:
    paths = write_tables(rows, COLUMNS, out) | {"png": out / "sweep.png"}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    criteria = [c for c in dict.fromkeys(r["criterion"] for r in rows) if c != "retrain"]
    colours = dict(zip(criteria, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    markers = {"class": "o", "random10": "s"}
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 4.2 * len(models)), squeeze=False)
    for (ax_gap, ax_probe), model in zip(axes, models, strict=True):
        retrains = {r["scenario"]: r for r in rows if r["model"] == model and r["criterion"] == "retrain"}
        for scenario in dict.fromkeys(r["scenario"] for r in rows if r["model"] == model):
            for criterion in criteria:
                points = sorted((r for r in rows if (r["model"], r["scenario"], r["criterion"]) ==
                                 (model, scenario, criterion)), key=lambda r: r["amount"])
                for ax, key in ((ax_gap, "Avg.Gap"), (ax_probe, "Probe-FA")):
                    shown = [r for r in points if r[key] == r[key]]  # Probe-FA: class-wise only
                    if not shown:
                        continue
                    ax.plot([r["wall_time_s"] for r in shown], [r[key] for r in shown], "-",
                            marker=markers.get(scenario, "^"), color=colours[criterion],
                            label=f"{scenario} {criterion}", alpha=0.85)
                    for r in shown:
                        ax.annotate(f"{r['amount']:.0%}", (r["wall_time_s"], r[key]), fontsize=7,
                                    xytext=(3, 3), textcoords="offset points")
            retrain = retrains.get(scenario)
            if retrain is not None and retrain["Probe-FA"] == retrain["Probe-FA"]:
                ax_probe.axhline(retrain["Probe-FA"], color="grey", linestyle="--",
                                 label=f"{scenario} retrain ({retrain['wall_time_s']:.0f} s)")
        ax_gap.set_ylabel(f"{model}: Avg.Gap to retrain (lower is better)")
        ax_probe.set_ylabel(f"{model}: Probe-FA (%; the retrain's line is the target)")
        for ax in (ax_gap, ax_probe):
            ax.set_xlabel("wall time of the method (s)")
            if ax.get_legend_handles_labels()[0]:  # a panel may have nothing (no class-wise rows)
                ax.legend(fontsize=6, loc="best")
    fig.suptitle("Forget-aware pruning: criterion x amount (labels: the amount pruned)")
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=120)
    plt.close(fig)
    return paths


def _order(row: dict) -> tuple:
    """Model, scenario, then the retrain and each criterion in their declared order, by amount."""
    def rank(names, name):
        return list(names).index(name) if name in names else len(names)

    amount = row["amount"] if row["amount"] == row["amount"] else -1.0  # the retrain's is NaN
    return (rank(MODELS, row["model"]), rank(SCENARIOS, row["scenario"]), rank(["retrain", *CRITERIA], row["criterion"]),
            amount)


def read_rows(path: Path) -> list[dict]:
    """The rows of an earlier sweep.csv, with numbers parsed back."""
    with path.open(newline="") as f:
        return [{k: v if k in ("model", "scenario", "criterion") else float(v) for k, v in row.items()}
                for row in csv.DictReader(f)]


def merge(rows: list[dict], path: Path) -> list[dict]:
    """The rows of `path` that `rows` does not measure again, then `rows`. A row is measured again
    when `rows` holds the same model, scenario, criterion and amount (a retrain: model and scenario)."""
    if not path.exists():
        return rows

    def key(row: dict) -> tuple:
        if row["criterion"] == "retrain":
            return row["model"], row["scenario"], "retrain"
        return row["model"], row["scenario"], row["criterion"], round(float(row["amount"]), 6)

    again = {key(r) for r in rows}
    return [r for r in read_rows(path) if key(r) not in again] + rows


def main(argv: list[str] | None = None) -> tuple[list[dict], dict[str, Path]]:
    args = parse(argv)
    if args.replot:
        if not (args.out / "sweep.csv").is_file():
            raise SystemExit(f"--replot: no sweep.csv in {str(args.out)!r}; run the sweep first")
        rows = read_rows(args.out / "sweep.csv")
    else:
        rows = run(args)
    if args.merge and not args.replot:
        rows = merge(rows, args.out / "sweep.csv")
    rows = sorted(rows, key=_order)
    paths = write(rows, args.out)
    print(paths["md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return rows, paths


if __name__ == "__main__":
    main()
