"""PruneLoRA (Mittal, arXiv 2411.11907): prune first, then adapt with LoRA on D_r, then merge.

The forget set is never trained on: forgetting comes from pruning plus adapting to D_r only.
Unlike the reference code, the merge keeps every pruned weight exactly zero (`keep_sparsity`),
BatchNorm statistics are recalibrated on D_r after pruning (`bn_recalibrate`), and the saved
result is a plain merged model.
"""

from __future__ import annotations

from dataclasses import dataclass

from prunelora.errors import InvalidInputError
from prunelora.methods.base import register_method
from prunelora.methods.common import OBJECTIVES, LoraOptions, PruneOptions


@dataclass
class PruneLoRAConfig(LoraOptions, PruneOptions):
    """The paper's ResNet preset by default: 50% structured L2 pruning of every conv, LoRA r=8,
    alpha=16, dropout 0.1 on every conv, head trainable, Adam lr 1e-3, 5 epochs.

    `keep_sparsity=False` merges the dense update like the reference code (for the ablation).
    `objective`: what the adapters are trained on — `retain` (the paper: D_r only),
    `random-label` (D_r plus D_f with random wrong labels) or `neggrad-plus`
    (`alpha`·CE(D_r) − (1 − `alpha`)·CE(D_f)). No published toolkit combines pruning, LoRA and a
    forgetting loss; the default stays the paper's.
    """

    keep_sparsity: bool = True
    objective: str = "retain"
    alpha: float = 0.99

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InvalidInputError(f"objective {self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        if not 0.0 < self.alpha < 1.0:
            raise InvalidInputError(f"alpha {self.alpha} is outside (0, 1)")
        super().__post_init__()


@register_method("prunelora", PruneLoRAConfig, "prune, then LoRA on D_r, then a sparsity-preserving merge (the paper)")
def prunelora(model, splits, config: PruneLoRAConfig, ctx):
    # Bake the zeros into the (frozen) base weights: peft merges into `weight` directly.
    masks = config.prune_model(model, splits, ctx, bake=True)
    return config.train_lora(model, splits, ctx, "prunelora", masks=masks, keep_sparsity=config.keep_sparsity,
                             objective=config.objective, alpha=config.alpha)
