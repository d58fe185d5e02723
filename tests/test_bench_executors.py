"""`prunelora bench --workers N` and `--executor ray`: the same metrics whichever executor runs
the cells, a worker killed mid-cell, resuming, and the refusals of bad executor settings.

Every run uses `executor.threads: 1`: torch's CPU reductions change with the thread count, so
bit-identity holds between executors at the same threads per cell (which each cell records)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from bench_worker_faults import kill_inside
from helpers import one_error_line, write_yaml

from prunelora.bench import BenchConfig
from prunelora.bench.cellwork import CellOutcome, CellTask
from prunelora.bench.config import EvaluationSettings, MethodPlan
from prunelora.bench.executor_config import ExecutorSettings
from prunelora.bench.executors import InProcessExecutor, ProcessExecutor, RayExecutor
from prunelora.bench.runner import (
    Original,
    noise_floor_rows,
    original_checkpoint,
    run_bench,
    same_threads_wall_time,
)
from prunelora.bench.schedule import WorkerLostError, run_cells
from prunelora.checkpoint import read_meta
from prunelora.evaluation.compare import compare

# measured, not computed: they differ from run to run whatever the executor
TIMING = {"wall_time_s", "time_ratio", "throughput", "peak_memory_mb"}
CELLS = 4  # retrain seeds 0 and 1 (the second for the noise floor), finetune and lora seed 0


def tiny() -> dict:
    return {"name": "tiny", "dataset": "digits", "model": "resnet8",
            "train": {"epochs": 1, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 128, "seed": 0},
            "scenarios": [{"name": "class3", "forget_class": 3}], "seeds": [0],
            "methods": {"retrain": {}, "finetune": {"steps": 2}, "lora": {"steps": 2}},
            "mia": {"max_samples": 200}, "relearn": {"max_steps": 5}, "executor": {"threads": 1}}


def bench_args(config: Path, out: Path, *extra) -> tuple:
    return ("bench", "--config", config, "--out", out, "--no-progress", *extra)


def outcome(out: Path) -> tuple[list[dict], dict[str, dict]]:
    """The rows without timing columns, and the cells (`cell_payloads`)."""
    rows = [{k: v for k, v in row.items() if k not in TIMING}
            for row in json.loads((out / "results.json").read_text())]
    return rows, cell_payloads(out)


def cell_payloads(out: Path) -> dict[str, dict]:
    """Every cell's payload without its timing and time stamp, by its path."""
    cells = {}
    for path in sorted((out / "cells").rglob("*.json")):
        payload = json.loads(path.read_text())
        payload["row"] = {k: v for k, v in payload["row"].items() if k not in TIMING}
        payload.pop("finished")
        payload.pop("record")  # its cost: wall time, memory
        cells[str(path.relative_to(out))] = payload
    return cells


