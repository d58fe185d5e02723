"""What do the representation probe and the relearning time add to a bench run?

On the digits demo (configs/demo-digits.yaml: its original recipe, its first scenario, its MIA,
probe and relearning settings), for the retrain and for each of --methods: the wall time of
`evaluate()` without both, with the probe only, with relearning only and with both (median of
--repeats), as ratios to the evaluation without them; and the whole cell (the method's own run
plus its evaluation), with both against without, as a bench run pays it. Ratios from one run.

Run:   .venv/bin/python benchmarks/eval_probe_cost.py [--methods finetune prunelora] [--repeats 3]
Quick: .venv/bin/python benchmarks/eval_probe_cost.py --quick   (a smoke test: a 1-epoch original, 2-step
       methods, one attack, relearning capped at 5 steps)
Timings are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from prunelora.api import train
from prunelora.bench import BenchConfig
from prunelora.data import build_splits, load_dataset
from prunelora.evaluation.evaluate import evaluate
from prunelora.evaluation.relearn import RelearnConfig, heldout_accuracy
from prunelora.methods import get_method, unlearn
from prunelora.presets import preset_path
from prunelora.training import TrainConfig

VARIANTS = ("without", "probe", "relearn", "both")


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["finetune", "prunelora"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a 1-epoch original and 2-step methods (a smoke test)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    config = BenchConfig.from_file(preset_path("demo-digits"))
    recipe = TrainConfig.from_dict(config.train)
    if args.quick:
        recipe = replace(recipe, epochs=1)
    bundle = load_dataset(config.dataset)
    splits = build_splits(bundle, config.scenario(config.scenarios[0]).spec(), val_fraction=config.val_fraction)
    original = train(config.dataset, config.model, recipe, model_kwargs=config.model_kwargs, progress=False,
                     val_fraction=config.val_fraction, device="cpu")
    settings = config.evaluation()
    relearn = RelearnConfig(**settings["relearn"])
    if args.quick:  # a smoke test: a short relearning cap, one attack
        relearn = replace(relearn, max_steps=5)
    target = heldout_accuracy(original.model, splits, relearn, device="cpu")
    mia = {"attacks": ("confidence-svc",) if args.quick else tuple(config.mia.get("attacks", ())), "mia_seed": config.mia.get("seed", 0),
           "mia_max_samples": config.mia.get("max_samples", 5000)}
    variants = {"without": {"probe": False, "relearn": None},
                "probe": {"probe": True, "relearn": None},
                "relearn": {"probe": False, "relearn": relearn},
                "both": {"probe": True, "relearn": relearn}}

    results: dict[str, dict[str, float]] = {}
    for method in ["retrain", *args.methods]:
        options = config.method_options(method) if method in config.methods else {}
        if args.quick and method != "retrain":  # retrain repeats the (quick) original recipe
            options = {k: v for k, v in options.items() if k not in ("epochs", "steps")} | {"steps": 2}
        run = unlearn(original.model, splits, method, get_method(method).make_config(**options), device="cpu",
                      progress=False, original_meta=original.meta)
        seconds = {}
        for name, variant in variants.items():
            seconds[name] = timed(lambda v=variant, run=run: evaluate(
                run.model, splits, device="cpu", probe_layer=settings["probe"]["layer"], relearn_target=target,
                **mia, **v), args.repeats)
        unlearn_s = run.cost.wall_time_s
        results[method] = {f"eval {name} / without": seconds[name] / seconds["without"] for name in VARIANTS[1:]}
        results[method]["cell both / without"] = (unlearn_s + seconds["both"]) / (unlearn_s + seconds["without"])

    columns = list(next(iter(results.values())))
    print(f"digits demo, {config.model}, scenario {config.scenarios[0]['name']}: time ratios (median of "
          f"{args.repeats}; only meaningful on an idle machine)")
    print(f"{'model':<12}" + "".join(f"{c:>24}" for c in columns))
    for method, ratios in results.items():
        print(f"{method:<12}" + "".join(f"{ratios[c]:>24.2f}" for c in columns))
    return results


if __name__ == "__main__":
    main()
