"""DAMP, depth-aware modulation by projection (Hatami, Aalishah and Monosov, "Class Unlearning via
Depth-Aware Removal of Forget-Specific Directions", arXiv 2604.15166, CVPR 2026 workshop).

Closed form, no gradient step. Layer by layer, in forward order, for every learnable operator
(convolutions, linear layers, attention's input projection, the classifier):
1. capture the operator's input on a seeded sample of D_f and of D_r (pooled to one vector per
   image: mean over space for a feature map, over tokens for a token sequence);
2. class prototypes there: the mean input of each forgotten class and of each retained class;
3. the forget subspace U: the top-`subspace_rank` left singular vectors of the residuals of every
   forgotten prototype relative to every retained one (μ_f − μ_j), i.e. the directions in which
   the forgotten classes stand apart from the retained ones (the paper's multi-direction,
   low-rank form; its first direction is close to μ_f − mean_j μ_j);
4. the weight loses the fraction s_l of its component along U, on its input side:
   W ← W (I − s_l U Uᵀ), so the operator becomes less sensitive to those directions downstream.
The next operator's inputs are captured on the edited network, so each edit sees the ones before.
Finally BatchNorm running statistics are recomputed on D_r (where the model has BatchNorm): the
edits change every downstream activation's mean and variance.

Built from the paper's description of the method; where that gives no formula or setting, the
choice is ours. Choices the paper leaves open here, and why:
- Depth-aware scaling (`depth_scaling`): `separability` (default), the paper's idea of a
  parameter-free scale from probe separability: s_l = strength × the nearest-class-mean recall
  of the forget sample at that operator's input, rescaled so chance is 0 and perfect is 1. Deep
  layers separate the class better, so they are edited more; an early layer where the class
  does not yet stand apart is barely touched. `linear` (s_l = strength × l / L, a fixed
  ramp) and `uniform` (s_l = strength) are kept for comparison.
- The first operator (the stem convolution or patch embedding) is never edited: its input is
  pixels, where a "class direction" is the image itself (on a 1-channel image it is the whole
  input), not a learned feature.
- `subspace_rank` 2: one direction per layer was measured to remove the class from the outputs but not
  from the features, and the span of all μ_f − μ_j also contains every retained class's
  differences (removing all of it would erase the retained classes too). Two directions keep
  the edit forget-specific on 10-class data; raise it for many forgotten classes.
- `strength` 1: the deepest, best-separated operators lose their full forget component.
- Samples: up to 512 images of D_f and 1024 of D_r (seeded), enough for 10 class means on small
  data and bounding the cost (one forward pass of the samples per edited operator).
- Attention: the input projection of `nn.MultiheadAttention` (queries, keys and values read
  the same normalised tokens) is edited; its output projection, whose input is never exposed
  by the module's forward, is left as it is.

Forget kinds: class-wise only. The method is built on class prototypes; a random forget set has
no prototype of its own (its mean is the retain set's), so other kinds are refused in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from prunelora.data.generic import eval_view, make_loader, subset, targets_of
from prunelora.errors import InvalidInputError
from prunelora.methods.base import Capabilities, MethodConfig, MethodRecord, register_method
from prunelora.models.blocks import forward_order
from prunelora.models.classifier import layer_input, pool_features
from prunelora.pruning import recalibrate_batchnorm

SCALINGS = ("separability", "linear", "uniform")


@dataclass
class DampConfig(MethodConfig):
    """Defaults and the reasons for them: see the module's docstring. No optimizer, learning rate
    or training budget: DAMP takes no gradient step."""

    subspace_rank: int = field(default=2, metadata={"help": (
        "dimension of the forget subspace removed per layer (top singular directions of the forgotten "
        "class prototypes minus the retained ones)")})
    strength: float = field(default=1.0, metadata={"help": (
        "largest fraction of a weight's forget component removed (at a layer where the class separates "
        "perfectly, or the deepest one), in (0, 1]")})
    depth_scaling: str = field(default="separability", metadata={"help": (
        "how the fraction grows with depth: separability (nearest-class-mean recall of D_f at the layer, "
        "chance = 0), linear (layer index / number of layers) or uniform")})
    forget_samples: int = field(default=512, metadata={"help": "images of D_f the prototypes are computed on"})
    retain_samples: int = field(default=1024, metadata={"help": "images of D_r the prototypes are computed on"})
    batch_size: int = field(default=256, metadata={"help": "images per forward pass"})
    bn_recalibrate: bool = field(default=True, metadata={"help": (
        "recompute BatchNorm running statistics on D_r after the edits")})

    def validate(self) -> None:
        if self.subspace_rank < 1:
            raise InvalidInputError(f"subspace_rank {self.subspace_rank} must be >= 1")
        if not 0.0 < self.strength <= 1.0:
            raise InvalidInputError(f"strength {self.strength} is outside (0, 1]")
        if self.depth_scaling not in SCALINGS:
            raise InvalidInputError(f"depth_scaling {self.depth_scaling!r} is not one of {', '.join(SCALINGS)}")
        for name in ("forget_samples", "retain_samples", "batch_size"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} {getattr(self, name)} must be >= 1")
        super().validate()


def editable(module: nn.Module) -> bool:
    """An operator DAMP can edit on its input side: a dense conv, a linear layer, an attention whose
    queries, keys and values share one input projection."""
    if isinstance(module, nn.MultiheadAttention):
        return bool(module._qkv_same_embed_dim) and module.in_proj_weight is not None
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.groups == 1
    return isinstance(module, nn.Linear)


def weight_of(module: nn.Module) -> torch.Tensor:
    return module.in_proj_weight if isinstance(module, nn.MultiheadAttention) else module.weight


def input_component(weight: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """The weight's component along `basis` (d × r) on its input axis (dim 1): W U, per output."""
    return torch.movedim(torch.movedim(weight, 1, -1) @ basis, -1, 1)


