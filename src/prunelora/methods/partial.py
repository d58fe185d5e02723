"""Training a part of a model with the rest frozen: what EU-k and CF-k share.

The frozen part is frozen entirely, BatchNorm running statistics included: its normalisation
layers run in eval mode throughout, so the returned model differs from the given one in the
trained part alone (Goel et al. freeze the first layers' weights; statistics that kept moving
with D_r would be a second, unrecorded change to the part said to be kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from prunelora.data import Splits
from prunelora.errors import InvalidInputError
from prunelora.methods.base import MethodContext, MethodRecord, TrainingOptions
from prunelora.models.blocks import LastBlocks, last_blocks

K_HELP = ("how many blocks from the end (ResNet residual blocks, ViT encoder blocks, else weighted layers in "
          "forward order); the classifier and whatever follows the blocks are always included; 0: the classifier alone")


@dataclass
class LastKOptions(TrainingOptions):
    """The option EU-k and CF-k share: how many blocks from the end are trained."""

    k: int = field(default=1, metadata={"help": K_HELP})

    def validate(self) -> None:
        if self.k < 0:
            raise InvalidInputError(f"k {self.k} must be >= 0")
        super().validate()


def select_last_blocks(model: nn.Module, k: int, splits: Splits, ctx: MethodContext) -> LastBlocks:
    """The last `k` blocks of `model` and everything after them, traced on one image of D_r."""
    example = splits.retain[0][0].unsqueeze(0)
    return last_blocks(model, k, example, ctx.classifier)


def train_part(model: nn.Module, part: LastBlocks, config: TrainingOptions, splits: Splits, ctx: MethodContext,
               description: str) -> MethodRecord:
    """Train the parameters of `part` on D_r with cross-entropy, everything else frozen; in place."""
    params = dict(model.named_parameters())
    trained = [params[name] for name in part.parameters]
    frozen_norms = [m for name, m in model.named_modules()
                    if isinstance(m, nn.modules.batchnorm._BatchNorm) and name not in part.modules]
    saved = {name: p.requires_grad for name, p in params.items()}
    criterion = nn.CrossEntropyLoss()

    def loss_fn(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # the loop puts the whole model in train mode; the frozen part's statistics stay as they are
        for norm in frozen_norms:
            norm.eval()
        return criterion(m(x), y)

    try:
        for name, p in params.items():  # no gradient is computed for the frozen part at all
            p.requires_grad_(name in part.parameters)
        record = config.train(model, splits.retain, ctx, description, params=trained, loss_fn=loss_fn,
                              trainable=sum(p.numel() for p in trained))
    finally:
        for name, p in params.items():
            p.requires_grad_(saved[name])
    record.details["blocks"] = {"k": part.k, "blocks": list(part.blocks), "trained_params": len(part.parameters)}
    return record
