"""Run or resume a benchmark: original -> retrain and every chosen method, over seeds and scenarios.

The orchestrator: it uses methods and evaluation (which never import each other).

Layout of the output directory (everything is written atomically, so Ctrl-C then the same
command resumes where it stopped):

    bench.json                   the configuration and its identity hash
    cache/original-<hash>/       the original model (a checkpoint), reused while its recipe holds
                                 (none when the config gives `original: DIR`, used where it lies)
    cache/<scenario>-retrain-seed<k>/   retrain checkpoints (the references)
    cells/<scenario>/<method key>-<options hash>/seed<k>.json   one finished (method, seed) cell
    results.csv, results.json, report.md, plots/*.png
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import threadpoolctl
import torch

from prunelora.api import apply_train_subset, result_meta, train
from prunelora.bench.config import BenchConfig, BenchPlan, EvaluationSettings, MethodPlan
from prunelora.bench.progress import GridProgress, cell_kind
from prunelora.checkpoint import (
    CheckpointMeta,
    atomic_write_text,
    check_writable,
    holds_results,
    load_checkpoint,
    read_meta,
    run_id,
    save_checkpoint,
)
from prunelora.data import build_splits, check_data_identity, load_dataset
from prunelora.errors import InvalidInputError
from prunelora.evaluation.cache import EvaluationCache
from prunelora.evaluation.compare import compare
from prunelora.evaluation.evaluate import evaluate
from prunelora.evaluation.relearn import heldout_accuracy
from prunelora.evaluation.report import write_report
from prunelora.methods import get_method, unlearn
from prunelora.methods.common import check_lora_rank
from prunelora.models import create_model
from prunelora.models.classifier import find_module
from prunelora.training.distributed import barrier, broadcast_from_main, is_main_process

EVALUATION_CACHE = EvaluationCache()
"""What this process's cells share of their evaluation: the original's and each retrain's features
(CKA compares every cell with them) and the throughput of each model structure, measured once
(`prunelora.evaluation.cache`; the metrics are the same as without it)."""


def _silent(*args, **kwargs) -> None:
    pass


def _without_reuse_lines(log):
    """`log` less the "done earlier, reusing" lines (after a parallel pass every cell reads back)."""
    def filtered(message: str, *args, **kwargs) -> None:
        if not str(message).endswith("done earlier, reusing"):
            log(message, *args, **kwargs)
    return filtered


def same_threads_wall_time(row: dict, retrains: list[dict]) -> float:
    """The mean wall time of the `retrains` run with `row`'s torch threads per cell: what its time
    ratio divides by (NaN where none was: times under other thread counts do not compare)."""
    same = [r["wall_time_s"] for r in retrains if r.get("threads") == row.get("threads")]
    return sum(same) / len(same) if same else float("nan")


# What a bench writes in its folder (see the module docstring): all that `--overwrite` removes.
BENCH_FOLDERS, BENCH_FILES = ("cache", "cells", "plots"), ("bench.json", "results.csv", "results.json", "report.md")


def bench_stamp(out: Path) -> str | None:
    """The identity recorded by the bench.json a bench wrote in `out`, or None: `out` is then not a
    bench's folder (no stamp, or one that is not a bench's)."""
    stamp = _load_json(out / "bench.json") if (out / "bench.json").is_file() else None
    identity = stamp.get("identity") if isinstance(stamp, dict) and "config" in stamp else None
    return identity if isinstance(identity, str) else None


def _prepare_bench_dir(out: Path, ident: str, overwrite: bool) -> str | None:
    """Create `out`, clearing a different configuration's results when `overwrite`; else the problem.

    Only a bench's own folder (its bench.json stamp) is cleared, and only of what a bench writes: an
    ordinary folder holding anything is refused even with `overwrite`, so a user's files (their own
    plots/, cache/ or report.md) are never deleted."""
    if not out.exists() or not holds_results(out):
        out.mkdir(parents=True, exist_ok=True)
        return None
    stamp = bench_stamp(out)
    if stamp == ident:
        return None
    if stamp is None:
        return (f"output directory {str(out)!r} is not empty and holds no bench (no bench.json of prunelora): "
                "choose an empty or new --out (--overwrite replaces only a bench's own folder)")
    if not overwrite:
        return (f"output directory {str(out)!r} holds another bench (a different configuration); "
                "choose another --out or pass --overwrite")
    for name in BENCH_FOLDERS:
        shutil.rmtree(out / name, ignore_errors=True)
    for name in BENCH_FILES:
        (out / name).unlink(missing_ok=True)
    return None


def _cell_key(method: str, options: dict, evaluation: dict) -> str:
    """The cell's folder: the method and a hash of its options and of the probe and relearning
    settings (a cell evaluated otherwise is another cell)."""
    return f"{method}-{run_id({'options': options, 'evaluation': evaluation})[:8]}"


def _load_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):  # unreadable, not JSON (or not UTF-8), nested too deeply
        return None


def load_cell(path: Path) -> dict | None:
    """A finished cell's payload as recorded at `path`, or None when there is none to reuse: no file,
    or one that is not a cell's (damaged, `{}`, another shape); the cell then runs again."""
    payload = _load_json(path) if path.is_file() else None
    if not isinstance(payload, dict) or not isinstance(payload.get("row"), dict):
        return None
    row = payload["row"]
    if not all(key in row for key in ("scenario", "method", "seed")):
        return None
    return payload


