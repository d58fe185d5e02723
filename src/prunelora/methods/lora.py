"""LoRA: adapters (peft) on the chosen layers plus a trainable head, trained on D_r, then merged."""

from __future__ import annotations

from dataclasses import dataclass

from prunelora.methods.base import Capabilities, register_method
from prunelora.methods.common import LoraOptions


@dataclass
class LoraMethodConfig(LoraOptions):
    """Paper baseline: r=8, alpha=16, dropout 0.1 on every conv, head trainable, Adam lr 1e-3."""


@register_method("lora", LoraMethodConfig, "LoRA adapters + head trained on D_r, then merged (paper baseline)",
                 capabilities=Capabilities(needs_forget_samples=False, trains=True, uses_pruning=False,
                                           uses_lora=True, from_scratch=False))
def lora(model, splits, config: LoraMethodConfig, ctx):
    return config.train_lora(model, splits, ctx, "lora")
