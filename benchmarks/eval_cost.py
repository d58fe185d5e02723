"""What does a bench cell's evaluation cost, next to its method? A breakdown, phase by phase.

One method cell of a bench config (by default configs/fashion-mnist-resnet8.yaml, finetune, the
forgotten class 1: not a class the shipped scenarios use) is computed exactly as `prunelora bench`
computes it (`prunelora.bench.runner.compute_cell`), `--cells` times in one process (seeds 0, 1,
...): the first cell pays what a process pays once, the later ones what a running bench pays per
cell. Each phase is timed by a wrapper put around the function that runs it (the method, the
forward passes, every attack, the probes, the representation metrics, relearning, MACs,
throughput, ...), and every image sent through the network is counted, per phase (a measure the
machine's load does not change). The table is printed and written to `--out` (markdown), with the
cells' metrics beside it (`--out` with `.json`): `--compare OTHER.json` lists the metrics that
differ from another run's (e.g. of another source tree).

The original is the one committed under benchmarks/results/<config name>/cache/ (or `--original
DIR`; trained with the config's recipe when neither exists). The CKA reference, a retrain in a
bench, is `--reference DIR` or else a stand-in of the same architecture (the original with seeded
noise on its weights): its features cost what a retrain's do.

Written so that it also runs against another source tree (only functions that exist in both are
wrapped; a phase a version lacks is absent from its table):

    python benchmarks/eval_cost.py --out benchmarks/results/eval_cost-after.md
    PYTHONPATH=/old/tree/src python benchmarks/eval_cost.py --out /tmp/eval_cost-before.md
    python benchmarks/eval_cost.py --smoke --out /tmp/smoke.md       # a tiny digits cell (the test)

Seconds are only meaningful on an otherwise idle machine; the image counts always are.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import math
import platform
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

import torch
import yaml

import prunelora
from prunelora.api import apply_train_subset, train
from prunelora.bench import BenchConfig
from prunelora.bench.runner import Cell, Original, compute_cell
from prunelora.checkpoint import load_checkpoint
from prunelora.data import ForgetSpec, build_splits, load_dataset
from prunelora.evaluation.relearn import heldout_accuracy

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "configs" / "fashion-mnist-resnet8.yaml"

# (module, function, label): the functions a cell runs, wrapped where the caller looks them up
# (a name a source tree lacks is skipped). Nesting comes from the calls themselves.
PHASES: list[tuple[str, str, str]] = [
    ("prunelora.bench.runner", "unlearn", "method"),
    ("prunelora.bench.runner", "evaluate", "evaluation"),
    ("prunelora.evaluation.evaluate", "predict", "logits (a forward pass per split)"),
    ("prunelora.evaluation.evaluate", "model_pass", "one pass per split: logits and features"),
    ("prunelora.evaluation.evaluate", "mia_all", "membership attacks"),
    ("prunelora.evaluation.evaluate", "parameter_counts", "parameter counts"),
    ("prunelora.evaluation.evaluate", "count_macs", "MACs"),
    ("prunelora.evaluation.evaluate", "inference_throughput", "throughput"),
    ("prunelora.evaluation.evaluate", "measured_throughput", "throughput"),
    ("prunelora.evaluation.evaluate", "serialized_size_mb", "size"),
    ("prunelora.evaluation.evaluate", "_probes", "probe (classifier input, probe layer)"),
    ("prunelora.evaluation.evaluate", "representation_metrics", "representation (stage probes, CKA)"),
    ("prunelora.evaluation.evaluate", "relearn_steps", "relearning"),
    ("prunelora.evaluation.evaluate", "per_sample_loss", "per-sample losses"),
    ("prunelora.evaluation.probe", "capture_features", "feature pass"),
    ("prunelora.evaluation.probe", "fit_probe", "probe fit"),
    ("prunelora.evaluation.representation", "capture_layers", "feature pass"),
    ("prunelora.evaluation.representation", "reference_features", "reference features"),
    ("prunelora.evaluation.representation", "features_of_test_set", "feature pass"),
    ("prunelora.evaluation.representation", "probe_residue", "probe fit"),
    ("prunelora.evaluation.representation", "linear_cka", "CKA"),
    ("prunelora.evaluation.relearn", "_relearn_once", "one repeat"),
    ("prunelora.evaluation.relearn", "_accuracy", "held-out accuracy"),
]


class Timings:
    """Inclusive seconds, calls and images forwarded per phase path ("evaluation / relearning")."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.seconds: dict[tuple[str, ...], float] = defaultdict(float)
        self.calls: dict[tuple[str, ...], int] = defaultdict(int)
        self.images: dict[tuple[str, ...], int] = defaultdict(int)
        self.order: list[tuple[str, ...]] = []

    @contextmanager
    def phase(self, label: str):
        self.stack.append(label)
        path = tuple(self.stack)
        if path not in self.calls:
            self.order.append(path)
        self.calls[path] += 1
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[path] += time.perf_counter() - start
            self.stack.pop()

    def wrap(self, function: Callable, label: str) -> Callable:
        def timed(*args, **kwargs):
            with self.phase(label):
                return function(*args, **kwargs)
        return timed

    def count(self, images: int) -> None:
        self.images[tuple(self.stack)] += images


