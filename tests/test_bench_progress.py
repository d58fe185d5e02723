"""The grid's progress line (cells done / total, the cells running, the time left estimated per
kind of cell) for the sequential runner as for the parallel scheduler."""

from __future__ import annotations

import pytest
from helpers import tiny_bench

from prunelora.bench import BenchConfig
from prunelora.bench.progress import GridProgress, cell_kind, progress_line
from prunelora.bench.runner import run_bench


def test_the_estimate_counts_each_kind_at_its_own_mean():
    durations = {"retrain": [300.0], "method": [10.0, 30.0]}
    line = progress_line(4, 8, ["c retrain seed 1"], {"retrain": 1, "method": 3}, durations)
    assert line == "[cells 4/8] running: c retrain seed 1; about 6 min left"  # 300 + 3 x 20 s
    assert progress_line(4, 8, ["a", "b"], {"retrain": 1, "method": 3}, durations, slots=2).endswith("about 3 min left")


def test_a_kind_not_yet_timed_counts_at_the_mean_of_every_cell():
    line = progress_line(1, 3, ["m"], {"method": 2}, {"retrain": [100.0]})
    assert line.endswith("about 3 min left")  # 2 x 100 s


def test_before_any_cell_finished_there_is_no_estimate():
    line = progress_line(0, 5, ["a", "b", "c", "d"], {"retrain": 5}, {}, slots=4)
    assert line == "[cells 0/5] running: a, b, c and 1 more; estimating the time left after the first cell"


def test_grid_progress_counts_reused_and_finished_cells():
    grid = GridProgress({"retrain": 2, "method": 3})
    grid.reused("retrain")
    assert grid.starting("x").startswith("[cells 1/5] running: x; estimating")
    grid.finished("retrain", 100.0)
    assert grid.starting("y") == "[cells 2/5] running: y; about 5 min left"  # 3 methods at the mean of all


@pytest.mark.parametrize(("key", "kind"), [("retrain", "retrain"), ("finetune", "method"), ("prunelora@1ep", "method")])
def test_cell_kind(key, kind):
    assert cell_kind(key) == kind


def test_the_sequential_runner_prints_the_grid_line_before_each_cell(tmp_path):
    config = BenchConfig.from_dict(tiny_bench(probe={"enabled": False}, relearn={"enabled": False}))
    lines: list[str] = []
    run_bench(config, tmp_path / "bench", progress=False, log=lines.append)
    grid = [line for line in lines if line.startswith("[cells")]
    # one retrain seed: a second retrain for the noise floor, then the finetune cell
    assert grid[0] == "[cells 0/3] running: class3 retrain seed 0; estimating the time left after the first cell"
    assert grid[1].startswith("[cells 1/3] running: class3 retrain seed 1; about ")
    assert grid[2].startswith("[cells 2/3] running: class3 finetune seed 0; about ")
    assert lines.index(grid[2]) + 1 == lines.index("class3 finetune seed 0: running")
    lines.clear()
    run_bench(config, tmp_path / "bench", progress=False, log=lines.append)  # resumed: nothing runs
    assert not [line for line in lines if line.startswith("[cells")]
