"""EU-k, exact unlearning of the last k blocks (Goel, Prabhu, Sanyal, Lim, Torr and Kumaraguru,
"Towards Adversarial Evaluations for Inexact Machine Unlearning", arXiv 2201.06640).

Re-initialise the last `k` blocks, whatever follows them (a ViT's final norm) and the classifier,
then train them from scratch on D_r with everything before them frozen (weights and BatchNorm
statistics). The part it re-trains cannot hold anything of D_f; what the frozen part learned of
D_f stays, which is the point of the baseline: it removes the forget set exactly above depth k.

Re-initialisation calls each module's own `reset_parameters()` (PyTorch's default initialisation,
BatchNorm's running statistics reset), seeded by the method's seed; the registry's ResNets
initialise their convolutions with Kaiming-normal at construction, which this does not repeat.
What a block is is defined once, in `prunelora.models.blocks`. Forget kinds: all (class-wise, a
random fraction, an index list): the method reads D_r only.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from prunelora.methods.base import Capabilities, TrainingOptions, option, register_method
from prunelora.methods.partial import LastKOptions, select_last_blocks, train_part
from prunelora.models.blocks import LastBlocks


@dataclass
class EUkConfig(LastKOptions):
    """Defaults: k = 1 (the last residual or encoder block, plus the classifier), Adam at lr 1e-3 for
    10 epochs: twice the house fine-tuning budget, because the re-initialised part starts from
    nothing (the paper trains it with the original's recipe; 10 epochs of a digits-size D_r are
    about 100 steps, seconds on a CPU).
    """

    epochs: float = option(TrainingOptions, "epochs", 10)


def reinitialise(model: nn.Module, part: LastBlocks) -> int:
    """Reset every module of `part` that can reset itself; returns how many did."""
    selected = set(part.modules)
    count = 0
    for name, module in model.named_modules():
        # a module inside a selected one is reset even when the forward pass never calls it alone
        # (an attention's out_proj: nn.MultiheadAttention's own reset leaves its weight as it was)
        if not name or not (name in selected or any(name.startswith(m + ".") for m in selected)):
            continue
        # nn.MultiheadAttention resets through a private method (it has no public reset_parameters)
        reset = getattr(module, "reset_parameters", None) or getattr(module, "_reset_parameters", None)
        if callable(reset):
            reset()
            count += 1
    return count


@register_method("eu-k", EUkConfig, "re-initialise the last k blocks and the classifier, train them on D_r with the "
                 "rest frozen (EU-k, Goel et al. 2022)",
                 capabilities=Capabilities(needs_forget_samples=False, trains=True, uses_pruning=False,
                                           uses_lora=False, from_scratch=False))
def eu_k(model, splits, config: EUkConfig, ctx):
    part = select_last_blocks(model, config.k, splits, ctx)
    reset = reinitialise(model, part)
    record = train_part(model, part, config, splits, ctx, "eu-k")
    record.details["blocks"]["reinitialised_modules"] = reset
    return model, record