def run_bench(config: BenchConfig, out: str | Path, *, overwrite: bool = False, device: str | None = None,
              progress: bool = True, log=print, counts: dict | None = None,
              executor=None) -> tuple[list[dict], dict]:
    """Run (or resume) the benchmark into `out`.

    Returns one row per (scenario, method, seed) and the cells' payloads keyed the same way.
    `counts["run"]`, when given, is incremented for every cell run now (not reused).
    `executor` (`prunelora.bench.executors`): where the cells run; None, one in this process.
    """
    out = check_writable(out, "--out")
    ident = config.identity()
    plan = config.plan()
    # loaded first, so that a train subset the dataset cannot give writes nothing
    bundle = apply_train_subset(load_dataset(config.dataset, data_dir=config.data_dir, augment=plan.recipe.augment),
                                plan.subset)
    layer = (plan.evaluation.probe or {}).get("layer")
    if layer is not None:  # a module the model lacks fails before anything is trained or written
        find_module(create_model(config.model, bundle.num_classes, bundle.in_channels, bundle.image_size,
                                 **config.model_kwargs), layer)
    # every scenario's splits before any work (a forget class outside the dataset, or one that
    # would leave nothing to retain, is refused before the original is trained or anything written)
    for scenario in plan.scenarios:  # checked here; the original's recorded split is used below
        build_splits(bundle, scenario.spec(), val_fraction=config.val_fraction, seed=0)
    _check_lora_ranks(config, plan, bundle)
    # The main process decides and prepares the directory; every process learns the verdict.
    problem = broadcast_from_main(_prepare_bench_dir(out, ident, overwrite) if is_main_process() else None)
    if problem:
        raise InvalidInputError(problem)
    if not is_main_process():
        log = _silent
    atomic_write_text(out / "bench.json", json.dumps({"identity": ident, "config": config.to_dict()}, indent=2))

    # a given original (`original:`, e.g. imported) is used where it lies; else the cached one
    original_dir = Path(config.original) if config.original else out / "cache" / f"original-{ident}"
    if (original_dir / "meta.json").is_file():
        original, original_meta = load_checkpoint(original_dir)
        check_data_identity(bundle, original_meta.dataset, str(original_dir))  # the data may have changed since
        log(f"original: {'the given' if config.original else 'reusing'} {original_dir}")
    else:
        log(f"original: training {config.model} on {config.dataset}")
        subset = plan.subset
        result = train(config.dataset, config.model, plan.recipe, model_kwargs=config.model_kwargs,
                       data_dir=config.data_dir, val_fraction=config.val_fraction, device=device,
                       progress=progress, train_subset=subset["size"] if subset else None,
                       subset_seed=subset["seed"] if subset else 0)
        save_checkpoint(result.model, original_dir, result.meta)
        original, original_meta = load_checkpoint(original_dir)
    source = Original(original, original_meta, original_dir)
    threads = executor.threads if executor is not None else None
    retrain_seeds, floor_seeds = list(plan.retrain_seeds), plan.floor_seeds
    if plan.noise_floor_seed is not None:  # announced: it costs as much as a retrain per scenario
        log(f"noise floor: one more retrain per scenario (seed {plan.noise_floor_seed}), beside the reference of "
            f"seed {retrain_seeds[0]}: how far two exact retrains differ is the scale every gap is read on "
            "(noise_floor: false in the bench config skips it)")
    if executor is not None and executor.parallel:
        # Every missing cell runs first, spread over the executor's workers; the loop below then
        # reads them back in order and builds the rows exactly as after a sequential run.
        executor.run_cells(config, plan, out, bundle, source, device, log, counts)
        log = _without_reuse_lines(log)
    # one cell at a time: a progress line for the grid before each cell that runs (a parallel pass
    # printed its own, and every cell is read back below)
    grid = None if executor is not None and executor.parallel else GridProgress({
        "retrain": len(plan.scenarios) * len(floor_seeds),
        "method": sum(len(plan.seeds) for s in plan.scenarios for m in plan.methods if s.name in m.scenarios)})
    rows: list[dict] = []
    payloads: dict[tuple[str, str, int], dict] = {}
    for scenario in plan.scenarios:
        splits = build_splits(bundle, scenario.spec(), val_fraction=config.val_fraction, seed=0,
                              val_indices=original_meta.dataset.val_indices)
        target = _relearn_target(original, splits, plan.evaluation, device)
        references: dict[int, dict] = {}
        for seed in floor_seeds:
            payload = _run_cell(out, Cell(scenario.name, plan.retrain, seed, cache_model=True), source, splits,
                                plan.evaluation, target, device, progress, log, counts=counts, threads=threads,
                                grid=grid)
            payloads[(scenario.name, "retrain", seed)] = payload
            references[seed] = payload["row"]
        retrains = [references[s] for s in retrain_seeds]
        for seed in retrain_seeds:  # a retrain run for the noise floor alone shows only there
            row = references[seed]
            row.update(compare(row, row, reference_wall_time_s=same_threads_wall_time(row, retrains)),
                       reference_seed=seed)
            rows.append(row)
        rows += noise_floor_rows([references[s] for s in floor_seeds], timed_by=retrains)
        for method in plan.methods:
            if scenario.name not in method.scenarios:
                continue
            for i, seed in enumerate(plan.seeds):
                reference_seed = retrain_seeds[i % len(retrain_seeds)]
                payload = _run_cell(out, Cell(scenario.name, method, seed), source, splits, plan.evaluation, target,
                                    device, progress, log, counts=counts, threads=threads,
                                    reference_model=_cached_retrain(out, scenario.name, reference_seed), grid=grid)
                payloads[(scenario.name, method.key, seed)] = payload
                row = payload["row"]
                row.update(compare(row, references[reference_seed],
                                   reference_wall_time_s=same_threads_wall_time(row, retrains)),
                           reference_seed=reference_seed)
                rows.append(row)
    return rows, payloads


