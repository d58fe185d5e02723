"""The parallel pass of a benchmark: every missing cell, spread over an executor's workers.

The driver (this process) alone writes: a worker returns a finished cell and the driver records it
atomically, so a stopped run (Ctrl-C, a lost worker, a killed node) resumes with the same command,
reusing every recorded cell; a cell whose worker died is run again, never half-recorded.

Order: the original is ready (trained once) before this pass; the retrains (the references) are
submitted first, then the method cells, as workers free up. A cell is evaluated on its own metrics
(its comparison with its reference is made by the runner afterwards), so no cell waits for another.
A progress line follows the grid as a whole.
"""

from __future__ import annotations

import dataclasses
import io
import time
import uuid
from collections import Counter
from pathlib import Path

import torch

from prunelora.bench.cellwork import CellOutcome, CellTask, WorkerContext
from prunelora.bench.config import BenchConfig, BenchPlan, EvaluationSettings
from prunelora.bench.progress import cell_kind, progress_line
from prunelora.bench.runner import (
    Original,
    _cached_retrain,
    _relearn_target,
    cached_retrain_dir,
    cell_path,
    load_cell,
    record_cell,
)
from prunelora.data import build_splits
from prunelora.errors import PruneLoRAError

MAX_RETRIES = 1  # a cell whose worker died runs once more in the same invocation


class WorkerLostError(PruneLoRAError, RuntimeError):
    """A cell's worker (process or node) died more often than a retry covers."""


def plan_cells(config: BenchConfig, plan: BenchPlan, bundle, original: Original, device) -> list[CellTask]:
    """Every cell of the grid: every scenario's retrains first (the references a user may want
    early), then the method cells in the sequential runner's order."""
    retrain_seeds, floor_seeds = list(plan.retrain_seeds), plan.floor_seeds
    retrains, methods = [], []
    for scenario in plan.scenarios:
        splits = build_splits(bundle, scenario.spec(), val_fraction=config.val_fraction, seed=0,
                              val_indices=original.meta.dataset.val_indices)
        target = _relearn_target(original.model, splits, plan.evaluation, device)
        spec = splits.spec.to_dict()
        retrains += [CellTask(scenario.name, spec, plan.retrain, seed, target, cache_model=True)
                     for seed in floor_seeds]
        methods += [CellTask(scenario.name, spec, method, seed, target,
                             reference_seed=retrain_seeds[i % len(retrain_seeds)])
                    for method in plan.methods if scenario.name in method.scenarios
                    for i, seed in enumerate(plan.seeds)]
    return retrains + methods