def same(a, b) -> bool:
    """Equal, NaN included (json reads NaN back as NaN, which != itself)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) or a == b


def assert_same_cells(cells: dict[str, dict], expected: dict[str, dict]) -> None:
    """The same cells, each with the same payload (`cell_payloads`), NaN included."""
    assert cells.keys() == expected.keys()
    for name in cells:
        assert same(cells[name], expected[name]), name


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    return write_yaml(tmp_path_factory.mktemp("executors") / "tiny.yaml", tiny())


@pytest.fixture(scope="module")
def sequential(run_cli, config_file, tmp_path_factory) -> Path:
    """The reference: --workers 1, every cell in this process, one after another."""
    out = tmp_path_factory.mktemp("sequential") / "out"
    code, _, stderr = run_cli(*bench_args(config_file, out, "--workers", "1"))
    assert code == 0, stderr
    return out


def test_two_workers_give_the_metrics_of_one_bit_for_bit(run_cli, config_file, sequential, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(*bench_args(config_file, out, "--workers", "2"))
    assert code == 0, stderr
    rows, cells = outcome(out)
    expected_rows, expected_cells = outcome(sequential)
    assert len(cells) == CELLS
    assert_same_cells(cells, expected_cells)
    assert same(rows, expected_rows)
    assert all(row["threads"] == 1 for row in rows)  # recorded, and the same in both
    # the grid's progress line, and the workers' logs in the bench folder
    assert f"[cells 0/{CELLS}] running: class3 retrain seed 0, class3 retrain seed 1" in stdout
    assert f"[cells {CELLS - 1}/{CELLS}]" in stdout
    logs = "".join(p.read_text() for p in (out / "logs").glob("worker-*.log"))
    for label in ("class3 retrain seed 0", "class3 retrain seed 1", "class3 finetune seed 0", "class3 lora seed 0"):
        assert logs.count(f"{label}: finished") == 1, label
    assert "torch threads per cell: 1 (4 cells)" in (out / "report.md").read_text()
    # a retrain computed by a worker is cached by the driver with the meta.json the sequential run
    # writes (result_meta): its measured accuracies and where its original lies
    for seed in (0, 1):
        meta = read_meta(out / "cache" / f"class3-retrain-seed{seed}")
        expected = read_meta(sequential / "cache" / f"class3-retrain-seed{seed}")
        assert meta.metrics and meta.metrics == expected.metrics
        assert meta.to_dict()["original"] == {**expected.to_dict()["original"], "path": str(original_checkpoint(out))}


def test_a_worker_killed_mid_cell_reruns_it_then_the_same_command_resumes(config_file, sequential, tmp_path):
    config = BenchConfig.from_file(config_file)
    out, markers = tmp_path / "out", tmp_path / "kills"
    markers.mkdir()
    lines: list[str] = []
    # finetune's worker dies on every try (as to the OOM killer): it runs once more, dies again,
    # and the run stops, keeping what finished
    dying = ProcessExecutor(2, 1, initializer=kill_inside, initargs=(str(markers), "finetune", 99))
    with pytest.raises(WorkerLostError, match="finetune seed 0 died 2 times.*run the same command to resume"):
        run_bench(config, out, progress=False, log=lines.append, executor=dying)
    assert "class3 finetune seed 0: its worker died; running it again" in lines
    assert len(list(markers.iterdir())) == 2
    recorded = {p: p.read_bytes() for p in (out / "cells").rglob("*.json")}
    stamps = {p: p.stat().st_mtime_ns for p in recorded}
    assert not any("finetune" in str(p) for p in recorded)  # never half-recorded
    assert any("retrain" in str(p) for p in recorded)  # its reference finished before it started
    assert not list(out.rglob("*.tmp*"))

    # the same run again (here in this process): the finished cells are reused, untouched, and
    # every missing one is recorded once
    lines.clear()
    counts: dict = {}
    run_bench(config, out, progress=False, log=lines.append, counts=counts, executor=InProcessExecutor(1))
    assert counts["run"] == CELLS - len(recorded)
    for path, data in recorded.items():
        assert path.read_bytes() == data and path.stat().st_mtime_ns == stamps[path]
    assert "class3 retrain seed 0: done earlier, reusing" in lines
    assert_same_cells(cell_payloads(out), cell_payloads(sequential))


@pytest.fixture(scope="class")
def ray_instance():
    """One local Ray instance for `TestRay`'s runs (each start takes seconds, and its workers import
    torch once), started and shut down by a RayExecutor as a bench without --address does."""
    ray = pytest.importorskip("ray")
    starter = RayExecutor(ExecutorSettings(kind="ray", threads=1))
    starter.connect()
    assert ray.is_initialized()
    yield ray
    starter.close()
    assert not ray.is_initialized()  # the executor that started the instance shuts it down


class TestRay:
    """The Ray executor's runs, on one local instance (`ray_instance`: class-scoped, so it is gone
    before the tests that need none running, such as the unreachable --address)."""

    @pytest.mark.slow  # a local Ray instance takes a while to start
    def test_ray_gives_the_metrics_of_one_worker_bit_for_bit(self, run_cli, config_file, sequential, ray_instance,
                                                              tmp_path):
        # the bench joins the running instance (as it would one its user started) and leaves it up
        out = tmp_path / "out"
        code, _, stderr = run_cli(*bench_args(config_file, out, "--executor", "ray"))
        assert code == 0, stderr
        rows, cells = outcome(out)
        expected_rows, expected_cells = outcome(sequential)
        assert_same_cells(cells, expected_cells)
        assert same(rows, expected_rows)
        # a Ray worker may run on a node that cannot see the bench folder: the driver writes its log
        assert list((out / "logs").glob("worker-*.log"))
        assert ray_instance.is_initialized()  # not started by the bench: not shut down by it

    @pytest.mark.slow  # a local Ray instance takes a while to start
    def test_a_ray_worker_killed_mid_cell_reruns_it(self, config_file, sequential, ray_instance, tmp_path):
        ray = ray_instance
        import bench_worker_faults

        # Ray's workers do not have tests/ on their path: the fault travels by value
        ray.cloudpickle.register_pickle_by_value(bench_worker_faults)
        config = BenchConfig.from_file(config_file)
        out, markers = tmp_path / "out", tmp_path / "kills"
        markers.mkdir()
        lines: list[str] = []
        settings = ExecutorSettings(kind="ray", threads=1)
        executor = RayExecutor(settings, initializer=kill_inside, initargs=(str(markers), "lora", 1))
        executor.connect()
        try:
            run_bench(config, out, progress=False, log=lines.append, executor=executor)
        finally:
            executor.close()
        assert len(list(markers.iterdir())) == 1
        assert "class3 lora seed 0: its worker died; running it again" in lines
        assert_same_cells(cell_payloads(out), cell_payloads(sequential))


def test_one_local_worker_is_todays_runner():
    executor = ExecutorSettings().with_overrides(workers=1)
    assert executor.cell_threads() is None  # torch's default, as before
    from prunelora.bench.executors import make_executor
    assert isinstance(make_executor(executor), InProcessExecutor)


@pytest.mark.parametrize(("settings", "cores", "threads"), [
    ({"workers": 2}, 2, 1), ({"workers": 2}, 16, 8), ({"workers": 3}, 2, 1), ({"workers": 4, "threads": 2}, 2, 2),
    ({"kind": "ray", "cpus_per_task": 4}, 2, 4)])
def test_threads_per_cell_keep_workers_times_threads_within_the_cores(monkeypatch, settings, cores, threads):
    monkeypatch.setattr("prunelora.bench.executor_config.available_cores", lambda: cores)
    assert ExecutorSettings.from_dict(settings).cell_threads() == threads


def test_time_ratio_compares_only_cells_run_with_the_same_threads():
    retrains = [{"wall_time_s": 10.0, "threads": 1}, {"wall_time_s": 30.0, "threads": 1},
                {"wall_time_s": 4.0, "threads": 2}]

    def ratio(row: dict) -> float:
        return compare(row, {}, reference_wall_time_s=same_threads_wall_time(row, retrains))["time_ratio"]

    assert ratio({"wall_time_s": 5.0, "threads": 1}) == 0.25
    assert ratio({"wall_time_s": 2.0, "threads": 2}) == 0.5
    assert math.isnan(ratio({"wall_time_s": 2.0, "threads": 4}))
    # the noise floor's rows too: the later retrain over those run with its own threads
    pair = [{"seed": 0, "wall_time_s": 10.0, "threads": 1}, {"seed": 1, "wall_time_s": 6.0, "threads": 2}]
    (floor,) = noise_floor_rows(pair, timed_by=retrains)
    assert floor["time_ratio"] == 1.5


class _PoolThatBreaks:
    """A fake local pool: whenever the cell of `deadly` runs, the pool breaks and every cell it held is
    lost (as a ProcessPoolExecutor whose worker was SIGKILLed); any other cell finishes."""

    parallel, shares_disk, threads, description = True, True, 1, "a fake pool"

    def __init__(self, slots: int, deadly: str) -> None:
        self.slots, self.deadly, self.held, self.batches = slots, deadly, [], []

    def start(self, context) -> None:
        pass

    def submit(self, task) -> None:
        self.held.append(task)

    def collect(self):
        held, self.held = self.held, []
        self.batches.append(sorted(t.method.key for t in held))
        if any(t.method.key == self.deadly for t in held):
            return [(t, None) for t in held]
        return [(t, CellOutcome({"row": {"method": t.method.key}}, None, "fake")) for t in held]

    def close(self) -> None:
        pass


def test_cells_lost_together_rerun_alone_so_only_the_dying_one_is_refused(monkeypatch, tmp_path):
    import torch

    settings = EvaluationSettings(attacks=())
    tasks = [CellTask("s", {}, MethodPlan(name, name, {}, ("s",)), 0, None) for name in ("a", "bad", "c")]
    monkeypatch.setattr("prunelora.bench.schedule.plan_cells", lambda *args: tasks)
    config = SimpleNamespace(dataset="digits", data_dir=None, val_fraction=0.1)
    plan = SimpleNamespace(recipe=SimpleNamespace(augment=False), subset=None, evaluation=settings)
    original = Original(torch.nn.Linear(1, 1), None, tmp_path)
    pool, lines = _PoolThatBreaks(2, deadly="bad"), []
    with pytest.raises(WorkerLostError, match="s bad seed 0 died 2 times"):
        run_cells(pool, config, plan, tmp_path, None, original, None, log=lines.append)
    # a and bad ran together and were lost together; then each ran alone, in plan order: a finished,
    # bad died again (its second death, alone: surely its own) and the run stopped
    assert pool.batches == [["a", "bad"], ["a"], ["bad"]]
    recorded = sorted(p.parent.name.split("-")[0] for p in (tmp_path / "cells").rglob("*.json"))
    assert "a" in recorded and "bad" not in recorded
    assert "s a seed 0: its worker died; running it again" in lines


# --------------------------------------------------------------------------- refusals, one line each


@pytest.mark.parametrize(("extra", "needle"), [
    (("--workers", "0"), "--workers 0 must be a positive integer"),
    (("--workers", "two"), "--workers 'two' must be a positive integer"),
    (("--address", "10.0.0.1:6379"), "is for the ray executor"),
    (("--executor", "ray", "--address", "no-port"), "'no-port' is not a Ray address"),
    (("--executor", "ray", "--workers", "2"), "--workers 2 is for the local executor"),
    (("--executor", "dask"), "invalid choice: 'dask'"),
])
def test_bad_executor_flags_are_one_line(run_cli, config_file, tmp_path, extra, needle):
    out = tmp_path / "out"
    line = one_error_line(run_cli(*bench_args(config_file, out, *extra)), "bench")
    assert needle in line
    assert not out.exists()


def test_ray_not_installed_is_one_line(run_cli, config_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as without the package
    out = tmp_path / "out"
    line = one_error_line(run_cli(*bench_args(config_file, out, "--executor", "ray")), "bench")
    assert "needs the ray package" in line and "pip install 'prunelora[ray]'" in line
    assert not out.exists()


def test_an_address_where_no_cluster_answers_is_one_line(run_cli, config_file, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    line = one_error_line(run_cli(*bench_args(config_file, out, "--executor", "ray", "--address",
                                              "127.0.0.1:1")), "bench")
    assert "--address '127.0.0.1:1': no Ray cluster answers there" in line
    assert not out.exists()


@pytest.mark.parametrize(("section", "needle"), [
    ({"workers": 0}, "executor.workers 0 must be a positive integer"),
    ({"kind": "slurm"}, "executor kind 'slurm' is unknown; accepted: local, ray"),
    ({"cores": 2}, "unknown key 'cores' in executor"),
    ({"threads": 0}, "executor.threads 0 must be a positive integer"),
    ({"gpus_per_task": -1}, "gpus_per_task -1 must be a number >= 0"),
    ("fast", "executor must be a mapping"),
])
def test_bad_executor_section_is_one_line(run_cli, tmp_path, section, needle):
    data = tiny() | {"executor": section}
    config = write_yaml(tmp_path / "bad.yaml", data)
    line = one_error_line(run_cli(*bench_args(config, tmp_path / "out")), "bench")
    assert needle in line and "bad.yaml" in line


def test_workers_under_torchrun_are_one_line(run_cli, config_file, tmp_path, monkeypatch):
    monkeypatch.setattr("prunelora.cli.bench.world_size", lambda: 2)  # as in each torchrun process
    line = one_error_line(run_cli(*bench_args(config_file, tmp_path / "out", "--workers", "2")), "bench")
    assert "torchrun" in line and "do not combine" in line


class _FakePool:
    """A process pool that is broken from its first submission on (a worker died while idle), or
    healthy: futures resolve at once to the task's name."""

    def __init__(self, broken: bool) -> None:
        self.broken, self.submitted, self.shut = broken, [], False

    def submit(self, fn, context, task):
        from concurrent import futures
        from concurrent.futures.process import BrokenProcessPool

        if self.broken:
            raise BrokenProcessPool("a child process terminated abruptly")
        future = futures.Future()
        future.set_result(task)
        self.submitted.append(task)
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        self.shut = True


