"""Physical structured pruning: pruned channels and heads are removed, so the model gets smaller.

Masks (masks.py, dead.py) zero weights; the model keeps its shape, its size and its speed. Here
the plan of `plan.plan_pruning` (the same channels and heads dead-channel masks zero) is cut out of
the tensors: a group's channels through Torch-Pruning's dependency graph (the BatchNorm, the next
layer's input, every conv added in a residual sum, the classifier's input), an attention that
loses heads becomes a `PrunedAttention` with q/k/v/out `nn.Linear` projections. The head's
outputs (classes) and a transformer's token width are never cut.

The change is described as plain JSON for meta.json (`architecture`), from which
`architecture.rebuild_pruned` re-creates the pruned model so that a checkpoint loads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from prunelora.pruning.architecture import ARCHITECTURE_FORMAT, module_specs, replace_module
from prunelora.pruning.attention import PrunedAttention
from prunelora.pruning.plan import plan_pruning, traceable
from prunelora.pruning.settings import PruneSettings


@dataclass
class PhysicalPruning:
    """What `physical_prune` did: the architecture change (for meta.json), the kept output channel
    (or head) indices of every layer it cut, and the selected layers it could not cut."""

    architecture: dict
    kept: dict[str, list[int]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def cut_pruned(model: nn.Module, settings: PruneSettings, *, example_inputs: torch.Tensor,
               importance: Callable | None = None, head_name: str | None = None) -> PhysicalPruning:
    """Remove, in place, the channels and heads `plan_pruning(model, settings, ...)` chooses.

    Args:
        model: the model, changed in place.
        settings: the pruning request (its `mode` is not read: this is the physical path).
        example_inputs: one input batch, for tracing.
        importance: replaces the group Ln norm (see `plan_pruning`).
        head_name: the classifier's module name (found when None).

    Returns:
        The architecture change for meta.json (see `rebuild_pruned`) and the kept indices.
    """
    before = module_specs(model)
    plan = plan_pruning(model, settings, example_inputs=example_inputs, importance=importance, head_name=head_name)
    with traceable(model):  # restores the requires_grad flags of the cut (new) parameters
        for root, handler, idxs in plan.groups:  # channel indices of one group are untouched by another's cut
            plan.graph.get_pruning_group(root, handler, idxs).prune()
    for name, module, kept in plan.heads:
        attn = PrunedAttention.from_multihead(module) if isinstance(module, nn.MultiheadAttention) else module
        attn.keep_heads(kept)
        replace_module(model, name, attn)
    after = module_specs(model)
    return PhysicalPruning(architecture={"format": ARCHITECTURE_FORMAT,
                                         "modules": {n: s for n, s in after.items() if before.get(n) != s}},
                           kept=plan.kept, skipped=plan.skipped)


def physical_prune(model: nn.Module, amount: float, norm: int = 2, types: Sequence[str] = ("conv",),
                   pattern: str | None = None, include_head: bool = False, *, example_inputs: torch.Tensor,
                   importance: Callable | None = None, head_name: str | None = None,
                   scope: str = "layer") -> PhysicalPruning:
    """Remove, in place, the channels (and heads) that structured Ln pruning at `amount` selects.

    `types`/`pattern` select layers as in `prune` (masks); a selected conv or linear has its output
    channels cut together with every layer coupled to them (see the module doc), a selected
    `MultiheadAttention` loses heads. `example_inputs`: one input batch, for tracing.
    `importance(group) -> scores` may replace the group Ln norm (e.g. a Torch-Pruning criterion, or
    a forget-aware one from `prunelora.pruning.criteria`); `scope` as in `plan_pruning`.
    Returns the architecture change for meta.json (see `rebuild_pruned`).
    """
    settings = PruneSettings(amount=amount, norm=norm, scope=scope, types=tuple(types), pattern=pattern,
                             include_head=include_head, mode="physical")
    return cut_pruned(model, settings, example_inputs=example_inputs, importance=importance, head_name=head_name)
