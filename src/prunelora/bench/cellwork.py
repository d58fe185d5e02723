"""One cell in a worker process (local or on a Ray node): what it is sent and what it sends back.

A worker writes no result: it computes the cell's payload (and, for a retrain, the model) and
returns them; the driver records them. So a worker that dies leaves nothing half-written, and a
cluster's nodes need no shared disk for results. Each process loads the original and the dataset
once, the first time it is given a context, and builds a scenario's splits once.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from prunelora.api import apply_train_subset
from prunelora.bench.config import EvaluationSettings, MethodPlan
from prunelora.bench.runner import Cell, Original, compute_cell
from prunelora.checkpoint import CheckpointMeta
from prunelora.data import ForgetSpec, build_splits, load_dataset


@dataclass(frozen=True)
class CellTask:
    """One (scenario, method, seed) cell to run: all it needs beyond the shared context."""

    scenario: str
    spec: dict  # the scenario's forget set, `ForgetSpec.to_dict()` (a file's indices already read)
    method: MethodPlan  # its key (maybe NAME@LABEL) names the cell and the row's method
    seed: int
    relearn_target: float | None
    cache_model: bool = False  # a retrain: its model is saved too
    reference_seed: int | None = None  # a method cell: the seed of its retrain (the CKA reference)
    reference: bytes | None = field(default=None, repr=False, compare=False)  # that retrain's model, `torch.save`d by the driver once it is recorded

    @property
    def key(self) -> tuple[str, str, int]:
        return self.scenario, self.method.key, self.seed

    @property
    def label(self) -> str:
        return f"{self.scenario} {self.method.key} seed {self.seed}"

    @property
    def cell(self) -> Cell:
        return Cell(self.scenario, self.method, self.seed, cache_model=self.cache_model)


@dataclass(frozen=True)
class WorkerContext:
    """What every cell of a bench shares: the data recipe, the original and how to evaluate."""

    token: str  # identifies the context: a process loads it once
    dataset: str
    data_dir: str | None
    augment: bool
    subset: dict | None
    val_fraction: float
    original: bytes  # the original model, `torch.save`d
    original_meta: CheckpointMeta
    original_path: str  # the driver's checkpoint folder (recorded in a retrain's meta.json)
    settings: EvaluationSettings  # attacks, MIA options, probe and relearning (no relearn target)
    device: str | None
    threads: int | None
    log_dir: str | None = None  # local workers append to their own log here; None: return it


@dataclass
class CellOutcome:
    payload: dict
    checkpoint: bytes | None  # a retrain's (model, meta), `torch.save`d
    worker: str  # e.g. "host-1234"
    log: str = ""
    elapsed_s: float = 0.0
    extra: dict = field(default_factory=dict)


_LOADED: dict = {}  # this process's context: {"token", "original", "bundle", "splits": {scenario: Splits}}


def init_worker(threads: int | None) -> None:
    """A local worker's start: Ctrl-C is the driver's to handle (it stops the workers), and the
    torch thread count is fixed before any work."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if threads is not None:
        torch.set_num_threads(threads)


def worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def run_task(context: WorkerContext, task: CellTask) -> CellOutcome:
    """Compute one cell in this process. Its printed output and warnings go to the worker's log.

    Args:
        context: the bench's shared context (loaded once per process).
        task: the cell.

    Returns:
        The cell's payload, a retrain's model (serialized) and the cell's log text.
    """
    start = time.perf_counter()
    name = worker_name()
    log_file = Path(context.log_dir) / f"worker-{name}.log" if context.log_dir else None
    _append(log_file, f"{time.strftime('%H:%M:%S')} {task.label}: started (threads {context.threads})\n")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        original, splits = _loaded(context, task)
        source = Original(original, context.original_meta, Path(context.original_path))
        reference = None if task.reference is None else torch.load(io.BytesIO(task.reference), weights_only=False)
        payload, checkpoint = compute_cell(task.cell, source, splits, context.settings, task.relearn_target,
                                           context.device, False, threads=context.threads, reference_model=reference)
    elapsed = time.perf_counter() - start
    text = buffer.getvalue() + f"{time.strftime('%H:%M:%S')} {task.label}: finished in {elapsed:.1f} s\n"
    _append(log_file, text)
    data = None
    if checkpoint is not None:
        blob = io.BytesIO()
        model, meta = checkpoint
        torch.save((model.cpu(), meta), blob)
        data = blob.getvalue()
    return CellOutcome(payload, data, name, "" if log_file else text, elapsed)


def run_task_after_setup(context: WorkerContext, task: CellTask, setup: tuple | None = None) -> CellOutcome:
    """`run_task`, after `setup` = (function, args) has run once in this process (a Ray worker has
    no initializer of its own: the tests use this to stop one mid-cell)."""
    if setup is not None and _LOADED.get("setup") is None:
        function, args = setup
        function(*args)
        _LOADED["setup"] = True
    return run_task(context, task)


def _append(path: Path | None, text: str) -> None:
    if path is not None:
        with path.open("a") as f:
            f.write(text)


def _loaded(context: WorkerContext, task: CellTask):
    """The original and the task's scenario splits, loaded once per process and context."""
    if _LOADED.get("token") != context.token:
        setup = _LOADED.get("setup")
        _LOADED.clear()
        _LOADED["setup"] = setup
        original = torch.load(io.BytesIO(context.original), weights_only=False)  # our own driver's bytes
        bundle = apply_train_subset(load_dataset(context.dataset, data_dir=context.data_dir,
                                                 augment=context.augment), context.subset)
        _LOADED.update(token=context.token, original=original, bundle=bundle, splits={})
    splits = _LOADED["splits"].get(task.scenario)
    if splits is None:
        # as the driver builds them: the original's recorded validation images, split seed 0
        splits = build_splits(_LOADED["bundle"], ForgetSpec.from_dict(task.spec),
                              val_fraction=context.val_fraction, seed=0,
                              val_indices=context.original_meta.dataset.val_indices)
        _LOADED["splits"][task.scenario] = splits
    return _LOADED["original"], splits
