"""GA (gradient ascent): maximise the cross-entropy on D_f; D_r is never looked at.

Thudi et al., "Unrolling SGD: Understanding Factors Influencing Machine Unlearning" (EuroS&P 2022);
Graves et al., "Amnesiac Machine Learning" (AAAI 2021). It is the forgetting half of NegGrad+
(`neggrad-plus`) alone: it forgets fast and, unchecked, destroys the rest of the model too, which is
why its published budgets are tiny (a few epochs at lr 1e-4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from prunelora.methods.base import Capabilities, TrainingOptions, option, register_method


@dataclass
class GradientAscentConfig(TrainingOptions):
    """Defaults: the GA baseline of the authors' public code of "Model Sparsity Can Simplify Machine
    Unlearning" (Jia et al., NeurIPS 2023; OPTML-Group/Unlearn-Sparse) and of SalUn (Fan et al.,
    ICLR 2024; OPTML-Group/Unlearn-Saliency), both READMEs: `--unlearn GA --unlearn_epochs 5
    --unlearn_lr 0.0001`, with those codebases' shared recipe (SGD, momentum 0.9, weight decay 5e-4,
    batch 256; their step decay at epochs 91/136 never fires within 5 epochs, so the lr is constant).
    An epoch is one pass over D_f.
    """

    epochs: float = option(TrainingOptions, "epochs", 5)
    batch_size: int = option(TrainingOptions, "batch_size", 256)
    optimizer: str = option(TrainingOptions, "optimizer", "sgd")
    lr: float = option(TrainingOptions, "lr", 1e-4)
    momentum: float = option(TrainingOptions, "momentum", 0.9)
    weight_decay: float = option(TrainingOptions, "weight_decay", 5e-4)


def ascent_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """−CE on a D_f batch: minimising it ascends the forget set's loss."""
    return -F.cross_entropy(model(x), y)


@register_method("ga", GradientAscentConfig, "gradient ascent on D_f: maximise its cross-entropy (Thudi et al. 2022)",
                 capabilities=Capabilities(needs_forget_samples=True, trains=True, uses_pruning=False,
                                           uses_lora=False, from_scratch=False))
def gradient_ascent(model, splits, config: GradientAscentConfig, ctx):
    return model, config.train(model, splits.forget, ctx, "ga", loss_fn=ascent_loss)
