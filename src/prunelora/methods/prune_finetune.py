"""Prune + fine-tune: prune, then train all parameters on D_r with the masks kept applied.

The reference code removed the pruning masks before fine-tuning, so the pruned weights regrew.
Here the masks stay on (parametrizations) during training and are baked in afterwards; they cover
a pruned channel's bias and BatchNorm weight and bias too (`prune_targets="dead"`), so training
cannot revive it through them either (a masked tensor's gradient is 0 and it reads as 0 whatever
momentum or weight decay do to the stored value). With
`prune_mode="physical"` the pruned channels are removed instead: the smaller model is fine-tuned
and nothing can regrow.
"""

from __future__ import annotations

from dataclasses import dataclass

from prunelora.methods.base import Capabilities, register_method
from prunelora.methods.common import PruneOptions
from prunelora.pruning import bake_masks


@dataclass
class PruneFinetuneConfig(PruneOptions):
    """Paper baseline: 50% structured L2 pruning of every conv, then Adam lr 1e-3 for 5 epochs."""


@register_method("prune-finetune", PruneFinetuneConfig, "prune, then fine-tune all parameters on D_r; masks kept",
                 capabilities=Capabilities(needs_forget_samples=False, trains=True, uses_pruning=True,
                                           uses_lora=False, from_scratch=False))
def prune_finetune(model, splits, config: PruneFinetuneConfig, ctx):
    pruned = config.prune_model(model, splits, ctx, bake=False)
    record = config.train(model, splits.retain, ctx, "prune-finetune")
    bake_masks(model)  # nothing to bake after physical pruning
    return model, pruned.recorded(record)
