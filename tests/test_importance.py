"""The one Ln importance and the one gradient accumulator, on tensors made here: what they compute,
and that they leave the model as they found it."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from prunelora.adapters import lora_targets
from prunelora.pruning import (
    LnImportance,
    PrunedAttention,
    fisher_diagonal,
    loss_gradient,
    select_params,
)
from prunelora.pruning.criteria import make_criterion


def _data(n: int = 10) -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 4, generator=gen), torch.randint(0, 3, (n,), generator=gen))


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def test_ln_importance_of_a_weight_is_its_row_norm_and_of_heads_the_same_for_both_forms():
    weight = torch.tensor([[3.0, -4.0], [1.0, 0.0]])
    assert torch.equal(LnImportance(2)(weight), torch.tensor([5.0, 1.0]))
    assert torch.equal(LnImportance(1)(weight), torch.tensor([7.0, 1.0]))
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    split = PrunedAttention.from_multihead(mha)
    packed = mha.in_proj_weight.detach().view(3, 2, 4, 8)  # (q/k/v, head, row, column)
    expected = packed.transpose(0, 1).reshape(2, -1).norm(dim=1)
    assert torch.allclose(LnImportance(2).head_scores("attn", mha), expected)
    assert torch.allclose(LnImportance(2).head_scores("attn", split), expected)
    assert make_criterion("l2").head_scores("attn", mha).equal(LnImportance(2).head_scores("attn", mha))


def test_fisher_diagonal_is_the_mean_squared_batch_gradient_and_restores_the_model():
    model, data = _model(), _data(10)
    model.train()
    model[0].weight.requires_grad_(False)
    params = dict(model.named_parameters())
    fisher = fisher_diagonal(model, data, params, batch_size=4, device="cpu")
    assert model.training and not model[0].weight.requires_grad  # mode and flags restored
    assert all(p.grad is None for p in model.parameters())  # .grad never written
    model.eval()
    model[0].weight.requires_grad_(True)  # a frozen parameter is estimated too
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    for start in (0, 4, 8):
        x, y = data.tensors[0][start:start + 4], data.tensors[1][start:start + 4]
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(params.values()))
        for name, grad in zip(params, grads, strict=True):
            expected[name] += grad ** 2 / 3
    assert all(torch.allclose(fisher[n], expected[n], atol=1e-7) for n in params)


def test_loss_gradient_is_the_gradient_of_the_mean_loss_over_all_the_data():
    model, data = _model(), _data(10)
    params = {n: p for n, p in model.named_parameters() if n.startswith("3.")}
    gradient = loss_gradient(model, data, params, batch_size=3, device="cpu")
    assert set(gradient) == {"3.weight", "3.bias"}
    model.eval()
    full = torch.autograd.grad(F.cross_entropy(model(data.tensors[0]), data.tensors[1]), list(params.values()))
    assert all(torch.allclose(gradient[n], g, atol=1e-6) for n, g in zip(params, full, strict=True))


def test_pruning_and_lora_select_with_the_same_rules():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.mlp = nn.Linear(8, 8)
            self.head = nn.Linear(8, 3)

    model = Block()
    pruned = [p.name for p in select_params(model, ("mha", "linear"))]
    adapted = lora_targets(model, ("mha", "linear"), None)
    assert pruned == ["attn", "attn.out_proj", "mlp"]  # the head is never selected by default
    assert adapted == ["attn", "mlp"]  # adapting the attention adapts its out_proj already
    assert [p.name for p in select_params(model, ("linear",), pattern="mlp|proj")] == \
        lora_targets(model, ("linear",), "mlp|proj") == ["attn.out_proj", "mlp"]
