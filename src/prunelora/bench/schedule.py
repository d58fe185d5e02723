"""The parallel pass of a benchmark: every missing cell, spread over an executor's workers.

The driver (this process) alone writes: a worker returns a finished cell and the driver records it
atomically, so a stopped run (Ctrl-C, a lost worker, a killed node) resumes with the same command,
reusing every recorded cell; a cell whose worker died is run again, never half-recorded.

Order: the original is ready before this pass; a scenario's retrains (the references) are
submitted first, and a method cell as soon as its reference retrain is recorded; everything else
runs as workers free up. A progress line follows the grid as a whole.
"""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path

import torch

from prunelora.bench.cellwork import CellOutcome, CellTask, WorkerContext
from prunelora.bench.config import BenchConfig, split_method_key
from prunelora.bench.runner import _load_json, _relearn_target, cell_path, record_cell
from prunelora.data import build_splits
from prunelora.errors import PruneLoRAError
from prunelora.training import TrainConfig

MAX_RETRIES = 1  # a cell whose worker died runs once more in the same invocation


class WorkerLostError(PruneLoRAError, RuntimeError):
    """A cell's worker (process or node) died more often than a retry covers."""


def plan_cells(config: BenchConfig, bundle, original, original_meta: dict, judge: dict,
               device) -> list[tuple[CellTask, tuple[str, int] | None]]:
    """Every cell of the grid, in the sequential runner's order, each with the (scenario, seed) of
    the retrain it waits for (None for a retrain)."""
    retrain_seeds = config.retrain_seeds or config.seeds
    floor_seeds = retrain_seeds if len(retrain_seeds) > 1 else [*retrain_seeds, max(retrain_seeds) + 1]
    planned = []
    for scenario_data in config.scenarios:
        scenario = config.scenario(scenario_data)
        splits = build_splits(bundle, scenario.spec(), val_fraction=config.val_fraction, seed=0,
                              val_indices=original_meta["dataset"].get("val_indices"))
        target = _relearn_target(original, splits, judge["settings"]["relearn"], device)
        spec = splits.spec.to_dict()
        options = config.method_options("retrain") if "retrain" in config.methods else {}
        for seed in floor_seeds:
            planned.append((CellTask(scenario.name, spec, "retrain", options, seed, None, target, True), None))
        for method in config.methods:
            if split_method_key(method)[0] == "retrain" or scenario.name not in config.method_scenarios(method):
                continue
            options = config.method_options(method)
            for i, seed in enumerate(config.seeds):
                reference = (scenario.name, retrain_seeds[i % len(retrain_seeds)])
                planned.append((CellTask(scenario.name, spec, method, options, seed, None, target), reference))
    return planned


