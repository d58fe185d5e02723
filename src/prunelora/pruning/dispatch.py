"""Prune in place by a `PruneSettings`: mask mode (dead channels or weights-only or unstructured
masks, see `dead` and `masks`) or physical mode (channels removed, see `physical`); and the
BatchNorm recalibration that follows either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from prunelora.data.generic import make_loader
from prunelora.errors import InvalidInputError
from prunelora.pruning.dead import dead_masks
from prunelora.pruning.importance import LnImportance
from prunelora.pruning.masks import apply_masks, bake_masks, structured_masks, unstructured_masks
from prunelora.pruning.physical import PhysicalPruning, cut_pruned
from prunelora.pruning.selection import select_params
from prunelora.pruning.settings import PruneSettings


def prune_masks(model: nn.Module, settings: PruneSettings, *, bake: bool = False,
                example_inputs: torch.Tensor | None = None, head_name: str | None = None,
                importance: Callable | None = None) -> dict[str, torch.Tensor]:
    """Mask-prune `model` in place as `settings` asks; returns the masks, keyed `module.param`
    (see `prune` for what each kind of mask zeroes).

    Args:
        model: the model, pruned in place.
        settings: the request (its `mode` is not read: this is the mask path).
        bake: write the zeros into the tensors (else the masks stay attached, for training).
        example_inputs: one input batch; dead-channel pruning traces the model with it.
        head_name: the classifier's module name (found when None).
        importance: a group importance for dead-channel pruning (default: the Ln norm).

    Returns:
        The masks.

    Raises:
        InvalidInputError: dead-channel pruning without `example_inputs`, or another importance
            for weights-only masks.
    """
    if settings.structured and settings.targets == "dead":
        if example_inputs is None:
            raise InvalidInputError("dead-channel pruning traces the model: pass example_inputs (one input "
                                    "batch), or targets 'weights-only' for per-layer weight masks")
        params, masks, _ = dead_masks(model, settings, example_inputs=example_inputs, head_name=head_name,
                                      importance=importance)
    else:
        if settings.structured and importance is not None:  # (the settings refused scope 'global' already)
            raise InvalidInputError("weights-only structured pruning is per layer by Ln norm: another criterion "
                                    "needs targets 'dead'")
        params = select_params(model, settings.types, settings.pattern, settings.include_head, head_name)
        masks = structured_masks(params, settings.amount, LnImportance(settings.norm)) if settings.structured \
            else unstructured_masks(params, settings.amount, settings.scope)
    apply_masks(params, masks)
    if bake:
        bake_masks(model)
    return masks


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
    settings = PruneSettings(amount=amount, norm=norm, structured=structured, scope=scope, types=tuple(types),
                             pattern=pattern, include_head=include_head, targets=targets)
    return prune_masks(model, settings, bake=bake, example_inputs=example_inputs, head_name=head_name,
                       importance=importance)


def apply_pruning(model: nn.Module, settings: PruneSettings, *, example_inputs: torch.Tensor,
                  head_name: str | None = None, importance: Callable | None = None,
                  bake: bool = False) -> dict[str, torch.Tensor] | PhysicalPruning:
    """Prune `model` in place in `settings.mode`: the masks (mask mode, see `prune_masks`) or what
    was removed (physical mode, see `cut_pruned`).

    Args:
        model: the model, pruned in place.
        settings: the request.
        example_inputs: one input batch, for tracing.
        head_name: the classifier's module name (found when None).
        importance: replaces the Ln norm (structured pruning).
        bake: mask mode: write the zeros into the tensors.

    Returns:
        The masks, or a `PhysicalPruning`.
    """
    if settings.mode == "physical":
        return cut_pruned(model, settings, example_inputs=example_inputs, importance=importance, head_name=head_name)
    return prune_masks(model, settings, bake=bake, example_inputs=example_inputs, head_name=head_name,
                       importance=importance)


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
