"""Fine-tune: train all parameters on D_r; forgetting comes from catastrophic forgetting alone."""

from __future__ import annotations

from dataclasses import dataclass

from prunelora.methods.base import MethodConfig, register_method
from prunelora.methods.common import full_finetune


@dataclass
class FinetuneConfig(MethodConfig):
    """Paper baseline: Adam, lr 1e-3, 5 epochs (the paper also reports 10)."""


@register_method("finetune", FinetuneConfig, "fine-tune all parameters on D_r (paper baseline)")
def finetune(model, splits, config: FinetuneConfig, ctx):
    return model, full_finetune(model, splits, config, ctx, "finetune")
