"""Where cells run: in this process, in local worker processes, or as Ray tasks.

Every executor has the same small interface, which `prunelora.bench.schedule` drives:
`parallel` (False: the runner runs the cells itself, one after another; True: it calls
`run_cells`, which drives the rest), `threads` (torch threads
per cell), `slots` (cells at once), `shares_disk` (its workers can append to logs in the bench folder), `start(context)`, `submit(task)`, `collect()` (finished cells;
a cell whose worker died comes back with outcome None, to be run again) and `close()`.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import socket
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool

from prunelora.bench.cellwork import (
    CellOutcome,
    CellTask,
    WorkerContext,
    init_worker,
    run_task,
    run_task_after_setup,
)
from prunelora.bench.executor_config import ExecutorSettings
from prunelora.bench.schedule import run_cells
from prunelora.errors import InvalidInputError

Finished = list[tuple[CellTask, CellOutcome | None]]
# a local Ray instance's shared memory: the original and the retrains' models pass through it
# (Ray's default, 30% of the machine's memory, is far more than a bench needs)
LOCAL_OBJECT_STORE_BYTES = 512 * 1024**2


class InProcessExecutor:
    """Today's behaviour: the runner runs every cell in this process, one after another."""

    parallel = False

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self.description = "this process, one cell at a time"

    def close(self) -> None:
        pass


class _Parallel:
    """What the parallel executors share: the runner hands them the missing cells."""

    parallel = True

    def run_cells(self, config, plan, out, bundle, original, device, log, counts: dict) -> None:
        """Run every cell not yet recorded in `out` (see `prunelora.bench.schedule.run_cells`)."""
        run_cells(self, config, plan, out, bundle, original, device, log, counts)


def _start_worker(threads: int | None, initializer: Callable | None, initargs: tuple) -> None:
    init_worker(threads)
    if initializer is not None:
        initializer(*initargs)


class ProcessExecutor(_Parallel):
    """`workers` cells at once, each in its own process on this machine (spawned, not forked:
    torch's OpenMP threads do not survive a fork). A worker that dies breaks the pool: every cell
    it held comes back as lost and a fresh pool takes the next submissions.

    `initializer(*initargs)` runs at each worker's start, after the thread count is set (as for
    `concurrent.futures.ProcessPoolExecutor`; the tests use it to stop a worker mid-cell).
    """

    shares_disk = True

    def __init__(self, workers: int, threads: int | None, initializer: Callable | None = None,
                 initargs: tuple = ()) -> None:
        self.workers, self.threads, self.slots = workers, threads, workers
        self.description = ExecutorSettings(workers=workers, threads=threads).describe()
        self._init = (threads, initializer, initargs)
        self._pool: futures.ProcessPoolExecutor | None = None
        self._context: WorkerContext | None = None
        self._pending: dict[futures.Future, CellTask] = {}
        self._deferred: list[CellTask] = []  # submitted to a pool found broken: for the next pool

    def start(self, context: WorkerContext) -> None:
        self._context = context
        self._pool = futures.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_start_worker, initargs=self._init)

    def submit(self, task: CellTask) -> None:
        if self._pool is None:  # the first submission, or the first after a worker died
            self.start(self._context)
        try:
            self._pending[self._pool.submit(run_task, self._context, task)] = task
        except BrokenProcessPool:
            # a worker died since the last collect: the cells the pool held come back lost from the
            # next collect; this one never ran, so it waits for the fresh pool (no death counted)
            if self._pending:
                self._deferred.append(task)
            else:
                self._stop()
                self.submit(task)

    def collect(self) -> Finished:
        done, _ = futures.wait(self._pending, return_when=futures.FIRST_COMPLETED)
        finished: Finished = []
        broken = False
        for future in done:
            task = self._pending.pop(future)
            try:
                finished.append((task, future.result()))
            except BrokenProcessPool:
                finished.append((task, None))
                broken = True
        if broken:  # every cell still held by the broken pool is lost with it
            finished += [(task, None) for task in self._pending.values()]
            self._stop()
        if self._deferred and (broken or not self._pending):
            self._stop()  # (a no-op when the break was seen above)
            deferred, self._deferred = self._deferred, []
            for task in deferred:
                self.submit(task)
        return finished

    def _stop(self) -> None:
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        if not self._pending:  # idle workers: a plain shutdown (which also frees the pool's locks)
            pool.shutdown(wait=True)
            return
        # a running cell is not cancellable: its process is ended (the driver records nothing of it)
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=10)
        self._pending.clear()

    def close(self) -> None:
        self._stop()


