"""Calls leave the process's global state as they found it: torch-pruning's op-counter table after
`count_macs`, the warning filters after an Accelerate-driven `fit`, the warnings formatter after a
CLI command, matplotlib's backend and pyplot's figures after a report is written."""

from __future__ import annotations

import warnings

import matplotlib
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset
from torch_pruning.utils import op_counter

from prunelora.checkpoint import CheckpointMeta
from prunelora.evaluation.evaluate import count_macs
from prunelora.evaluation.report import write_report
from prunelora.pruning import PrunedAttention
from prunelora.training import TrainConfig, fit
from prunelora.training import loop as training_loop

DDP_NOTICE = "Grad strides do not match bucket view strides"


def test_count_macs_puts_the_op_counter_table_back():
    class Custom(nn.Module):  # a caller's own entry, which the count must neither drop nor keep ours beside
        pass

    def custom_hook(module, inputs, output):  # pragma: no cover - never called here
        module.__flops__ += 0

    theirs = {Custom: custom_hook}
    op_counter.CUSTOM_MODULES_MAPPING = theirs
    try:
        attention = nn.MultiheadAttention(8, 2, batch_first=True)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        assert count_macs(model, torch.zeros(2, 4)) > 0
        pruned = PrunedAttention.from_multihead(attention)

        class Wrap(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.attn = pruned

            def forward(self, x):
                return self.attn(x, x, x)[0]

        assert count_macs(Wrap(), torch.zeros(1, 5, 8)) > 0  # counted through our PrunedAttention hook
        assert op_counter.CUSTOM_MODULES_MAPPING is theirs
        assert theirs == {Custom: custom_hook}
    finally:
        op_counter.CUSTOM_MODULES_MAPPING = {}


class _FakeAccelerator:
    """Stands in for Accelerate on one CPU process; its backward warns as DDP does."""

    device = torch.device("cpu")

    def prepare(self, *objects):
        return objects

    def backward(self, loss: torch.Tensor) -> None:
        warnings.warn(DDP_NOTICE, UserWarning, stacklevel=1)
        loss.backward()


def test_fit_under_accelerate_silences_the_ddp_notice_only_while_it_trains(monkeypatch):
    monkeypatch.setattr(training_loop, "uses_accelerate", lambda device, precision: True)
    monkeypatch.setattr(training_loop, "accelerator", lambda precision, cpu=False: _FakeAccelerator())
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16, 4), torch.randint(0, 3, (16,)))
    model = nn.Linear(4, 3)
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        result = fit(model, data, TrainConfig(epochs=1, batch_size=8, lr=0.1), device="cpu", progress=False)
        assert result.steps == 2
        assert not [w for w in caught if DDP_NOTICE in str(w.message)]  # silenced during the loop
        assert warnings.filters == filters  # ... and the filter is gone after it
        warnings.warn(DDP_NOTICE, UserWarning, stacklevel=1)
        assert [w for w in caught if DDP_NOTICE in str(w.message)]  # the caller still sees it
    assert warnings.filters == before


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
