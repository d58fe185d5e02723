"""Forget subspaces per layer, their removal from the weights, and LoRA kept out of them.

A layer reads the forgotten class through directions of its *input*: where the forgotten class's
mean input differs from the retained classes' ones. Removing each weight's component along those
directions (closed form, no gradient step) blinds the layer to them; a repair on D_r then rebuilds
the outputs, but a free repair also rebuilds the class's features from what it keeps (measured:
the probe on the forgotten class falls from 10.8 to 4.0 points above the retrain's after the
removal, and climbs back to 8.4 after one epoch of free fine-tuning). So the repair here is a LoRA
whose input-side matrix A is parameterised in the complement of the subspace: every update, and
so the merged weight, has exactly zero component along it.

- `layer_inputs_by_class`: per-class mean input of every editable layer (convs pooled over space,
  linears and attention over tokens), from forward hooks in one pass per dataset.
- `forget_subspaces`: per layer, the top-k right singular vectors of the differences between the
  forget set's mean input and each retained class's mean input (class-wise forgetting), and, for
  the forget set's records of classes the retain set shares (random records), between the forget
  set's and the retain set's mean input within each class; a forget set of both kinds (a whole
  class plus some records of another) takes both.
- `remove_subspace`: W ← W − s·(W U) Uᵀ along the input dimension.
- `add_subspace_lora` / `merge_subspace_lora`: LoRA (W + (alpha/r)·B·A(I − UUᵀ)) as a
  `torch.nn.utils.parametrize` parametrization, and its merge into plain weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from prunelora.data.generic import eval_view, make_loader
from prunelora.errors import InvalidInputError
from prunelora.models.classifier import layer_input, pool_features
from prunelora.training.loop import resolve_device

__all__ = ["SubspaceLoRA", "add_subspace_lora", "editable_layers", "forget_component", "forget_subspaces",
           "layer_inputs_by_class", "merge_subspace_lora", "remove_subspace"]


def _weight_name(module: nn.Module) -> str | None:
    """The weight a layer applies to its input: `weight` of a Conv2d / Linear, `in_proj_weight` of
    an attention with equal q/k/v sizes; None for anything else (left alone)."""
    if isinstance(module, nn.Conv2d) and module.groups == 1:
        return "weight"
    if isinstance(module, nn.Linear):
        return "weight"
    if isinstance(module, nn.MultiheadAttention) and module._qkv_same_embed_dim:
        return "in_proj_weight"
    return None


def editable_layers(model: nn.Module, min_input_dim: int = 2) -> dict[str, nn.Module]:
    """Layers whose input subspace can be edited: Conv2d (ungrouped), Linear, MultiheadAttention,
    with at least `min_input_dim` input channels (a 1-channel stem has no direction to spare).
    An attention's `out_proj` is listed but never runs as a module, so it gets no statistics and
    is skipped by `forget_subspaces`."""
    out = {}
    for name, module in model.named_modules():
        weight = _weight_name(module)
        if weight is not None and getattr(module, weight).shape[1] >= min_input_dim:
            out[name] = module
    return out


@torch.no_grad()
def layer_inputs_by_class(model: nn.Module, dataset, layers: dict[str, nn.Module], *, batch_size: int = 256,
                          device: str | torch.device | None = None) -> dict[str, dict[int, torch.Tensor]]:
    """Mean pooled input of each layer per class of `dataset` (eval mode, no gradients).

    Args:
        model: the model.
        dataset: images and labels.
        layers: name -> module (e.g. `editable_layers(model)`).
        batch_size: images per forward pass.
        device: where to run.

    Returns:
        `{layer: {class: (in,) float64 CPU mean}}`; a layer that never ran is absent.
    """
    device = resolve_device(device)
    sums: dict[str, dict[int, torch.Tensor]] = {}
    counts: dict[int, int] = {}
    labels: list[torch.Tensor] = []

    def hook(name: str):
        def record(module, args, kwargs):
            pooled = pool_features(layer_input(module, args, kwargs).detach()).double().cpu()
            y = labels[-1]
            per_class = sums.setdefault(name, {})
            for c in y.unique().tolist():
                total = pooled[y == c].sum(0)
                per_class[c] = per_class[c] + total if c in per_class else total
        return record

    was_training = model.training
    model.to(device).eval()
    handles = [m.register_forward_pre_hook(hook(name), with_kwargs=True) for name, m in layers.items()]
    try:
        for x, y in make_loader(eval_view(dataset), batch_size=batch_size):
            labels.append(y)
            for c in y.unique().tolist():
                counts[c] = counts.get(c, 0) + int((y == c).sum())
            model(x.to(device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {name: {c: total / counts[c] for c, total in per_class.items()} for name, per_class in sums.items()}


def forget_subspaces(model: nn.Module, forget, retain, rank: int, *, layers: dict[str, nn.Module] | None = None,
                     device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """Per layer, an orthonormal basis `(in, k)` of the directions that set the forget set apart.

    Args:
        model: the model to edit.
        forget: D_f (or a sample of it).
        retain: D_r (or a sample of it).
        rank: k, the directions per layer (fewer where the differences span fewer; a layer where
            they span none is left out).
        layers: which layers (default `editable_layers(model, 2 * rank)`).
        device: where to run.

    Returns:
        `{layer: U}` with UᵀU = I, float32 on the CPU.

    Raises:
        InvalidInputError: `rank` < 1, or an empty forget or retain set.
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise InvalidInputError(f"subspace rank {rank!r} must be a positive integer")
    if len(forget) == 0 or len(retain) == 0:
        raise InvalidInputError("a forget subspace needs images of the forget set and of the retain set")
    layers = editable_layers(model, 2 * rank) if layers is None else layers
    forgotten = layer_inputs_by_class(model, forget, layers, device=device)
    kept = layer_inputs_by_class(model, retain, layers, device=device)
    out = {}
    for name in layers:
        if name not in forgotten or name not in kept:
            continue
        f, r = forgotten[name], kept[name]
        # records of retained classes: within-class differences
        diffs = [f[c] - r[c] for c in sorted(set(f) & set(r))]
        whole = [c for c in sorted(f) if c not in r]
        if whole:  # whole classes: their mean against each retained class's (each forgotten class weighs the same)
            forget_mean = torch.stack([f[c] for c in whole]).mean(0)
            diffs += [forget_mean - r[c] for c in sorted(r)]
        _, s, vh = torch.linalg.svd(torch.stack(diffs), full_matrices=False)
        # directions the differences actually span (a zero singular value's vector is arbitrary)
        k = min(rank, int((s > s[0] * 1e-6).sum()) if s[0] > 0 else 0)
        if k:
            out[name] = vh[:k].T.float().contiguous()
    return out