class RayExecutor(_Parallel):
    """Cells as Ray tasks, each asking `cpus_per_task` CPUs and `gpus_per_task` GPUs; the cluster
    decides how many run at once. Without an address a small local Ray instance is started (and
    stopped by `close`). `initializer(*initargs)` runs once in each Ray worker process before
    its first cell (as `ProcessExecutor`'s)."""

    shares_disk = False  # a node may not see the bench folder: logs come back with the results

    def __init__(self, settings: ExecutorSettings, initializer: Callable | None = None,
                 initargs: tuple = ()) -> None:
        self.settings = settings
        self._setup = (initializer, initargs) if initializer is not None else None
        self.threads = settings.cell_threads()
        self.description = settings.describe()
        self.slots = 1
        self._ray = None
        self._started_here = False
        self._remote = None
        self._context_ref = None
        self._pending: dict = {}

    def connect(self) -> None:
        """Import ray and join (or start) the cluster: a missing install or an unreachable
        address is refused in one line, before anything is trained."""
        try:
            import ray
        except ImportError:
            raise InvalidInputError("--executor ray needs the ray package, which is not installed; "
                                    "install it with: pip install 'prunelora[ray]'") from None
        self._ray = ray
        if not ray.is_initialized():
            address = self.settings.address
            if address not in (None, "auto"):
                _check_reachable(address)
            try:
                if address is None:
                    # small on purpose: a local instance for this machine (and the tests), no dashboard
                    ray.init(num_cpus=max(2, self.settings.cpus_per_task), include_dashboard=False,
                             log_to_driver=False, configure_logging=False,
                             object_store_memory=LOCAL_OBJECT_STORE_BYTES)
                else:
                    ray.init(address=address, log_to_driver=False, configure_logging=False)
            except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise InvalidInputError(f"--address {address!r}: cannot join a Ray cluster there ({reason}); "
                                        "accepted: HOST:PORT or ray://HOST:PORT of a running cluster's head, "
                                        "or no --address for a local instance") from None
            self._started_here = True
        resources = ray.cluster_resources()
        if self.settings.gpus_per_task and resources.get("GPU", 0) < self.settings.gpus_per_task:
            self.close()
            raise InvalidInputError(f"executor gpus_per_task {self.settings.gpus_per_task:g}: the Ray cluster "
                                    f"has {resources.get('GPU', 0):g} GPU(s); set gpus_per_task: 0 to run on CPUs")
        if resources.get("CPU", 0) < self.settings.cpus_per_task:
            self.close()
            raise InvalidInputError(f"executor cpus_per_task {self.settings.cpus_per_task}: the Ray cluster has "
                                    f"{resources.get('CPU', 0):g} CPU(s)")
        per_cell = [resources.get("CPU", 0) / self.settings.cpus_per_task]
        if self.settings.gpus_per_task:
            per_cell.append(resources.get("GPU", 0) / self.settings.gpus_per_task)
        self.slots = max(1, int(min(per_cell)))

    def start(self, context: WorkerContext) -> None:
        if self._ray is None:
            self.connect()
        ray = self._ray
        # retries are the scheduler's (the same for every executor): Ray itself does not retry
        self._remote = ray.remote(run_task_after_setup).options(num_cpus=self.settings.cpus_per_task,
                                                    num_gpus=self.settings.gpus_per_task, max_retries=0)
        self._context_ref = ray.put(context)  # sent once, shared by every task

    def submit(self, task: CellTask) -> None:
        self._pending[self._remote.remote(self._context_ref, task, self._setup)] = task

    def collect(self) -> Finished:
        ray = self._ray
        done, _ = ray.wait(list(self._pending), num_returns=1)
        finished: Finished = []
        for ref in done:
            task = self._pending.pop(ref)
            try:
                finished.append((task, ray.get(ref)))
            except ray.exceptions.RayTaskError as exc:  # the cell itself failed: its error, as raised
                raise (exc.cause if isinstance(exc.cause, Exception) else exc) from None
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                    ray.exceptions.ObjectLostError, ray.exceptions.OwnerDiedError,
                    ray.exceptions.TaskCancelledError):
                finished.append((task, None))  # the worker or its node died: the cell runs again
        return finished

    def close(self) -> None:
        ray = self._ray
        if ray is None:
            return
        for ref in self._pending:
            ray.cancel(ref, force=True)
        self._pending.clear()
        if self._started_here and ray.is_initialized():
            ray.shutdown()
        self._started_here = False


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse an address nothing listens on at once (ray.init would retry it for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise InvalidInputError(f"--address {address!r}: no Ray cluster answers there ({exc.strerror or exc}); "
                                "accepted: HOST:PORT or ray://HOST:PORT of a running cluster's head, or no "
                                "--address for a local instance") from None


def make_executor(settings: ExecutorSettings) -> InProcessExecutor | ProcessExecutor | RayExecutor:
    """The executor the settings describe (a Ray one is connected at once, so that a bad address or
    a missing install is refused before any work).

    Args:
        settings: the checked `executor:` settings with the command line's overrides.

    Returns:
        An executor; the caller closes it.

    Raises:
        InvalidInputError: ray is not installed, or its cluster cannot be joined.
    """
    if settings.kind == "ray":
        executor = RayExecutor(settings)
        executor.connect()
        return executor
    if settings.workers == 1:
        return InProcessExecutor(settings.cell_threads())
    return ProcessExecutor(settings.workers, settings.cell_threads())