def test_a_pool_found_broken_at_submission_hands_the_cell_to_a_fresh_pool(monkeypatch):
    """A worker can die between two collects; the next submission then meets a broken pool. The
    cell never ran: it goes to a fresh pool, is not counted as lost, and nothing is left pending."""
    from concurrent import futures
    from concurrent.futures.process import BrokenProcessPool

    pools = [_FakePool(broken=True), _FakePool(broken=False)]
    executor = ProcessExecutor(2, 1)
    monkeypatch.setattr(executor, "start", lambda context: setattr(executor, "_pool", pools.pop(0)))
    first = _FakePool(broken=True)
    executor.submit("cell-a")  # no cell pending: straight to the fresh pool
    assert executor._pending and not executor._deferred
    assert executor.collect() == [("cell-a", "cell-a")]
    # with a cell still held by the broken pool, the new one waits for that loss to be collected
    held = futures.Future()
    held.set_exception(BrokenProcessPool("the worker holding cell-b died"))
    executor._pool, executor._pending = first, {held: "cell-b"}
    pools.append(_FakePool(broken=False))
    executor.submit("cell-c")
    assert executor._deferred == ["cell-c"]
    assert executor.collect() == [("cell-b", None)]  # cell-b was lost with its worker ...
    assert executor._deferred == [] and list(executor._pending.values()) == ["cell-c"]  # ... cell-c was not
    assert executor.collect() == [("cell-c", "cell-c")]
    assert first.shut and not pools  # the broken pool was shut down and every fresh pool used