NOISE_FLOOR = "retrain-vs-retrain"


def noise_floor_rows(retrains: list[dict], reference_wall_time_s: float | None = None, *,
                     timed_by: list[dict] | None = None) -> list[dict]:
    """One row per pair of retrains of different seeds: the later one's metrics, compared with the
    earlier one (`compare`). Their mean Avg.Gap is the noise floor: a method closer to its retrain
    than two exact retrains are to each other is as good as retraining here. `time_ratio` is over
    `reference_wall_time_s` (the retrains' mean wall time) when given, or else, with `timed_by`,
    over the mean wall time of those retrains run with the row's threads (`same_threads_wall_time`)."""
    out = []
    for i, first in enumerate(retrains):
        for second in retrains[i + 1:]:
            row = {**second, "method": NOISE_FLOOR, "reference_seed": first["seed"]}
            wall = reference_wall_time_s
            if wall is None and timed_by is not None:
                wall = same_threads_wall_time(second, timed_by)
            row.update(compare(second, first, reference_wall_time_s=wall))
            out.append(row)
    return out


def _check_lora_ranks(config: BenchConfig, plan: BenchPlan, bundle) -> None:
    """A LoRA rank that a targeted layer cannot take is refused before the original is trained
    (checked on the model built on the `meta` device: no memory)."""
    model = None
    for method in plan.methods:
        entry = get_method(method.name)
        if not entry.capabilities.uses_lora:
            continue
        if model is None:
            with torch.device("meta"):
                model = create_model(config.model, bundle.num_classes, bundle.in_channels, bundle.image_size,
                                     **config.model_kwargs)
        try:
            check_lora_rank(model, entry.make_config(**method.options).lora_settings())
        except InvalidInputError as exc:
            raise InvalidInputError(f"{method.key}: {exc}") from None


