"""Calls leave the process's global state as they found it: the warnings formatter after a CLI
command, matplotlib's backend and pyplot's figures after a report is written."""

from __future__ import annotations

import warnings

import matplotlib
import pytest

from prunelora.checkpoint import CheckpointMeta
from prunelora.evaluation.report import write_report


def test_cli_restores_the_warnings_formatter(run_cli):
    before = warnings.formatwarning
    code, _, _ = run_cli("methods")
    assert code == 0
    assert warnings.formatwarning is before


def test_cli_restores_the_warnings_formatter_after_a_refusal(run_cli, tmp_path):
    before = warnings.formatwarning
    code, _, _ = run_cli("info", tmp_path / "missing")
    assert code == 2
    assert warnings.formatwarning is before


def _row(method: str, seed: int, gap: float) -> dict:
    return {"scenario": "s", "method": method, "seed": seed, "reference_seed": 0, "UA": 90.0 + seed, "RA": 99.0,
            "TA": 95.0, "MIA": 80.0, "Avg.Gap": gap, "Probe.Gap": gap, "time_ratio": 0.5, "wall_time_s": 1.0}


def test_write_report_switches_no_backend_and_leaves_no_figure(tmp_path):
    pyplot = pytest.importorskip("matplotlib.pyplot")
    backend = matplotlib.get_backend()
    matplotlib.use("svg")  # a caller's backend other than Agg: the report must not switch it
    try:
        figures = pyplot.get_fignums()
        _write_a_report(tmp_path)
        assert matplotlib.get_backend() == "svg"
        assert pyplot.get_fignums() == figures
    finally:
        matplotlib.use(backend)


def _write_a_report(tmp_path) -> None:
    rows = [_row("retrain", 0, 0.0), _row("finetune", 0, 3.0), _row("finetune", 1, 4.0)]
    losses = {"forget": [0.1, 0.5, 2.0], "test": [0.2, 0.3, 1.0]}
    cells = {("s", r["method"], r["seed"]): {"row": r, "losses": losses} for r in rows}
    config = {"name": "t", "dataset": "digits", "model": "resnet8"}
    original = CheckpointMeta(kind="original", model={"name": "resnet8"}, metrics={"test": 90.0})
    report = write_report(tmp_path, rows, cells, config, original, "prunelora bench")
    assert report.is_file()
    assert (tmp_path / "plots" / "s-hiding.png").read_bytes()[:4] == b"\x89PNG"
