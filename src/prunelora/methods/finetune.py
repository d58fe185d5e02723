"""Fine-tune: train all parameters on D_r; forgetting comes from catastrophic forgetting alone."""

from __future__ import annotations

from dataclasses import dataclass

from prunelora.methods.base import Capabilities, TrainingOptions, register_method


@dataclass
class FinetuneConfig(TrainingOptions):
    """Paper baseline: Adam, lr 1e-3, 5 epochs (the paper also reports 10)."""


@register_method("finetune", FinetuneConfig, "fine-tune all parameters on D_r (paper baseline)",
                 capabilities=Capabilities(needs_forget_samples=False, trains=True, uses_pruning=False,
                                           uses_lora=False, from_scratch=False))
def finetune(model, splits, config: FinetuneConfig, ctx):
    return model, config.train(model, splits.retain, ctx, "finetune")
