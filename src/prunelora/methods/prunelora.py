"""PruneLoRA (Mittal, arXiv 2411.11907): prune first, then adapt with LoRA on D_r, then merge.

The forget set is never trained on: forgetting comes from pruning plus adapting to D_r only.
Unlike the reference code, the merge keeps every pruned weight exactly zero (`keep_sparsity`),
BatchNorm statistics are recalibrated on D_r after pruning (`bn_recalibrate`), and the saved
result is a plain merged model. With `prune_mode="physical"` the pruned channels are removed
instead, LoRA adapts the smaller model, and no masks are needed afterwards.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from torch import nn

from prunelora.adapters.lora import lora_targets
from prunelora.errors import InvalidInputError
from prunelora.methods.base import Capabilities, register_method
from prunelora.methods.common import (
    NEGGRAD_ALPHA_HELP,
    OBJECTIVES,
    LoraOptions,
    PruneOptions,
    check_neggrad_alpha,
)
from prunelora.pruning import PrunedAttention, compile_pattern


@dataclass
class PruneLoRAConfig(LoraOptions, PruneOptions):
    """The paper's ResNet preset by default: 50% structured L2 pruning of every conv, LoRA r=8,
    alpha=16, dropout 0.1 on every conv, head trainable, Adam lr 1e-3, 5 epochs.

    `keep_sparsity=False` merges the dense update like the reference code (for the ablation).
    `objective`: what the adapters are trained on — `retain` (the paper: D_r only),
    `random-label` (D_r plus D_f with random wrong labels) or `neggrad-plus`
    (`alpha`·CE(D_r) − (1 − `alpha`)·CE(D_f), alpha being `neggrad_alpha`, as for the
    `neggrad-plus` method). No published toolkit combines pruning, LoRA and a forgetting loss; the
    default stays the paper's.
    """

    keep_sparsity: bool = field(default=True, metadata={"help": (
        "merge so that every pruned weight stays exactly zero (--no-keep-sparsity: the reference code's "
        "dense merge, for the ablation)")})
    objective: str = field(default="retain", metadata={"help": (
        "what the adapters are trained on: retain (the paper: D_r only), random-label (D_r plus D_f with "
        "random wrong labels) or neggrad-plus (see --neggrad-alpha)")})
    neggrad_alpha: float = field(default=0.95, metadata={"help": NEGGRAD_ALPHA_HELP})


    def validate(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InvalidInputError(f"objective {self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        check_neggrad_alpha(self.neggrad_alpha)
        super().validate()
        if not self.prune_structured and self.keep_sparsity and self.lora_backend == "peft" \
                and "mha" not in self.lora_types:
            # peft's adapter runs beside the layer (x -> B(A(x))): individual weights of its update
            # cannot be held at zero while it trains, so the merge would ship another model.
            raise InvalidInputError(
                "unstructured pruning (--no-prune-structured) with LoRA through peft would train a dense update "
                "and zero it only at the merge, shipping a model other than the one trained; use "
                "--lora-backend weight (the update is masked weight by weight) or structured pruning")


@register_method("prunelora", PruneLoRAConfig, "prune, then LoRA on D_r, then a sparsity-preserving merge (the paper)",
                 capabilities=Capabilities(needs_forget_samples=False, trains=True, uses_pruning=True,
                                           uses_lora=True, from_scratch=False))
def prunelora(model, splits, config: PruneLoRAConfig, ctx):
    # Bake the zeros into the (frozen) base weights: peft merges into `weight` directly.
    pruned = config.prune_model(model, splits, ctx, bake=True)
    ran = _lora_on_pruned_attention(model, config, ctx.classifier) if config.prune_mode == "physical" else config
    merged, record = ran.train_lora(model, splits, ctx, "prunelora", masks=pruned.masks,
                                    keep_sparsity=ran.keep_sparsity, objective=ran.objective, alpha=ran.neggrad_alpha)
    record = pruned.recorded(record)
    # the LoRA backend and targets that ran are recorded, not the ones asked for
    return merged, record if ran is config else dataclasses.replace(record, config=ran)


def _lora_on_pruned_attention(model: nn.Module, config: PruneLoRAConfig, head_name: str | None = None) -> PruneLoRAConfig:
    """LoRA on `mha` also means an attention that physical pruning turned into a `PrunedAttention`
    (which peft cannot wrap as a whole): there the adapters go on its q/k/v/out linears, which are
    called in its forward. Returns `config` with the same targets named explicitly."""
    if "mha" not in config.lora_types:
        return config
    regex = compile_pattern(model, config.lora_pattern)
    pruned = [name for name, m in model.named_modules()
              if isinstance(m, PrunedAttention) and name != head_name and (regex is None or regex.search(name))]
    if not pruned:
        return config
    try:
        targets = lora_targets(model, config.lora_types, config.lora_pattern, head_name)
    except InvalidInputError:  # every targeted attention was pruned
        targets = []
    intact = bool(targets)  # attentions the pattern names that kept all their heads
    targets += [f"{name}.{proj}" for name in pruned for proj in ("q_proj", "k_proj", "v_proj", "out_proj")]
    pattern = "^(?:" + "|".join(re.escape(t) for t in sorted(set(targets))) + ")$"
    if not intact:
        return dataclasses.replace(config, lora_types=("linear",), lora_pattern=pattern)
    # intact attentions are adapted in the weight form (see LoraSettings): so are their pruned twins
    return dataclasses.replace(config, lora_types=tuple(dict.fromkeys((*config.lora_types, "linear"))),
                               lora_pattern=pattern, lora_backend="weight")
