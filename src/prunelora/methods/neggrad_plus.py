"""NegGrad+: descend on D_r and ascend on D_f in the same step.

Kurmanji, Triantafillou, Hayes and Triantafillou, "Towards Unbounded Machine Unlearning"
(NeurIPS 2023). Each step takes a D_r batch and the next batch of the (cycled) forget set and
minimises `alpha`·CE(D_r) − (1 − `alpha`)·CE(D_f). An epoch is one pass over D_r.
"""

from __future__ import annotations

from dataclasses import dataclass

from prunelora.adapters import trainable_parameters
from prunelora.errors import InvalidInputError
from prunelora.methods.base import MethodConfig, register_method
from prunelora.methods.common import neggrad_plus_loss
from prunelora.training import fit


@dataclass
class NegGradPlusConfig(MethodConfig):
    """Defaults: the authors' public code (meghdadk/SCRUB, `small_scale_unlearning.ipynb`, NegGrad
    cell): alpha 0.95, 10 epochs over D_r, plain SGD at lr 0.01 (no momentum, no weight decay),
    retain batches of 128 (the notebook's `args.batch_size`). Two deliberate differences: D_f
    batches have the same size as D_r batches here (the notebook draws 64), and the notebook's
    optional L2 pull towards the original weights is left out (use `weight_decay` for a plain
    decay instead).
    """

    epochs: float = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    alpha: float = 0.95

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise InvalidInputError(f"alpha {self.alpha} is outside (0, 1)")
        super().__post_init__()


@register_method("neggrad-plus", NegGradPlusConfig,
                 "alpha*CE(D_r) - (1-alpha)*CE(D_f) each step (NegGrad+, Kurmanji et al. 2023)",
                 needs_forget_samples=True)
def neggrad_plus(model, splits, config: NegGradPlusConfig, ctx):
    loss_fn = neggrad_plus_loss(splits, config.alpha, config.batch_size, config.seed, ctx.device)
    result = fit(model, splits.retain, config.train_config(), loss_fn=loss_fn,
                 freeze_batchnorm=config.bn_mode == "freeze", device=ctx.device, progress=ctx.progress,
                 description="neggrad-plus")
    return model, {"cost": {"trainable_params": trainable_parameters(model), "steps": result.steps},
                   "history": result.history}
