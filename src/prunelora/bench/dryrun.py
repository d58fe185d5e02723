"""`prunelora bench --dry-run`: the cells a run would do, which are already done, and how long the
rest would take. Nothing is trained, evaluated or written.

Each cell's time comes from one of two sources, and the listing says which:

- **measured**: the training wall time (`wall_time_s`) recorded by cells of this very configuration
  (the same identity hash, method options and evaluation settings) in `--out` (other seeds) or in
  a results folder committed beside the code (`benchmarks/results/*`);
- **modelled**: the images the cell trains on × its epochs (or steps × batch size), divided by the
  training speed of this machine, measured now on a few steps of the model on random inputs.

Both are the training time alone, as the report's `time` column: each cell's evaluation
(attacks, probe, relearning) comes on top.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from prunelora.api import apply_train_subset
from prunelora.bench.config import BenchConfig, BenchPlan, MethodPlan
from prunelora.bench.runner import Cell, _load_json, cell_path
from prunelora.data import build_splits, load_dataset
from prunelora.methods import TrainingOptions, get_method
from prunelora.models import create_model
from prunelora.training import TrainConfig

# Committed results beside the code (a clone: <repo>/benchmarks/results/<name>/), where they exist.
COMMITTED_RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results"


@dataclass
class PlannedCell:
    """One unit of work of the run: the original, a retrain or a method cell."""

    scenario: str  # "" for the original
    method: str
    seed: int | None
    done: bool
    note: str = ""
    record: Path | None = None  # its file under the bench folder (None: the original)
    seconds: float | None = None  # the estimate, for a cell to run
    source: str = ""  # where the estimate comes from

    @property
    def label(self) -> str:
        if not self.scenario:
            return "original"
        return f"{self.scenario} {self.method} seed {self.seed}"


@dataclass
class DryRun:
    """What `bench` would do in `out`, and the estimate of the work left."""

    name: str
    out: Path
    cells: list[PlannedCell]
    foreign: bool = False  # --out holds another configuration's run
    speed: float | None = None  # training images per second measured on this machine, if modelled
    measured_in: list[str] = field(default_factory=list)

    def lines(self, overwrite: bool = False) -> list[str]:
        """The listing, one line per cell, then the totals and what the estimates rest on."""
        out = [f"bench {self.name} -> {self.out} (dry run: nothing is run or written)"]
        if self.foreign:
            out.append(f"  {self.out} holds another run: " + ("--overwrite would clear it; every cell runs" if overwrite
                                                             else "bench would refuse it without --overwrite"))
        for cell in self.cells:
            state = "done, reused" if cell.done else f"to run, ~{_duration(cell.seconds)} ({cell.source})"
            note = f" [{cell.note}]" if cell.note else ""
            out.append(f"  {cell.label}{note}: {state}")
        todo = [c for c in self.cells if not c.done]
        total = sum(c.seconds or 0.0 for c in todo)
        out.append(f"{len(self.cells)} cells: {len(self.cells) - len(todo)} done, {len(todo)} to run; "
                   f"about {_duration(total)} of training, one cell at a time (each cell's evaluation comes on top)")
        kinds = {c.source.split(" ")[0] for c in todo}
        if "measured" in kinds:
            out.append(f"measured: the training time recorded by cells of this configuration in "
                       f"{', '.join(self.measured_in)}")
        if "modelled" in kinds and self.speed is not None:
            out.append(f"modelled: training images x epochs / {self.speed:,.0f} images/s, this machine's training "
                       "speed measured now on random inputs")
        return out


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "? s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plan_dry_run(config: BenchConfig, out: str | Path, *, device: str | None = None,
                 results: Path | None = COMMITTED_RESULTS) -> DryRun:
    """Every cell `bench(config, out)` would run or reuse, each to run with a time estimate.

    Args:
        config: the benchmark (validated).
        out: the bench folder it would run in (read, never written).
        device: where the modelled speed is measured (None: the best available).
        results: a folder of committed bench results to take measured times from (None: only `out`).

    Returns:
        The `DryRun`: its `lines()` are what `prunelora bench --dry-run` prints.
    """
    out = Path(out)
    ident, plan = config.identity(), config.plan()
    stamp = _load_json(out / "bench.json") if (out / "bench.json").is_file() else None
    foreign = out.is_dir() and any(out.iterdir()) and (stamp or {}).get("identity") != ident
    original_done = not foreign and (out / "cache" / f"original-{ident}" / "meta.json").is_file()
    cells = [PlannedCell("", "original", None, original_done)]
    for scenario, method, seed, note in _grid(plan):
        path = cell_path(out, Cell(scenario, method, seed), plan.evaluation)
        done = not foreign and path.is_file() and _load_json(path) is not None
        cells.append(PlannedCell(scenario, method.key, seed, done, note, path.relative_to(out)))
    sources = ([] if foreign else [out]) + _matching_results(results, ident)
    dry = DryRun(config.name, out, cells, foreign)
    missing = []
    for cell in cells:
        if cell.done:
            continue
        seconds, where = _measured(cell.record, sources, ident)
        if seconds is not None:
            cell.seconds, cell.source = seconds, f"measured in {where}"
            if where not in dry.measured_in:
                dry.measured_in.append(where)
        else:
            missing.append(cell)
    if missing:
        images, dry.speed = _modelled(config, plan, device)
        for cell in missing:
            cell.seconds, cell.source = images(cell) / dry.speed, "modelled"
    return dry


def _grid(plan: BenchPlan):
    """(scenario, method plan, seed, note) in the runner's order: each scenario's retrains (one more
    for the noise floor when there is a single reference seed), then its method cells."""
    retrain_seeds = list(plan.retrain_seeds)
    extra = [] if len(retrain_seeds) > 1 else [max(retrain_seeds) + 1]
    for scenario in plan.scenarios:
        for seed in retrain_seeds + extra:
            yield scenario.name, plan.retrain, seed, "noise floor only" if seed in extra else ""
        for method in plan.methods:
            if scenario.name in method.scenarios:
                for seed in plan.seeds:
                    yield scenario.name, method, seed, ""


def _matching_results(results: Path | None, ident: str) -> list[Path]:
    """The folders under `results` holding a run of the configuration `ident`."""
    if results is None or not results.is_dir():
        return []
    found = []
    for folder in sorted(p for p in results.iterdir() if p.is_dir()):
        stamp = _load_json(folder / "bench.json") if (folder / "bench.json").is_file() else None
        if (stamp or {}).get("identity") == ident:
            found.append(folder)
    return found


def _measured(relative: Path | None, sources: list[Path], ident: str) -> tuple[float | None, str]:
    """The mean training time recorded for the cell whose file is `relative` (any of its seeds) or,
    for None, the original's; and the folder it was found in."""
    for source in sources:
        if relative is None:  # the original: its checkpoint records its training cost
            meta = _load_json(source / "cache" / f"original-{ident}" / "meta.json") or {}
            seconds = (meta.get("cost") or {}).get("wall_time_s")
            if isinstance(seconds, (int, float)):
                return float(seconds), str(source)
            continue
        folder = source / relative.parent
        times = [((_load_json(p) or {}).get("row") or {}).get("wall_time_s") for p in sorted(folder.glob("seed*.json"))]
        times = [float(t) for t in times if isinstance(t, (int, float)) and math.isfinite(t)]
        if times:
            return sum(times) / len(times), str(source)
    return None, ""