@contextmanager
def instrumented(timings: Timings, architecture: type):
    """Every phase of `PHASES` (that this source tree has) and every attack timed, and every image
    entering a model of class `architecture` counted; all put back on exit."""
    from prunelora.evaluation import attacks

    with ExitStack() as stack:
        for module_name, name, label in PHASES:
            module = importlib.import_module(module_name)
            original = getattr(module, name, None)
            if callable(original):
                setattr(module, name, timings.wrap(original, label))
                stack.callback(setattr, module, name, original)
        registry = getattr(attacks, "_ATTACKS", {})
        for name, attack in list(registry.items()):
            registry[name] = replace(attack, run=timings.wrap(attack.run, f"attack {name}"))
            stack.callback(registry.__setitem__, name, attack)

        def count(module, args):
            if type(module) is architecture and args and torch.is_tensor(args[0]):
                timings.count(int(args[0].shape[0]))

        stack.callback(torch.nn.modules.module.register_module_forward_pre_hook(count).remove)
        yield


def smoke_config() -> dict:
    """A digits cell that runs in seconds (the test's): 2 training steps, short relearning."""
    return {"name": "eval-cost-smoke", "dataset": "digits", "model": "resnet8", "train": {"steps": 20, "seed": 0},
            "scenarios": [{"name": "class1", "forget_class": 1}], "seeds": [0],
            "methods": {"finetune": {"steps": 2}},
            "mia": {"attacks": ["loss-lr", "confidence-svc", "entropy-svc", "m-entropy-svc"], "max_samples": 200},
            "probe": {"layer": "layers.1"}, "relearn": {"max_steps": 5, "repeats": 3, "budgets": [2]}}


def load_original(config: BenchConfig, plan, original_dir: str | None, device: str | None):
    """(model, meta, folder): `original_dir`, the committed one for this config, or trained now."""
    candidates = [Path(original_dir)] if original_dir else sorted(
        (ROOT / "benchmarks" / "results" / config.name / "cache").glob("original-*"))
    for folder in candidates:
        if (folder / "meta.json").is_file():
            model, meta = load_checkpoint(folder)
            return model, meta, folder
    if original_dir:
        raise SystemExit(f"--original {original_dir}: no checkpoint there")
    print(f"training the original ({config.model} on {config.dataset}): no committed one for {config.name}")
    subset = plan.subset
    result = train(config.dataset, config.model, plan.recipe, model_kwargs=config.model_kwargs,
                   data_dir=config.data_dir, val_fraction=config.val_fraction, device=device, progress=False,
                   train_subset=subset["size"] if subset else None, subset_seed=subset["seed"] if subset else 0)
    return result.model, result.meta, Path("(trained now)")


