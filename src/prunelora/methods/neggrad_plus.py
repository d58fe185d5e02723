"""NegGrad+: descend on D_r and ascend on D_f in the same step.

Kurmanji, Triantafillou, Hayes and Triantafillou, "Towards Unbounded Machine Unlearning"
(NeurIPS 2023). Each step takes a D_r batch and the next batch of the (cycled) forget set and
minimises `alpha`·CE(D_r) − (1 − `alpha`)·CE(D_f) (`neggrad_alpha`). An epoch is one pass over D_r.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prunelora.methods.base import Capabilities, TrainingOptions, option, register_method
from prunelora.methods.common import NEGGRAD_ALPHA_HELP, check_neggrad_alpha, neggrad_plus_loss


@dataclass
class NegGradPlusConfig(TrainingOptions):
    """Defaults: the authors' public code (meghdadk/SCRUB, `small_scale_unlearning.ipynb`, NegGrad
    cell): alpha (`neggrad_alpha`) 0.95, 10 epochs over D_r, plain SGD at lr 0.01 (no momentum, no weight decay),
    retain batches of 128 (the notebook's `args.batch_size`). Two deliberate differences: D_f
    batches have the same size as D_r batches here (the notebook draws 64), and the notebook's
    optional L2 pull towards the original weights is left out (use `weight_decay` for a plain
    decay instead).
    """

    epochs: float = option(TrainingOptions, "epochs", 10)
    batch_size: int = option(TrainingOptions, "batch_size", 128)
    optimizer: str = option(TrainingOptions, "optimizer", "sgd")
    lr: float = option(TrainingOptions, "lr", 0.01)
    momentum: float = option(TrainingOptions, "momentum", 0.0)
    weight_decay: float = option(TrainingOptions, "weight_decay", 0.0)
    neggrad_alpha: float = field(default=0.95, metadata={"help": NEGGRAD_ALPHA_HELP})


    def validate(self) -> None:
        check_neggrad_alpha(self.neggrad_alpha)
        super().validate()


@register_method("neggrad-plus", NegGradPlusConfig,
                 "alpha*CE(D_r) - (1-alpha)*CE(D_f) each step (NegGrad+, Kurmanji et al. 2023)",
                 capabilities=Capabilities(needs_forget_samples=True, trains=True, uses_pruning=False,
                                           uses_lora=False, from_scratch=False))
def neggrad_plus(model, splits, config: NegGradPlusConfig, ctx):
    loss_fn = neggrad_plus_loss(splits, config.neggrad_alpha, config.batch_size, config.seed, ctx.device)
    return model, config.train(model, splits.retain, ctx, "neggrad-plus", loss_fn=loss_fn)
