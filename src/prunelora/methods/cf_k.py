"""CF-k, catastrophic forgetting of the last k blocks (Goel, Prabhu, Sanyal, Lim, Torr and
Kumaraguru, "Towards Adversarial Evaluations for Inexact Machine Unlearning", arXiv 2201.06640).

Fine-tune only the last `k` blocks and the classifier on D_r, everything before them frozen
(their weights and their BatchNorm statistics); forgetting comes from what fine-tuning on D_r
overwrites in the part it trains. It is the reference for "how deep did a method forget": a
method whose features give the class away as much as CF-k's only changed the last blocks.

What a block is (ResNet residual blocks, ViT encoder blocks, a user model's weighted layers in
forward order) is defined once, in `prunelora.models.blocks`. Forget kinds: all (class-wise, a
random fraction, an index list): the method reads D_r only.
"""

from __future__ import annotations

from dataclasses import dataclass

from prunelora.methods.base import Capabilities, register_method
from prunelora.methods.partial import LastKOptions, select_last_blocks, train_part


@dataclass
class CFkConfig(LastKOptions):
    """Defaults: k = 1 (the last residual block, which on resnet8 is the whole last stage and most
    of its weights; the last of a ViT's encoder blocks), and the house recipe (Adam, lr 1e-3,
    5 epochs). The paper varies k and trains with the original's recipe; one block is its
    smallest non-trivial setting and keeps the backward pass short.
    """


@register_method("cf-k", CFkConfig, "fine-tune only the last k blocks and the classifier on D_r, the rest frozen "
                 "(CF-k, Goel et al. 2022)",
                 capabilities=Capabilities(needs_forget_samples=False, trains=True, uses_pruning=False,
                                           uses_lora=False, from_scratch=False))
def cf_k(model, splits, config: CFkConfig, ctx):
    part = select_last_blocks(model, config.k, splits, ctx)
    return model, train_part(model, part, config, splits, ctx, "cf-k")
