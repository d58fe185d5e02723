"""Mask pruning: structured Ln (whole output channels / rows) and unstructured magnitude.

Structured pruning kills channels by default (`targets="dead"`, see `prunelora.pruning.dead`):
weight rows, biases and the following norms' affine parameters are masked, chosen as physical
pruning chooses them. `targets="weights-only"` is the paper's literal per-layer weight masking.

Masks are applied as `torch.nn.utils.parametrize` parametrizations, so the masked weight is
recomputed on every access. That matters for `nn.MultiheadAttention`, whose forward reads
`in_proj_weight` and `out_proj.weight` directly: a forward pre-hook (torch.nn.utils.prune) on
`out_proj` would never run. The masks stay applied during fine-tuning (the reference code removed
them first and so regrew the pruned weights) and are baked in with `bake_masks` at the end.

Importance criteria are callables passed in (as in Torch-Pruning), not flags.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from prunelora.data.generic import make_loader
from prunelora.errors import InvalidInputError
from prunelora.models.classifier import find_classifier
from prunelora.pruning.settings import PruneSettings, layer_classes


@dataclass(frozen=True)
class PrunedParam:
    """One prunable weight: `module.<param>` (e.g. a conv's `weight`, an MHA's `in_proj_weight`)."""

    name: str  # module name in the model
    module: nn.Module
    param: str

    @property
    def key(self) -> str:
        return f"{self.name}.{self.param}" if self.name else self.param


def select_params(model: nn.Module, types: Sequence[str] = ("conv",), pattern: str | None = None,
                  include_head: bool = False, head_name: str | None = None) -> list[PrunedParam]:
    """Weights of the layers of the given types whose name matches `pattern` (regex, searched).

    The classifier head is skipped unless `include_head`: pruning its rows deletes whole classes
    (the reference code did that with dim=0 on the head). For `mha` the packed q/k/v projection
    `in_proj_weight` is selected; its `out_proj` is an `nn.Linear` selected by `linear`.
    """
    wanted = layer_classes(types)
    head_name = classifier_name(model, head_name)
    regex = compile_pattern(model, pattern)
    out = []
    for name, module in model.named_modules():
        if not isinstance(module, wanted):
            continue
        if not include_head and (name == head_name or name.startswith(head_name + ".")):
            continue
        if regex is not None and not regex.search(name):
            continue
        param = "in_proj_weight" if isinstance(module, nn.MultiheadAttention) else "weight"
        if getattr(module, param, None) is None:
            continue
        out.append(PrunedParam(name, module, param))
    if not out:
        raise InvalidInputError(
            f"no layer of type {'/'.join(types)} matches pattern {pattern!r}"
            + ("" if include_head else " (the head is excluded)")
        )
    return out


def classifier_name(model: nn.Module, name: str | None = None) -> str:
    """The classifier's module name: `name` if given, else found (`prunelora.models.classifier`)."""
    return find_classifier(model, name)[0]


def compile_pattern(model: nn.Module, pattern: str | None) -> re.Pattern | None:
    """A layer-name regex; `{last}` stands for the highest block index it can match in `model`.

    So `blocks\\.{last}\\.attn` targets the last encoder block of a ViT of any depth, and one
    recipe serves models of different depths.
    """
    if pattern is None:
        return None
    try:
        if "{last}" in pattern:
            probe = re.compile(pattern.replace("{last}", r"(?P<last>\d+)"))
            found = [int(m.group("last")) for name, _ in model.named_modules() if (m := probe.search(name))]
            pattern = pattern.replace("{last}", str(max(found)) if found else "(?!)")
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidInputError(f"layer pattern {pattern!r} is not a valid regular expression ({exc})") from None


# ------------------------------------------------------------------------- importance criteria

Importance = Callable[[torch.Tensor], torch.Tensor]