@dataclass(frozen=True)
class Original:
    """The model every cell starts from, its meta.json and its checkpoint directory."""

    model: torch.nn.Module
    meta: CheckpointMeta
    path: Path


@dataclass(frozen=True)
class Cell:
    """One (scenario, method, seed) of the grid; `cache_model` keeps its model as a checkpoint
    (the retrains: the references a user can evaluate against with `prunelora eval`)."""

    scenario: str
    method: MethodPlan
    seed: int
    cache_model: bool = False


def cell_path(out: Path, cell: Cell, settings: EvaluationSettings) -> Path:
    """Where the (scenario, method, seed) cell is recorded (see the module docstring)."""
    method = cell.method
    return out / "cells" / cell.scenario / _cell_key(method.key, method.options, settings.key()) / f"seed{cell.seed}.json"


def _run_cell(out: Path, cell: Cell, original: Original, splits, settings: EvaluationSettings,
              relearn_target: float | None, device, progress: bool, log, counts: dict | None = None,
              threads: int | None = None, reference_model: torch.nn.Module | None = None,
              grid: GridProgress | None = None) -> dict:
    """Run one cell, or read it back if it finished earlier. Returns its payload, whose row holds the
    model's own metrics and costs (the comparison with its reference is added by the caller).

    `settings` and `relearn_target` (the original's accuracy on held-out D_f) say how to evaluate;
    `threads`, the torch threads the cell runs with (None: the current setting); the original and
    `reference_model` (its retrain) are the CKA references. `grid`: the grid's progress, told of
    this cell (and its line printed before the cell runs).
    """
    counts = {} if counts is None else counts
    label = f"{cell.scenario} {cell.method.key} seed {cell.seed}"
    path = cell_path(out, cell, settings)
    done = load_cell(path)
    kind = cell_kind(cell.method.key)
    if done is not None:
        log(f"{label}: done earlier, reusing")
        if grid is not None:
            grid.reused(kind)
        return done
    counts["run"] = counts.get("run", 0) + 1
    if grid is not None:
        log(grid.starting(label))
    log(f"{label}: running")
    start = time.perf_counter()
    payload, checkpoint = compute_cell(cell, original, splits, settings, relearn_target, device, progress,
                                       threads=threads, reference_model=reference_model)
    record_cell(out, path, cell, payload, checkpoint)
    if grid is not None:
        grid.finished(kind, time.perf_counter() - start)
    return payload