def run_cells(executor, config: BenchConfig, plan: BenchPlan, out: Path, bundle, original: Original,
              device, log=print, counts: dict | None = None) -> None:
    """Run every cell not yet recorded in `out` on `executor`, recording each as it finishes.

    Args:
        executor: a parallel executor (`prunelora.bench.executors`), closed on return.
        config: the bench; `plan` the same parsed once.
        out: the bench folder.
        bundle: the dataset, as the original was trained on it.
        original: the original model, its meta.json and its checkpoint folder.
        device: where the cells run (None: the worker's default).
        log: where the driver's lines go.
        counts: `counts["run"]` grows by one per cell run now.

    Raises:
        WorkerLostError: a cell's worker died twice; the recorded cells are kept.
    """
    counts = {} if counts is None else counts
    settings = plan.evaluation
    planned = plan_cells(config, plan, bundle, original, device)
    order = {task.key: i for i, task in enumerate(planned)}
    waiting: list[CellTask] = []
    total, done = len(planned), 0
    for task in planned:
        path = _path(out, task, settings)
        if load_cell(path) is not None:  # an unreadable or damaged file: the cell runs again
            done += 1
            log(f"{task.label}: done earlier, reusing")
        else:
            waiting.append(task)
    if not waiting:
        return
    log(f"cells: {len(waiting)} to run of {total}, on {executor.description}")
    (out / "logs").mkdir(exist_ok=True)
    blob = io.BytesIO()
    torch.save(original.model, blob)
    executor.start(WorkerContext(
        token=uuid.uuid4().hex, dataset=config.dataset, data_dir=config.data_dir, augment=plan.recipe.augment,
        subset=plan.subset, val_fraction=config.val_fraction,
        original=blob.getvalue(), original_meta=original.meta, original_path=str(original.path),
        settings=settings, device=device,
        threads=executor.threads, log_dir=str(out / "logs") if executor.shares_disk else None))
    running: dict[tuple, tuple[CellTask, float]] = {}
    attempts: dict[tuple, int] = {}
    # cells lost together (a local pool breaks as a whole when one worker dies): which one died is
    # unknown, so they run again one at a time, alone, until the one that dies shows itself
    suspects: list[CellTask] = []
    durations: dict[str, list[float]] = {}  # per kind of cell: a retrain takes longer than a method
    try:
        while waiting or running or suspects:
            if suspects:
                if not running:
                    task = suspects.pop(0)
                    executor.submit(task)
                    running[task.key] = (task, time.perf_counter())
            else:
                # by plan order: the retrains first; a method cell once its retrain (its CKA
                # reference, as in the sequential runner) is recorded
                while len(running) < executor.slots:
                    ready = next((t for t in waiting if _reference_ready(out, t)), None)
                    if ready is None:
                        break
                    waiting.remove(ready)
                    task = _with_reference(out, ready)
                    executor.submit(task)
                    running[task.key] = (task, time.perf_counter())
                if not running:  # cannot happen: the retrains come first and are always ready
                    raise PruneLoRAError(f"no cell can start: {waiting[0].label} waits for a retrain that is "
                                         "neither recorded nor planned")
            left = Counter(cell_kind(task.method.key) for task in [*(t for t, _ in running.values()), *waiting,
                                                                  *suspects])
            log(progress_line(done, total, [task.label for task, _ in running.values()], dict(left), durations,
                              executor.slots))
            finished = executor.collect()
            lost = [task for task, outcome in finished if outcome is None]
            # one cell lost: it died of itself (a broken local pool loses every cell it held; Ray
            # loses only the dead worker's)
            alone = len(lost) == 1
            for task, outcome in finished:
                _, started = running.pop(task.key)
                if outcome is None:
                    attempts[task.key] = attempts.get(task.key, 0) + 1
                    if alone and attempts[task.key] > MAX_RETRIES:
                        raise WorkerLostError(
                            f"the worker running {task.label} died {attempts[task.key]} times (killed, or out of "
                            f"memory?); {done} finished cells are recorded in {out}: run the same command to resume")
                    log(f"{task.label}: its worker died; running it again")
                    continue
                _record(out, task, outcome, settings)
                done += 1
                counts["run"] = counts.get("run", 0) + 1
                durations.setdefault(cell_kind(task.method.key), []).append(time.perf_counter() - started)
                log(f"{task.label}: finished on {outcome.worker} in {outcome.elapsed_s:.1f} s")
            if alone:
                waiting.insert(0, lost[0])
            else:
                suspects += sorted(lost, key=lambda task: order[task.key])
    finally:
        executor.close()


def _reference_ready(out: Path, task: CellTask) -> bool:
    return task.reference_seed is None or (cached_retrain_dir(out, task.scenario, task.reference_seed)
                                           / "meta.json").is_file()


def _with_reference(out: Path, task: CellTask) -> CellTask:
    """`task` with its retrain's model attached (the driver reads it; a worker may share no disk)."""
    if task.reference_seed is None:
        return task
    blob = io.BytesIO()
    torch.save(_cached_retrain(out, task.scenario, task.reference_seed), blob)
    return dataclasses.replace(task, reference=blob.getvalue())


def _path(out: Path, task: CellTask, settings: EvaluationSettings) -> Path:
    return cell_path(out, task.cell, settings)


def _record(out: Path, task: CellTask, outcome: CellOutcome, settings: EvaluationSettings) -> None:
    """The driver writes the cell (and a retrain's model) and the worker's log, if it sent one."""
    checkpoint = None
    if outcome.checkpoint is not None:
        checkpoint = torch.load(io.BytesIO(outcome.checkpoint), weights_only=False)  # our worker's bytes
    record_cell(out, _path(out, task, settings), task.cell, outcome.payload, checkpoint)
    if outcome.log:
        with (out / "logs" / f"worker-{outcome.worker}.log").open("a") as f:
            f.write(outcome.log)
