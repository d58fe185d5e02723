"""OPC, one-point contraction (Jung, Jung, Bae and Lee, "OPC: One-Point-Contraction Unlearning
Toward Deep Feature Forgetting", arXiv 2507.07754).

Deep feature forgetting as a contraction: the forget set's features are pulled to one point (the
origin), so that nothing about D_f is left in them to decode, while the retain set keeps its
accuracy. The whole model trains on
    loss = CE(D_r batch) + `contraction_weight` · mean_i ‖f(x_i)‖² / mean_j ‖f(x_j)‖²,
where f is the classifier's input (the penultimate features), x_i a batch of D_f and x_j the
D_r batch of the same step. An epoch is one pass over D_r; each step also draws the next batch
of the (cycled) forget set, as NegGrad+ does.

Built from the paper's description of the method; where that gives no formula or setting, the
choice is ours. Choices the paper leaves open here, and why:
- The contraction term is divided by the retain batch's mean squared feature norm (detached): the
  features' scale differs between architectures and datasets by orders of magnitude, and the
  ratio makes one weight mean the same everywhere (0: the forget features are at the origin;
  1: as far out as the retained ones).
- `contraction_weight` 1: the two terms start at comparable sizes (CE about 0.1-1 on a trained
  model, the ratio about 1).
- Recipe: Adam at lr 1e-3 for 5 epochs of D_r, the house fine-tuning recipe, which a digits-size
  D_r runs in about 50 steps.
- The features are read at the classifier's input by a hook, so any model with a findable
  classifier works (the registry's ResNets and ViTs, a user's own) — except where a LayerNorm
  runs just before the classifier (the ViT's final norm): a LayerNorm's output has a fixed norm
  per sample, so there is nothing to contract; the features are then read at that norm's input
  (for the ViT, the whole token sequence of the residual stream).

Forget kinds: all (class-wise, a random fraction, an index list): the contraction acts on the
forget set's own records, not on a class; the paper applies it to random forgetting too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from prunelora.errors import InvalidInputError
from prunelora.methods.base import Capabilities, TrainingOptions, register_method
from prunelora.methods.common import cycle
from prunelora.models.blocks import forward_order
from prunelora.models.classifier import find_module


@dataclass
class OPCConfig(TrainingOptions):
    """Defaults and the reasons for them: see the module's docstring."""

    contraction_weight: float = field(default=1.0, metadata={"help": (
        "weight of the forget set's squared feature norm (relative to the retain batch's) beside the "
        "cross-entropy on D_r, > 0")})

    def validate(self) -> None:
        if not self.contraction_weight > 0:
            raise InvalidInputError(f"contraction_weight {self.contraction_weight} must be > 0")
        super().validate()


def contraction_loss(model: nn.Module, classifier: nn.Module, forget_batches, weight: float, device):
    """`loss(model, x_r, y_r)`: CE on the D_r batch plus the relative squared norm of a D_f batch's
    features at the input of `classifier` (the classifier, or the LayerNorm before it)."""
    store: list[torch.Tensor] = []
    model_handle = classifier.register_forward_pre_hook(lambda _m, args: store.append(torch.flatten(args[0], 1)))
    criterion = nn.CrossEntropyLoss()

    def loss_fn(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        store.clear()
        ce = criterion(m(x), y)
        retain_norm = store[-1].pow(2).sum(1).mean().detach()
        xf, _ = next(forget_batches)
        m(xf.to(device))
        forget_norm = store[-1].pow(2).sum(1).mean()
        return ce + weight * forget_norm / retain_norm.clamp_min(1e-12)

    return loss_fn, model_handle


def contracted_module(model: nn.Module, classifier: str, example: torch.Tensor) -> nn.Module:
    """The module whose input is contracted: the classifier, or the LayerNorm the forward pass runs
    just before it (whose output norm is fixed by construction)."""
    order = forward_order(model, example)
    modules = dict(model.named_modules())
    before = [n for n in order[: order.index(classifier)] if not n.startswith(classifier + ".")]
    last = modules[before[-1]] if before else None
    return last if isinstance(last, nn.LayerNorm) else find_module(model, classifier)


@register_method("opc", OPCConfig, "train on D_r while contracting D_f's features to the origin (One-Point "
                 "Contraction, Jung et al. 2025)",
                 capabilities=Capabilities(needs_forget_samples=True, trains=True, uses_pruning=False,
                                           uses_lora=False, from_scratch=False))
def opc(model, splits, config: OPCConfig, ctx):
    classifier = contracted_module(model, ctx.classifier, splits.retain[0][0].unsqueeze(0))
    forget_batches = cycle(splits.forget, config.batch_size, config.seed)
    loss_fn, handle = contraction_loss(model, classifier, forget_batches, config.contraction_weight, ctx.device)
    try:
        record = config.train(model, splits.retain, ctx, "opc", loss_fn=loss_fn)
    finally:
        handle.remove()
    return model, record
