"""SalUn (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency in
Both Image Classification and Generation", ICLR 2024, arXiv 2310.12508).

1. Weight saliency: the gradient of the forget loss (cross-entropy on D_f, accumulated over all of
   D_f) with respect to every weight; the `mask_fraction` of weights with the largest gradient
   magnitude, ranked globally over all parameters, form the mask.
2. Random labelling (Golatkar et al. 2020) restricted to the mask: fine-tune on D_r plus D_f
   relabelled with random wrong labels, updating only the masked-in weights.

The authors' code long multiplied only the gradient by the mask (e.g. OPTML-Group/Unlearn-Saliency
at commit ac880a2), so SGD's weight decay and momentum still moved the masked-out weights. Here the
gradient is masked (so gradient clipping sees what the paper's update uses) *and* every masked-out
weight is written back to its saved value after each optimizer step: whatever the optimizer,
momentum or weight decay, they stay bit-for-bit unchanged. BatchNorm running statistics are
buffers, not weights; they follow `bn_mode` as in every method. Unlike the authors' code, which
redraws labels from all classes each epoch (sometimes the true one), D_f gets one seeded draw of
wrong labels (`random_label_dataset`, shared with the `random-label` method).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from prunelora.data import ImageDataset
from prunelora.errors import InvalidInputError
from prunelora.methods.base import (
    Capabilities,
    MethodRecord,
    TrainingOptions,
    option,
    register_method,
)
from prunelora.methods.common import OptmlRecipe, random_label_dataset
from prunelora.pruning import loss_gradient


@dataclass
class SalUnConfig(OptmlRecipe):
    """Defaults from the paper and the authors' public code (OPTML-Group/Unlearn-Saliency).

    `mask_fraction` 0.5: the paper's default saliency sparsity (50% of the weights). The recipe is
    the authors' SalUn command (Classification/README.md): random labelling for 10 epochs with SGD,
    lr 0.1, momentum 0.9, weight decay 5e-4, batch size 256; their step decay (epochs 91, 136)
    never triggers within 10 epochs, hence a constant schedule.
    """

    lr: float = option(TrainingOptions, "lr", 0.1)
    mask_fraction: float = field(default=0.5, metadata={"help": (
        "share of the weights SalUn trains: those with the largest forget-loss gradient, in (0, 1]")})

    def validate(self) -> None:
        if not 0.0 < self.mask_fraction <= 1.0:
            raise InvalidInputError(f"mask_fraction {self.mask_fraction} is outside (0, 1]")
        super().validate()


def forget_gradient_magnitude(model: nn.Module, forget: ImageDataset, batch_size: int,
                              device) -> dict[str, torch.Tensor]:
    """|∇ CE(D_f)| per trainable parameter: the gradient of the mean loss over all of D_f.

    Eval mode (as the reference): BatchNorm uses its running statistics and none are updated.
    The model stays fixed while the gradient accumulates (the authors' mask script also took an
    optimizer step after every batch, so later batches saw a drifting model).
    """
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    gradient = loss_gradient(model, forget, trainable, batch_size=batch_size, device=device)
    return {n: g.abs() for n, g in gradient.items()}


def saliency_mask(saliency: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """Boolean masks keeping the `fraction` of entries with the largest saliency, ranked globally.

    Exactly round(fraction · total) entries (at least one) are kept; ties are broken by position
    (a stable sort), so the mask is deterministic.
    """
    flat = torch.cat([s.flatten() for s in saliency.values()])
    keep = max(1, int(round(fraction * flat.numel())))
    order = torch.sort(flat, descending=True, stable=True).indices[:keep]
    chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    chosen[order] = True
    masks, start = {}, 0
    for name, s in saliency.items():
        masks[name] = chosen[start:start + s.numel()].view_as(s)
        start += s.numel()
    return masks


@register_method("salun", SalUnConfig, "SalUn: random-label fine-tuning of the forget-salient weights only "
                 "(Fan et al. 2024)",
                 capabilities=Capabilities(needs_forget_samples=True, trains=True, uses_pruning=False,
                                           uses_lora=False, from_scratch=False))
def salun(model, splits, config: SalUnConfig, ctx):
    masks = saliency_mask(forget_gradient_magnitude(model, splits.forget, config.batch_size, ctx.device),
                          config.mask_fraction)
    params = dict(model.named_parameters())
    # Only parameters with at least one masked-in entry are optimised; the others never move.
    trained = {n: m for n, m in masks.items() if bool(m.any())}
    frozen = {n: params[n].detach().clone() for n in trained}

    def restore_masked_out(_model: nn.Module) -> None:
        with torch.no_grad():
            for name, mask in trained.items():
                params[name].copy_(torch.where(mask, params[name], frozen[name]))

    hooks = [params[n].register_hook(lambda grad, mask=m: grad * mask) for n, m in trained.items()]
    try:
        result = config.fit(model, random_label_dataset(splits, config.seed), ctx, "salun",
                            params=[params[n] for n in trained], after_step=restore_masked_out)
    finally:
        for hook in hooks:
            hook.remove()
        model.zero_grad(set_to_none=True)
    masked_in = int(sum(int(m.sum()) for m in masks.values()))
    return model, MethodRecord(masked_in, result.steps, result.history, details={"saliency": {
        "mask_fraction": config.mask_fraction, "masked_in": masked_in,
        "total": int(sum(m.numel() for m in masks.values()))}}, saliency_mask=masks)