def run_cells(executor, config: BenchConfig, out: Path, bundle, original, original_meta: dict, judge: dict,
              device, log=print, counts: dict | None = None) -> None:
    """Run every cell not yet recorded in `out` on `executor`, recording each as it finishes.

    Args:
        executor: a parallel executor (`prunelora.bench.executors`), closed on return.
        config: the bench.
        out: the bench folder.
        bundle: the dataset, as the original was trained on it.
        original: the original model; `original_meta` its meta.
        judge: the evaluation settings (as the runner builds them).
        device: where the cells run (None: the worker's default).
        log: where the driver's lines go.
        counts: `counts["run"]` grows by one per cell run now.

    Raises:
        WorkerLostError: a cell's worker died twice; the recorded cells are kept.
    """
    counts = {} if counts is None else counts
    settings = judge["settings"]
    planned = plan_cells(config, bundle, original, original_meta, judge, device)
    references: dict[tuple[str, int], dict] = {}
    waiting: list[tuple[CellTask, tuple[str, int] | None]] = []
    total, done = len(planned), 0
    for task, needs in planned:
        recorded = _load_json(path) if (path := _path(out, task, settings)).is_file() else None
        if recorded is None:
            waiting.append((task, needs))
            continue
        done += 1
        log(f"{task.label}: done earlier, reusing")
        if task.method == "retrain":
            references[(task.scenario, task.seed)] = recorded["row"]
    if not waiting:
        return
    log(f"cells: {len(waiting)} to run of {total}, on {executor.description}")
    (out / "logs").mkdir(exist_ok=True)
    blob = io.BytesIO()
    torch.save(original, blob)
    recipe = TrainConfig.from_dict(config.train)
    executor.start(WorkerContext(
        token=uuid.uuid4().hex, dataset=config.dataset, data_dir=config.data_dir, augment=recipe.augment,
        subset=config.subset(), val_fraction=config.val_fraction,
        original=blob.getvalue(), original_meta=original_meta,
        judge={k: v for k, v in judge.items() if k not in ("relearn_target", "threads")}, device=device,
        threads=executor.threads, log_dir=str(out / "logs") if executor.shares_disk else None))
    running: dict[tuple, tuple[CellTask, float]] = {}
    attempts: dict[tuple, int] = {}
    durations: list[float] = []
    try:
        while waiting or running:
            for item in list(waiting):  # by plan order: a scenario's retrains first
                task, needs = item
                if len(running) >= executor.slots:
                    break
                if needs is not None and needs not in references:
                    continue
                waiting.remove(item)
                if needs is not None:
                    task = _with_reference(task, references[needs])
                executor.submit(task)
                running[task.key] = (task, time.perf_counter())
            log(_progress(done, total, running, waiting, durations, executor.slots))
            for task, outcome in executor.collect():
                _, started = running.pop(task.key)
                if outcome is None:
                    attempts[task.key] = attempts.get(task.key, 0) + 1
                    if attempts[task.key] > MAX_RETRIES:
                        raise WorkerLostError(
                            f"the worker running {task.label} died {attempts[task.key]} times (killed, or out of "
                            f"memory?); {done} finished cells are recorded in {out}: run the same command to resume")
                    log(f"{task.label}: its worker died; running it again")
                    waiting.insert(0, (task, None))  # its reference, if any, is already in the task
                    continue
                _record(out, task, outcome, settings)
                done += 1
                counts["run"] = counts.get("run", 0) + 1
                durations.append(time.perf_counter() - started)
                if task.method == "retrain":
                    references[(task.scenario, task.seed)] = outcome.payload["row"]
                log(f"{task.label}: finished on {outcome.worker} in {outcome.elapsed_s:.1f} s")
    finally:
        executor.close()


def _path(out: Path, task: CellTask, settings: dict) -> Path:
    return cell_path(out, task.scenario, task.method, task.options, settings, task.seed)


def _with_reference(task: CellTask, reference: dict) -> CellTask:
    return CellTask(task.scenario, task.spec, task.method, task.options, task.seed, reference,
                    task.relearn_target, task.cache_model)


def _record(out: Path, task: CellTask, outcome: CellOutcome, settings: dict) -> None:
    """The driver writes the cell (and a retrain's model) and the worker's log, if it sent one."""
    checkpoint = None
    if outcome.checkpoint is not None:
        checkpoint = torch.load(io.BytesIO(outcome.checkpoint), weights_only=False)  # our worker's bytes
    record_cell(out, _path(out, task, settings), outcome.payload, checkpoint)
    if outcome.log:
        with (out / "logs" / f"worker-{outcome.worker}.log").open("a") as f:
            f.write(outcome.log)


def _progress(done: int, total: int, running: dict, waiting: list, durations: list[float], slots: int) -> str:
    """One line for the grid: cells done / total, the cells running, an estimate of the time left
    (the mean duration of the cells finished so far, spread over the slots)."""
    labels = [task.label for task, _ in running.values()]
    shown = ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
    left = "estimating the time left after the first cell"
    if durations:
        remaining = len(running) + len(waiting)
        seconds = sum(durations) / len(durations) * remaining / max(1, min(slots, remaining))
        left = f"about {_duration(seconds)} left"
    return f"[cells {done}/{total}] running: {shown or 'none'}; {left}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