class LnImportance:
    """Per output channel (dim 0): the Ln norm of that channel's weights (n = 1 or 2)."""

    def __init__(self, n: int = 2) -> None:
        PruneSettings(norm=n)  # refuses an order other than 1 or 2
        self.n = n

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.detach().flatten(1).norm(p=self.n, dim=1)


def magnitude(weight: torch.Tensor) -> torch.Tensor:
    """Per weight: |w|."""
    return weight.detach().abs()


def structured_masks(params: Sequence[PrunedParam], amount: float,
                     importance: Importance | None = None) -> dict[str, torch.Tensor]:
    """For each weight, zero the `round(amount * C)` output channels of lowest importance."""
    PruneSettings(amount=amount)
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
    PruneSettings(amount=amount, scope=scope, structured=False)
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


def prune(model: nn.Module, amount: float, structured: bool = True, norm: int = 2,
          types: Sequence[str] = ("conv",), pattern: str | None = None, include_head: bool = False,
          scope: str = "layer", bake: bool = False, *, targets: str = "dead",
          example_inputs: torch.Tensor | None = None, head_name: str | None = None,
          importance: Callable | None = None) -> dict[str, torch.Tensor]:
    """Prune `model` in place and return its masks, keyed `module.param`.

    Structured, `targets="dead"` (the default): the channels and heads physical pruning would cut
    are killed — their weight rows, biases and the following norms' weight and bias are masked,
    so each outputs exactly 0 (see `prunelora.pruning.dead`); coupled layers are chosen together,
    through a trace of the model on `example_inputs` (one input batch, required).
    Structured, `targets="weights-only"`: the paper's literal `ln_structured(dim=0)`, kept for the
    ablation — each selected layer independently loses its output-channel weight rows of lowest
    Ln norm; its bias and the next BatchNorm survive, so the channel still outputs a constant.
    Dead-channel pruning takes a group `importance` (see `prunelora.pruning.criteria`; default the
    Ln norm) and `scope` (`layer` or `global`, see `physical.plan_structured`); weights-only
    pruning is per layer and Ln only. Unstructured (`structured=False`): magnitude, per layer or
    `scope="global"`; `targets` does not apply. With `bake=False` the masks stay attached as parametrizations (for training); with
    `bake=True` the zeros are written into the tensors.
    """
    PruneSettings(amount=amount, norm=norm, structured=structured, scope=scope, types=tuple(types),
                  pattern=pattern, include_head=include_head, targets=targets)
    if structured and targets == "dead":
        if example_inputs is None:
            raise InvalidInputError("dead-channel pruning traces the model: pass example_inputs (one input "
                                    "batch), or targets 'weights-only' for per-layer weight masks")
        from prunelora.pruning.dead import dead_channel_masks  # it imports this module

        params, masks, _ = dead_channel_masks(model, amount, norm, types, pattern, example_inputs=example_inputs,
                                              head_name=head_name, importance=importance, scope=scope)
    else:
        if structured and importance is not None:  # (the settings refused scope 'global' already)
            raise InvalidInputError("weights-only structured pruning is per layer by Ln norm: another criterion "
                                    "needs targets 'dead'")
        params = select_params(model, types, pattern, include_head, head_name)
        masks = structured_masks(params, amount, LnImportance(norm)) if structured else \
            unstructured_masks(params, amount, scope)
    apply_masks(params, masks)
    if bake:
        bake_masks(model)
    return masks


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


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, dataset, batch_size: int = 256, max_batches: int | None = None,
                          device: torch.device | str = "cpu") -> int:
    """Recompute BatchNorm running statistics by a no-grad pass over `dataset` in train mode.

    Pruning leaves them stale: a zeroed channel keeps its old running variance while its output
    collapses, and channels whose variance shrank are amplified. Returns the number of BN layers.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    was_training = model.training
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    model.train()
    for i, (x, _) in enumerate(make_loader(dataset, batch_size=batch_size, shuffle=True, seed=0)):
        if max_batches is not None and i >= max_batches:
            break
        model(x.to(device))
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    model.train(was_training)
    return len(norms)
