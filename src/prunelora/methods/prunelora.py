"""PruneLoRA (Mittal, arXiv 2411.11907): prune first, then adapt with LoRA on D_r, then merge.

The forget set is never trained on: forgetting comes from pruning plus adapting to D_r only.
Unlike the reference code, the merge keeps every pruned weight exactly zero (`keep_sparsity`),
BatchNorm statistics are recalibrated on D_r after pruning (`bn_recalibrate`), and the saved
result is a plain merged model.
"""

from __future__ import annotations

from dataclasses import dataclass

from prunelora.methods.base import register_method
from prunelora.methods.common import LoraOptions, PruneOptions


@dataclass
class PruneLoRAConfig(LoraOptions, PruneOptions):
    """The paper's ResNet preset by default: 50% structured L2 pruning of every conv, LoRA r=8,
    alpha=16, dropout 0.1 on every conv, head trainable, Adam lr 1e-3, 5 epochs.

    `keep_sparsity=False` merges the dense update like the reference code (for the ablation).
    """

    keep_sparsity: bool = True


@register_method("prunelora", PruneLoRAConfig, "prune, then LoRA on D_r, then a sparsity-preserving merge (the paper)")
def prunelora(model, splits, config: PruneLoRAConfig, ctx):
    # Bake the zeros into the (frozen) base weights: peft merges into `weight` directly.
    masks = config.prune_model(model, splits, ctx, bake=True)
    return config.train_lora(model, splits, ctx, "prunelora", masks=masks, keep_sparsity=config.keep_sparsity)
