"""Selective Synaptic Dampening (Foster, Schoepf and Brintrup, "Fast Machine Unlearning Without
Retraining Through Selective Synaptic Dampening", AAAI 2024, arXiv 2308.07707).

No training at all: two diagonal Fisher importances, the mean over batches of the squared
gradient of the cross-entropy, one over the full training data D = D_r ∪ D_f and one over D_f.
A parameter θ_i is selected when it matters much more to D_f than to D,
    imp_f[i] > alpha · imp_full[i]            (alpha: `selection_weighting`),
and is then multiplied by
    beta[i] = min(lambda · imp_full[i] / imp_f[i], 1)    (lambda: `dampening_constant`),
so weights are only ever dampened towards zero, never grown. Importances are computed in eval
mode (as the reference), so BatchNorm statistics do not change either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from prunelora.data.generic import concat, eval_view
from prunelora.errors import InvalidInputError
from prunelora.methods.base import Capabilities, MethodConfig, MethodRecord, register_method
from prunelora.pruning import fisher_diagonal


@dataclass
class SSDConfig(MethodConfig):
    """Defaults from the paper and the authors' public code (if-loops/selective-synaptic-dampening):
    `selection_weighting` alpha 10 and `dampening_constant` lambda 1 (used for all their ResNet18
    CIFAR tasks), importances over batches of 128.

    Not a `TrainingOptions`: SSD takes no optimizer, learning rate or training budget. `seed` is
    kept for the common interface; SSD itself draws nothing at random.
    """

    selection_weighting: float = field(default=10.0, metadata={"help": (
        "SSD's alpha: a weight is dampened when its importance to D_f exceeds this multiple of its "
        "importance to all training data")})
    dampening_constant: float = field(default=1.0, metadata={"help": (
        "SSD's lambda: a selected weight is multiplied by min(lambda * importance(D) / importance(D_f), 1)")})
    batch_size: int = field(default=128, metadata={"help": "images per batch (ssd: of the importance estimates)"})

    def validate(self) -> None:
        if not self.selection_weighting > 0:
            raise InvalidInputError(f"selection_weighting {self.selection_weighting} must be > 0")
        if not self.dampening_constant > 0:
            raise InvalidInputError(f"dampening_constant {self.dampening_constant} must be > 0")
        if self.batch_size < 1:
            raise InvalidInputError(f"batch_size {self.batch_size} must be >= 1")
        super().validate()


@register_method("ssd", SSDConfig, "Selective Synaptic Dampening: no training, dampen weights far more important "
                 "to D_f than to D (Foster et al. 2024)",
                 capabilities=Capabilities(needs_forget_samples=True, trains=False, uses_pruning=False,
                                           uses_lora=False, from_scratch=False))
def ssd(model, splits, config: SSDConfig, ctx):
    model.eval()
    # The full training data without augmentation: importances are a deterministic estimate.
    full = eval_view(concat(splits.retain, splits.forget))
    forget = eval_view(splits.forget)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    imp_full = fisher_diagonal(model, full, trainable, batch_size=config.batch_size, device=ctx.device).values()
    imp_forget = fisher_diagonal(model, forget, trainable, batch_size=config.batch_size, device=ctx.device).values()
    params = list(trainable.values())
    dampened = 0
    with torch.no_grad():
        for p, full_i, forget_i in zip(params, imp_full, imp_forget, strict=True):
            selected = forget_i > config.selection_weighting * full_i  # implies forget_i > 0
            if not bool(selected.any()):
                continue
            beta = (config.dampening_constant * full_i[selected] / forget_i[selected]).clamp(max=1.0)
            p[selected] = p[selected] * beta
            dampened += int(selected.sum())
    total = sum(p.numel() for p in params)
    return model, MethodRecord(0, 0, details={"ssd": {"selected_params": dampened,
                                                      "selected_fraction": dampened / max(total, 1)}})