def remove_component(weight: torch.Tensor, basis: torch.Tensor, scale: float) -> None:
    """W ← W (I − scale · U Uᵀ) on the input axis, in place."""
    moved = torch.movedim(weight.data, 1, -1)
    moved -= scale * (moved @ basis) @ basis.T


def sample(dataset, size: int, seed: int):
    """A seeded sample of `size` images of `dataset` without augmentation (all of it when smaller)."""
    dataset = eval_view(dataset)
    if len(dataset) <= size:
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return subset(dataset, order[:size].sort().values)


@torch.no_grad()
def layer_inputs(model: nn.Module, module: nn.Module, dataset, batch_size: int, device) -> torch.Tensor:
    """What enters `module`, one pooled vector per image of `dataset` (in its order), on the CPU
    (where the labels are)."""
    store: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(
        lambda m, args, kwargs: store.append(pool_features(layer_input(m, args, kwargs)).float().cpu()), with_kwargs=True)
    try:
        for x, _ in make_loader(dataset, batch_size=batch_size):
            model(x.to(device))
    finally:
        handle.remove()
    return torch.cat(store)


def forget_subspace(forget: torch.Tensor, forget_labels: torch.Tensor, retain: torch.Tensor,
                    retain_labels: torch.Tensor, rank: int) -> torch.Tensor:
    """Orthonormal d × r basis of the directions in which the forgotten class prototypes differ
    from the retained ones (top left singular vectors of all μ_f − μ_j)."""
    forgotten = [forget[forget_labels == c].mean(0) for c in forget_labels.unique()]
    kept = [retain[retain_labels == c].mean(0) for c in retain_labels.unique()]
    residuals = torch.stack([f - k for f in forgotten for k in kept], dim=1).double()
    u, s, _ = torch.linalg.svd(residuals, full_matrices=False)
    r = min(rank, int((s > s[0] * 1e-6).sum()) if len(s) and s[0] > 0 else 0)
    return u[:, :r].to(forget.dtype)


def separability(forget: torch.Tensor, forget_labels: torch.Tensor, retain: torch.Tensor,
                 retain_labels: torch.Tensor) -> float:
    """Nearest-class-mean recall of the forget sample among all class prototypes, rescaled so that
    chance is 0 and perfect recall is 1: how well the forgotten classes stand apart at this layer."""
    labels = torch.cat([forget_labels, retain_labels])
    feats = torch.cat([forget, retain])
    classes = labels.unique()
    protos = torch.stack([feats[labels == c].mean(0) for c in classes])
    nearest = classes[torch.cdist(forget, protos).argmin(1)]
    recall = float((nearest == forget_labels).float().mean())
    chance = 1.0 / len(classes)
    return min(max((recall - chance) / (1.0 - chance), 0.0), 1.0)


@register_method("damp", DampConfig, "remove forget-class directions from every layer's weights in closed form, "
                 "stronger where the class separates (DAMP, Hatami et al. 2026)",
                 capabilities=Capabilities(needs_forget_samples=True, trains=False, uses_pruning=False,
                                           uses_lora=False, from_scratch=False, forget_kinds=("class",)))
def damp(model, splits, config: DampConfig, ctx):
    model.eval()
    forget = sample(splits.forget, config.forget_samples, config.seed)
    retain = sample(splits.retain, config.retain_samples, config.seed + 1)
    forget_labels, retain_labels = targets_of(forget), targets_of(retain)
    modules = dict(model.named_modules())
    order = [n for n in forward_order(model, forget[0][0].unsqueeze(0))
             if editable(modules[n]) and not any(n.startswith(a + ".") for a in modules
                                                  if a and isinstance(modules[a], nn.MultiheadAttention))]
    edited = order[1:]  # the first operator reads pixels: never edited (see the module's docstring)
    layers = []
    for depth, name in enumerate(edited, 1):
        module = modules[name]
        xf = layer_inputs(model, module, forget, config.batch_size, ctx.device)
        xr = layer_inputs(model, module, retain, config.batch_size, ctx.device)
        basis = forget_subspace(xf, forget_labels, xr, retain_labels, config.subspace_rank).to(ctx.device)
        if config.depth_scaling == "separability":
            scale = config.strength * separability(xf, forget_labels, xr, retain_labels)
        elif config.depth_scaling == "linear":
            scale = config.strength * depth / len(edited)
        else:
            scale = config.strength
        weight = weight_of(module)
        with torch.no_grad():
            before = float(input_component(weight, basis).norm())
            if basis.shape[1] and scale > 0:
                remove_component(weight, basis, scale)
            after = float(input_component(weight, basis).norm())
        layers.append({"layer": name, "rank": int(basis.shape[1]), "scale": scale,
                       "component_before": before, "component_after": after})
    recalibrated = recalibrate_batchnorm(model, splits.retain, device=ctx.device) if config.bn_recalibrate else 0
    return model, MethodRecord(0, 0, details={"damp": {"layers": layers, "skipped_first": order[:1],
                                                       "batchnorm_recalibrated": recalibrated}})