def _modelled(config: BenchConfig, plan: BenchPlan, device: str | None):
    """(images a cell trains on, this machine's training images per second)."""
    bundle = apply_train_subset(load_dataset(config.dataset, data_dir=config.data_dir), plan.subset)
    retained = {}
    for scenario in plan.scenarios:
        splits = build_splits(bundle, scenario.spec(), val_fraction=config.val_fraction, seed=0)
        retained[scenario.name] = len(splits.retain)
    trained_on = len(bundle.train) - round(config.val_fraction * len(bundle.train))
    methods = {m.key: m for m in (*plan.methods, plan.retrain)}

    def images(cell: PlannedCell) -> float:
        if not cell.scenario:
            return _budget(plan.recipe, trained_on)
        n = retained[cell.scenario]
        if cell.method == "retrain":
            return _budget(plan.recipe, n)
        return _budget(_recipe(methods[cell.method]), n)

    model = create_model(config.model, bundle.num_classes, bundle.in_channels, bundle.image_size,
                         **config.model_kwargs)
    return images, training_speed(model, bundle.in_channels, bundle.image_size, device)


def _recipe(method: MethodPlan) -> TrainConfig | None:
    config = get_method(method.name).make_config(**method.options)
    return config.train_config() if isinstance(config, TrainingOptions) else None


def _budget(recipe: TrainConfig | None, images: int) -> float:
    """Images a recipe trains on: steps × batch, or epochs × `images`; a method that does not train
    with its own recipe (SSD, a pruning pass) is counted as one pass over them."""
    if recipe is None:
        return float(images)
    if recipe.steps is not None:
        return float(recipe.steps * recipe.batch_size)
    return float(recipe.epochs * images)


def training_speed(model: torch.nn.Module, in_channels: int, image_size: int, device: str | None = None,
                   batch: int = 64, steps: int = 3) -> float:
    """Training images per second of `model` here: SGD steps on a random batch, after one warm-up."""
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(dev).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch, in_channels, image_size, image_size, device=dev)
    with torch.no_grad():
        classes = model(x[:1]).shape[1]
    y = torch.randint(0, classes, (batch,), device=dev)
    elapsed = 0.0
    for step in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if step:  # the first step warms up (allocations, kernels)
            elapsed += time.perf_counter() - start
    return batch * steps / max(elapsed, 1e-9)