def _along_input(weight: torch.Tensor, fn) -> torch.Tensor:
    """Apply `fn` to `weight` viewed as (..., in): the input dimension (1) moved last and back."""
    moved = weight.movedim(1, -1)
    return fn(moved).movedim(-1, 1)


def remove_subspace(module: nn.Module, basis: torch.Tensor, strength: float = 1.0) -> None:
    """In place: W ← W − strength·(W U) Uᵀ along the layer's input dimension.

    Args:
        module: a layer of `editable_layers`.
        basis: `(in, k)` orthonormal columns U.
        strength: the share of the component removed (1: all of it).
    """
    name = _weight_name(module)
    weight = getattr(module, name)
    u = basis.to(weight.device, weight.dtype)
    with torch.no_grad():
        weight.sub_(strength * _along_input(weight, lambda w: (w @ u) @ u.T))


def forget_component(module: nn.Module, basis: torch.Tensor) -> float:
    """Largest |component| of the layer's (merged) weight along `basis`: 0 once removed."""
    weight = getattr(module, _weight_name(module)).detach()
    return float(_along_input(weight, lambda w: w @ basis.to(w.device, w.dtype)).abs().max())


class SubspaceLoRA(nn.Module):
    """The parametrization W ↦ W + (alpha/r)·B·A_c, with A_c = A − (A U) Uᵀ along the input
    dimension: the update never has a component along U. A: `(r, in, *kernel)` small random;
    B: `(out, r)` zeros, so training starts from W."""

    def __init__(self, weight: torch.Tensor, basis: torch.Tensor, rank: int, alpha: float, seed: int = 0) -> None:
        super().__init__()
        out_dim, in_dim, *kernel = weight.shape
        generator = torch.Generator().manual_seed(seed)
        fan_in = in_dim * math.prod(kernel)
        self.lora_A = nn.Parameter(torch.randn(rank, in_dim, *kernel, generator=generator).to(weight) / math.sqrt(fan_in))
        self.lora_B = nn.Parameter(torch.zeros(out_dim, rank).to(weight))
        self.register_buffer("basis", basis.to(weight))
        self.scale = alpha / rank

    def update(self) -> torch.Tensor:
        u = self.basis
        a = _along_input(self.lora_A, lambda w: w - (w @ u) @ u.T)
        return self.scale * torch.tensordot(self.lora_B, a, dims=([1], [0]))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.update()


def add_subspace_lora(model: nn.Module, subspaces: dict[str, torch.Tensor], rank: int, alpha: float,
                      seed: int = 0) -> list[nn.Parameter]:
    """Freeze every parameter of `model` and add a `SubspaceLoRA` to each layer of `subspaces`.

    Args:
        model: the model (edited in place).
        subspaces: layer -> its basis U (`forget_subspaces`).
        rank: the LoRA rank r.
        alpha: the LoRA scale numerator (update scale alpha / r).
        seed: the A matrices' initialisation.

    Returns:
        The adapters' parameters (the only ones left trainable).
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise InvalidInputError(f"LoRA rank {rank!r} must be a positive integer")
    for p in model.parameters():
        p.requires_grad_(False)
    params: list[nn.Parameter] = []
    for i, (name, basis) in enumerate(sorted(subspaces.items())):
        module = model.get_submodule(name)
        weight_name = _weight_name(module)
        lora = SubspaceLoRA(getattr(module, weight_name), basis, rank, alpha, seed + i)
        parametrize.register_parametrization(module, weight_name, lora)
        params += [lora.lora_A, lora.lora_B]
    return params


def merge_subspace_lora(model: nn.Module) -> nn.Module:
    """Merge every `SubspaceLoRA` into its weight and remove the parametrizations: a plain model."""
    for module in list(model.modules()):
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    for p in model.parameters():
        p.requires_grad_(True)
    return model