def compute_cell(cell: Cell, original: Original, splits, settings: EvaluationSettings,
                 relearn_target: float | None, device, progress: bool,
                 threads: int | None = None, reference_model: torch.nn.Module | None = None
                 ) -> tuple[dict, tuple[torch.nn.Module, CheckpointMeta] | None]:
    """Run and evaluate one cell without writing anything (a worker process runs this too: the
    caller records it).

    Args:
        cell: the (scenario, method, seed) to run.
        original: the model it starts from.
        splits: the scenario's splits.
        settings: how to evaluate; `relearn_target` the original's accuracy on held-out D_f.
        device: where it runs; `progress` shows progress bars.
        threads: torch threads for this cell (None: leave the current setting); recorded in the row.
        reference_model: the cell's retrain, the CKA reference beside the original (a method cell).

    Returns:
        Its payload (the row holds the model's own metrics and costs) and, when `cell.cache_model`,
        the (model, meta.json) to save, built by `result_meta` as `prunelora retrain` does.
    """
    method, seed = cell.method, cell.seed
    previous = torch.get_num_threads()
    blas = None
    if threads is not None:  # CPU reductions depend on the thread count: fixed per cell, and recorded
        torch.set_num_threads(threads)
        # numpy/scikit-learn's BLAS (probes, attacks) too: by default every worker starts one
        # thread per core, and N workers' threads then fight over the cores
        blas = threadpoolctl.threadpool_limits(threads)
    try:
        config = get_method(method.name).make_config(**(method.options | {"seed": seed}))
        result = unlearn(original.model, splits, method.name, config, device=device, progress=progress,
                         original_meta=original.meta)
        checkpoint = None
        if cell.cache_model:
            checkpoint = (result.model, result_meta(result, original.meta, splits, seed=seed,
                                                    original_path=original.path, device=device))
        evaluation = evaluate(result.model, splits, device=device, relearn_target=relearn_target,
                              original_model=original.model, reference_model=reference_model,
                              cache=EVALUATION_CACHE, **settings.evaluate_options())
        ran_with = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
        if blas is not None:
            blas.restore_original_limits()
    cost = result.cost
    row = {"scenario": cell.scenario, "method": method.key, "seed": seed, **evaluation.metrics,
           "wall_time_s": cost.wall_time_s, "peak_memory_mb": cost.peak_memory_mb,
           "trainable_params": cost.trainable_params, "steps": cost.steps, "threads": ran_with}
    payload = {"row": row, "mia": evaluation.mia, "losses": evaluation.losses, "probe": evaluation.probe,
               "relearn": evaluation.relearn, "record": {
        k: v for k, v in result.to_dict().items() if k in ("method", "cost", "sparsity")},
        "sizes": splits.sizes(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return payload, checkpoint


def record_cell(out: Path, path: Path, cell: Cell, payload: dict,
                checkpoint: tuple[torch.nn.Module, CheckpointMeta] | None = None) -> None:
    """Write a finished cell at `path`: its model first (a retrain: a reference a user can evaluate
    against), then its JSON, each atomically; so a cell file always means a complete cell."""
    if checkpoint is not None:  # saved as `prunelora retrain` saves one: the same meta.json
        model, meta = checkpoint
        save_checkpoint(model, out / "cache" / f"{cell.scenario}-{cell.method.key}-seed{cell.seed}", meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, default=float) + "\n")


def cached_retrain_dir(out: Path, scenario: str, seed: int) -> Path:
    """Where the retrain of `seed` is saved by its cell."""
    return out / "cache" / f"{scenario}-retrain-seed{seed}"


def _cached_retrain(out: Path, scenario: str, seed: int):
    """The retrain of `seed` saved by its cell (the CKA reference), or None when it is not there."""
    model_dir = cached_retrain_dir(out, scenario, seed)
    return load_checkpoint(model_dir)[0] if (model_dir / "meta.json").is_file() else None


def _relearn_target(original, splits, settings: EvaluationSettings, device) -> float | None:
    """The original's accuracy on the held-out part of D_f: the level relearning must regain."""
    relearn = settings.relearn_config()
    if relearn is None or len(splits.forget) < 2:
        return None
    return broadcast_from_main(heldout_accuracy(original, splits, relearn, device=device)
                               if is_main_process() else None)


def original_checkpoint(out: str | Path) -> Path | None:
    matches = sorted(Path(out).glob("cache/original-*/meta.json"))
    return matches[0].parent if matches else None


def bench(config: BenchConfig, out: str | Path, *, overwrite: bool = False, device: str | None = None,
          progress: bool = True, command: str = "", log=print, executor=None) -> tuple[list[dict], Path]:
    """Run or resume the benchmark, then write results.csv/json, plots and report.md.
    `executor`: where the cells run (see `run_bench`)."""
    start = time.perf_counter()
    counts: dict = {}
    rows, payloads = run_bench(config, out, overwrite=overwrite, device=device, progress=progress, log=log,
                               counts=counts, executor=executor)
    report = Path(out) / "report.md"
    if is_main_process():
        original_meta = read_meta(config.original or original_checkpoint(out))
        write_report(Path(out), rows, payloads, config.to_dict(), original_meta, command,
                     elapsed_s=time.perf_counter() - start, cells_run=counts.get("run", 0))
    barrier()
    return rows, report
