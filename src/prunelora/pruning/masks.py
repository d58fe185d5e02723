"""Masks: per-layer structured Ln masks (whole output rows), unstructured magnitude masks, and
applying, baking and reporting them.

Dead-channel masks (the default of `prune`, `prunelora.pruning.dead`) mask weight rows, biases
and the following norms' affine parameters, chosen as physical pruning chooses them; the masks
here are the paper's literal per-layer weight masking (`targets="weights-only"`) and
unstructured pruning.

Masks are applied as `torch.nn.utils.parametrize` parametrizations, so the masked weight is
recomputed on every access. That matters for `nn.MultiheadAttention`, whose forward reads
`in_proj_weight` and `out_proj.weight` directly: a forward pre-hook (torch.nn.utils.prune) on
`out_proj` would never run. The masks stay applied during fine-tuning (the reference code removed
them first and so regrew the pruned weights) and are baked in with `bake_masks` at the end.

Importance criteria are callables passed in (as in Torch-Pruning), not flags.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from prunelora.pruning.importance import LnImportance
from prunelora.pruning.selection import PrunedParam
from prunelora.pruning.settings import check_amount, check_scope

Importance = Callable[[torch.Tensor], torch.Tensor]


def magnitude(weight: torch.Tensor) -> torch.Tensor:
    """Per weight: |w|."""
    return weight.detach().abs()


def structured_masks(params: Sequence[PrunedParam], amount: float,
                     importance: Importance | None = None) -> dict[str, torch.Tensor]:
    """For each weight, zero the `round(amount * C)` output channels of lowest importance."""
    check_amount(amount)
    importance = importance or LnImportance(2)
    masks = {}
    for p in params:
        weight = getattr(p.module, p.param)
        scores = importance(weight)
        channels = weight.shape[0]
        k = int(round(amount * channels))
        mask = torch.ones_like(weight)
        if k > 0:
            # stable sort: ties (e.g. already-zero channels) are broken by index, deterministically
            drop = torch.sort(scores, stable=True).indices[:k]
            mask[drop] = 0
        masks[p.key] = mask
    return masks


def unstructured_masks(params: Sequence[PrunedParam], amount: float, scope: str = "layer",
                       importance: Importance = magnitude) -> dict[str, torch.Tensor]:
    """Zero the `amount` fraction of weights of lowest importance, per layer or globally."""
    check_amount(amount)
    check_scope(scope)
    scores = {p.key: importance(getattr(p.module, p.param)) for p in params}
    masks = {}
    if scope == "global":
        flat = torch.cat([s.flatten() for s in scores.values()])
        k = int(round(amount * flat.numel()))
        order = torch.sort(flat, stable=True).indices
        keep = torch.ones_like(flat)
        keep[order[:k]] = 0
        offset = 0
        for key, s in scores.items():
            masks[key] = keep[offset: offset + s.numel()].view_as(s)
            offset += s.numel()
        return masks
    for key, s in scores.items():
        k = int(round(amount * s.numel()))
        keep = torch.ones(s.numel())
        keep[torch.sort(s.flatten(), stable=True).indices[:k]] = 0
        masks[key] = keep.view_as(s)
    return masks


# ------------------------------------------------------------------------- applying masks


class _Mask(nn.Module):
    """Parametrization `w -> w * mask` (the mask is a buffer, so it moves with the model)."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def apply_masks(params: Sequence[PrunedParam], masks: dict[str, torch.Tensor]) -> None:
    """Keep `masks` applied: each weight reads as weight * mask, also while it is trained."""
    for p in params:
        mask = masks[p.key].to(getattr(p.module, p.param).device)
        parametrize.register_parametrization(p.module, p.param, _Mask(mask))


def bake_masks(model: nn.Module) -> None:
    """Remove every mask parametrization, leaving the masked values (zeros stay zero)."""
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)


def weight_at(model: nn.Module, key: str) -> torch.Tensor:
    """The weight a mask key (`module.param`, as `PrunedParam.key` builds it) names."""
    module_name, param = key.rsplit(".", 1) if "." in key else ("", key)
    return getattr(model.get_submodule(module_name), param)


def multiply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Set pruned weights to exactly zero again (after a merge that may have refilled them)."""
    with torch.no_grad():
        for key, mask in masks.items():
            weight = weight_at(model, key)
            weight.mul_(mask.to(weight.device))


def used_parameters(model: nn.Module) -> list[torch.Tensor]:
    """Every parameter as the forward pass uses it: a weight under a mask parametrization (pruned,
    not yet baked) is its masked value, not the unmasked original."""
    tensors = []
    for module in model.modules():
        if isinstance(module, parametrize.ParametrizationList):
            continue  # the unmasked originals; their module yields the masked weight below
        names = list(module._parameters)
        if parametrize.is_parametrized(module):
            names += list(module.parametrizations.keys())
        tensors += [t for t in (getattr(module, name) for name in names) if t is not None]
    seen: set[int] = set()  # a parameter shared by two modules (tied weights) counts once
    return [t for t in tensors if not (id(t) in seen or seen.add(id(t)))]


def sparsity_report(model: nn.Module, masks: dict[str, torch.Tensor] | None = None) -> dict:
    """Zero fractions per pruned layer, over the pruned layers, and over all weights of the model.

    `zero_channels` is the fraction of output channels whose weights are all exactly zero.
    """
    layers = {}
    for key in masks or {}:
        weight = weight_at(model, key).detach()
        if weight.ndim < 2:
            continue  # a bias or a norm's scale: dead with its channel, not a weight layer
        layers[key] = {
            "params": weight.numel(),
            "zero_fraction": (weight == 0).float().mean().item(),
            "zero_channels": (weight.flatten(1) == 0).all(dim=1).float().mean().item(),
        }
    total = zeros = 0
    for tensor in used_parameters(model):
        if tensor.ndim > 1:  # weights, not biases or norms
            total += tensor.numel()
            zeros += (tensor == 0).sum().item()
    pruned_total = sum(v["params"] for v in layers.values())
    return {
        "layers": layers,
        "pruned_layers": (sum(v["zero_fraction"] * v["params"] for v in layers.values()) / pruned_total)
        if pruned_total else 0.0,
        "overall": zeros / total if total else 0.0,
    }
