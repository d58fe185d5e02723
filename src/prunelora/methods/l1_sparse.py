"""l1-sparse: fine-tune on D_r with an L1 penalty whose weight decays linearly to zero.

Jia, Liu, Ram, Yao, Liu, Liu, Sharma and Liu, "Model Sparsity Can Simplify Machine Unlearning"
(NeurIPS 2023), "sparsity-aware unlearning": minimise CE(D_r) + γ_t·‖θ‖₁ over every trainable
parameter, with γ_t falling linearly from `l1_gamma` to 0, so the run first pushes the weights towards
sparsity (which the paper shows narrows the gap to retraining) and then repairs accuracy with plain
fine-tuning. D_f is never used.

The schedule is per optimizer step (`l1_weight`), so that budgets in steps decay too; the authors'
code lowers γ once per epoch, as γ·(1 − epoch/epochs), and so never reaches 0. The weights actually
used are in the record as `l1_weights` (one per step).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from prunelora.errors import InvalidInputError
from prunelora.methods.base import Capabilities, register_method
from prunelora.methods.common import OptmlRecipe


@dataclass
class L1SparseConfig(OptmlRecipe):
    """Defaults: the ℓ1-sparse baseline as the authors' and SalUn's public code run it
    (OPTML-Group/Unlearn-Sparse and OPTML-Group/Unlearn-Saliency READMEs, `--unlearn FT_prune
    --unlearn_epochs 10 --unlearn_lr 0.01`): SGD, momentum 0.9, weight decay 5e-4, batch 256,
    constant lr. Neither README fixes γ (the paper tunes it per setting); `l1_gamma` 1e-4 is the value
    used for CIFAR-10 and SVHN in the baseline scripts of Scissorhands (Wu and Harandi, ECCV 2024;
    JingWu321/Scissorhands), which re-run SalUn's code.
    """

    l1_gamma: float = field(default=1e-4, metadata={"help": (
        "the L1 penalty's weight at the first step, decaying linearly to 0 at the last")})


    def validate(self) -> None:
        if not (math.isfinite(self.l1_gamma) and self.l1_gamma >= 0):
            raise InvalidInputError(f"l1_gamma {self.l1_gamma} must be a finite number >= 0")
        super().validate()


def l1_weight(step: int, total: int, gamma: float) -> float:
    """The L1 weight at optimizer step `step` (0-based) of `total`: `gamma` at the first step,
    falling linearly to exactly 0 at the last (a one-step run uses `gamma`)."""
    if total < 1 or not 0 <= step < total:
        raise ValueError(f"step {step} is outside a run of {total} steps")
    if total == 1:
        return gamma
    return gamma * (1.0 - step / (total - 1))


def l1_norm(params: Iterable[nn.Parameter]) -> torch.Tensor:
    """‖θ‖₁ over `params`."""
    return torch.stack([p.abs().sum() for p in params]).sum()


def l1_sparse_loss(params: list[nn.Parameter], total: int, gamma: float, weights_used: list[float]):
    """`loss(model, x, y) = CE + l1_weight(step)·‖params‖₁`; appends each step's weight to `weights_used`.

    `fit` calls the loss once per optimizer step, so the number of weights used so far is the step.
    """
    criterion = nn.CrossEntropyLoss()

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        weight = l1_weight(len(weights_used), total, gamma)
        weights_used.append(weight)
        loss = criterion(model(x), y)
        return loss + weight * l1_norm(params) if weight > 0 else loss

    return loss_fn


@register_method("l1-sparse", L1SparseConfig,
                 "fine-tune on D_r with a linearly decaying L1 penalty (Jia et al. 2023)",
                 capabilities=Capabilities(needs_forget_samples=False, trains=True, uses_pruning=False,
                                           uses_lora=False, from_scratch=False))
def l1_sparse(model, splits, config: L1SparseConfig, ctx):
    total = config.train_config().total_steps(len(splits.retain))
    params = [p for p in model.parameters() if p.requires_grad]
    weights_used: list[float] = []
    record = config.train(model, splits.retain, ctx, "l1-sparse",
                          loss_fn=l1_sparse_loss(params, total, config.l1_gamma, weights_used))
    record.details["l1_weights"] = weights_used
    return model, record
