"""Calls leave the process's global state as they found it: torch-pruning's op-counter table after
`count_macs`, the warning filters after an Accelerate-driven `fit`."""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.utils.data import TensorDataset
from torch_pruning.utils import op_counter

from prunelora.evaluation.evaluate import count_macs
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