def stand_in_reference(original: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The original with seeded noise on its weights: a model of the same architecture whose features
    differ from the original's (so that no cache could mistake one for the other)."""
    reference = copy.deepcopy(original)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in reference.parameters():
            if p.numel() > 1:
                p.add_(0.05 * p.std() * torch.randn(p.shape, generator=generator).to(p.device))
    return reference


def tree_label() -> str:
    """Where prunelora was imported from, and that tree's commit when it is a git checkout."""
    src = Path(prunelora.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return f"{src}" + (f" (commit {commit}{', with uncommitted changes' if dirty else ''})" if commit else "")


def breakdown(timings: Timings, cell_s: float) -> list[dict]:
    """One row per phase path, in the order first seen, with its seconds, share of the cell,
    calls and images (images: forwarded in that phase itself, not in its sub-phases)."""
    rows = []
    for path in timings.order:
        below = sum(n for p, n in timings.images.items() if p[:len(path)] == path)
        rows.append({"phase": " / ".join(path), "depth": len(path) - 1, "seconds": timings.seconds[path],
                     "percent": 100.0 * timings.seconds[path] / cell_s if cell_s else math.nan,
                     "calls": timings.calls[path], "images": below})
    return rows


def table(rows: list[dict], cell_s: float) -> str:
    lines = ["| phase | seconds | % of cell | calls | images forwarded |", "|---|---:|---:|---:|---:|",
             f"| **cell** | {cell_s:.2f} | 100.0 | 1 | {sum(r['images'] for r in rows if r['depth'] == 0)} |"]
    for row in rows:
        name = row["phase"].split(" / ")[-1]
        indent = "&nbsp;&nbsp;" * (2 * row["depth"] + 1) + ("↳ " if row["depth"] else "")
        lines.append(f"| {indent}{name} | {row['seconds']:.2f} | {row['percent']:.1f} | {row['calls']} "
                     f"| {row['images']} |")
    return "\n".join(lines)


def compare_metrics(mine: list[dict], other_path: Path) -> list[str]:
    """The metrics (timing columns aside) that differ between these cells and `other_path`'s."""
    timing = {"wall_time_s", "throughput", "peak_memory_mb", "threads"}
    other = json.loads(other_path.read_text())["cells"]
    lines = []
    for a, b in zip(mine, other, strict=False):
        for key in sorted(set(a["metrics"]) | set(b["metrics"])):
            if key in timing:
                continue
            x, y = a["metrics"].get(key), b["metrics"].get(key)
            same = x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
            if not same:
                lines.append(f"seed {a['seed']} {key}: {x!r} here, {y!r} there")
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="a bench config (YAML)")
    parser.add_argument("--method", default="finetune", help="a key of the config's methods")
    parser.add_argument("--forget-class", type=int, default=1, help="the class forgotten (default 1)")
    parser.add_argument("--scenario", help="a scenario of the config instead of --forget-class")
    parser.add_argument("--cells", type=int, default=2, help="cells run one after another (seeds 0, 1, ...)")
    parser.add_argument("--original", help="the original's checkpoint folder")
    parser.add_argument("--reference", help="a retrain's checkpoint folder (the CKA reference)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="the markdown file to write (the JSON goes beside it)")
    parser.add_argument("--compare", help="a JSON written by another run: list the metrics that differ")
    parser.add_argument("--note", default="", help="a line for the report (e.g. 'loaded machine')")
    parser.add_argument("--smoke", action="store_true", help="a tiny digits cell (a smoke test)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    data = smoke_config() if args.smoke else yaml.safe_load(Path(args.config).read_text())
    data.pop("executor", None)
    config = BenchConfig.from_dict(data, "smoke config" if args.smoke else args.config)
    plan = config.plan()
    methods = {m.key: m for m in plan.methods}
    if args.method not in methods:
        raise SystemExit(f"--method {args.method!r} is not in the config; its methods: {', '.join(methods)}")
    method = methods[args.method]
    if args.scenario:
        found = [s for s in plan.scenarios if s.name == args.scenario]
        if not found:
            raise SystemExit(f"--scenario {args.scenario!r} is not in the config")
        scenario, spec = args.scenario, found[0].spec()
    elif args.smoke:
        scenario, spec = plan.scenarios[0].name, plan.scenarios[0].spec()
    else:
        scenario = f"class{args.forget_class}"
        spec = ForgetSpec.from_options({"forget_class": args.forget_class})

    model, meta, folder = load_original(config, plan, args.original, args.device)
    bundle = apply_train_subset(load_dataset(config.dataset, data_dir=config.data_dir, augment=plan.recipe.augment),
                                plan.subset)
    splits = build_splits(bundle, spec, val_fraction=config.val_fraction, seed=0,
                          val_indices=meta.dataset.val_indices)
    settings = plan.evaluation
    relearn = settings.relearn_config()
    target = heldout_accuracy(model, splits, relearn, device=args.device) if relearn is not None else None
    reference = load_checkpoint(args.reference)[0] if args.reference else stand_in_reference(model)
    source = Original(model, meta, folder)

    cells = []
    for seed in range(args.cells):
        timings = Timings()
        with instrumented(timings, type(model)):
            start = time.perf_counter()
            payload, _ = compute_cell(Cell(scenario, method, seed), source, splits, settings, target, args.device,
                                      False, reference_model=reference)
            cell_s = time.perf_counter() - start
        rows = breakdown(timings, cell_s)
        shares = {r["phase"]: r["percent"] for r in rows}
        cells.append({"seed": seed, "cell_s": cell_s, "evaluation_percent": shares.get("evaluation", math.nan),
                      "method_percent": shares.get("method", math.nan), "phases": rows,
                      "metrics": payload["row"]})
        print(f"cell seed {seed}: {cell_s:.1f} s, evaluation {shares.get('evaluation', math.nan):.1f}% of it")

    head = [f"# Evaluation cost of a bench cell: {config.name}, {method.key}, {scenario}", "",
            f"- source tree: {tree_label()}",
            f"- torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {args.device}, "
            f"{platform.processor() or platform.machine()}; {time.strftime('%Y-%m-%d %H:%M')}",
            f"- original: {folder}; CKA reference: {args.reference or 'a stand-in (the original, perturbed)'}",
            f"- D_f {len(splits.forget)}, D_r {len(splits.retain)}, test {len(splits.test_retain) + len(splits.test_forget)}"
            f" images; attacks {', '.join(settings.attacks)}; probe {settings.probe}; relearn {settings.relearn}",
            "- seconds: wall time of each phase, sub-phases included; images: those sent through the network "
            "in the phase and its sub-phases (forward passes; a training step counts its batch once)"]
    if args.note:
        head.append(f"- note: {args.note}")
    body = []
    for cell in cells:
        title = "first cell in the process" if cell["seed"] == 0 else "a later cell (what a running bench pays)"
        body += ["", f"## seed {cell['seed']}: {title}: evaluation {cell['evaluation_percent']:.1f}% of the cell", "",
                 table(cell["phases"], cell["cell_s"])]
    text = "\n".join(head + body) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"source": tree_label(), "cells": cells}, indent=1, default=float))
    if args.compare:
        differences = compare_metrics(cells, Path(args.compare))
        print("\n".join(differences) if differences else f"every metric equals {args.compare}'s")
    return {"cells": cells, "text": text}


if __name__ == "__main__":
    main()
