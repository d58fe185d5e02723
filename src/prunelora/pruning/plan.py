"""The structured pruning plan: which channels and heads go, chosen once for masks and removal.

- Channels go through Torch-Pruning's dependency graph (DepGraph): cutting a conv's output
  channel also cuts its BatchNorm, the next layer's input, every conv added to it in a residual
  sum, and the classifier's input after the pooled feature map. Coupled layers form one group;
  a group keeps `round((1 - amount) * C)` channels chosen by an importance (default: the mean
  over its layers of each output channel's Ln norm, `importance.LnImportance`; for an uncoupled
  layer, exactly the channels weights-only mask pruning keeps).
- The head's outputs (classes) are never cut.
- Attention heads: an attention loses whole heads, scored by the Ln norm of a head's q, k and v
  rows (or the importance's `head_scores`). Groups that would narrow the token width of a
  transformer (its residual stream) are left alone: for a ViT, pruning removes heads and MLP
  hidden units.

`physical.physical_prune` cuts the plan out; `dead.dead_channel_masks` zeroes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from prunelora.errors import InvalidInputError
from prunelora.pruning.attention import PrunedAttention
from prunelora.pruning.importance import LnImportance
from prunelora.pruning.selection import classifier_name, select_layers
from prunelora.pruning.settings import PruneSettings


class _AttentionWidth(tp.BasePruningFunc):
    """Lets DepGraph trace through a `PrunedAttention`; its token width is never cut (see `physical`)."""

    def prune_out_channels(self, layer, idxs):
        raise InvalidInputError("the token width of an attention is not pruned physically")

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer):
        return layer.embed_dim

    def get_in_channels(self, layer):
        return layer.embed_dim


def kept_count(channels: int, amount: float) -> int:
    """Channels (or heads) left of `channels` at `amount`: round((1 - amount) * C), at least one."""
    return max(1, round((1.0 - amount) * channels))


@contextmanager
def traceable(model: nn.Module) -> Iterator[None]:
    """DepGraph traces through autograd: every parameter must take part in the graph. The flags are
    restored by name afterwards (a cut parameter is a new tensor)."""
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(True)
    try:
        yield
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(flags.get(name, True))


@dataclass
class StructuredPlan:
    """What structured Ln pruning at an amount removes, chosen once for both ways of pruning:
    `physical_prune` cuts it out, dead-channel mask pruning zeroes it (`prune(targets="dead")`),
    so the two give the same model.

    `groups`: per DepGraph group that loses channels, (root module, its handler, dropped channel
    indices of the root); `graph.get_pruning_group(*entry)` lists every layer the cut touches.
    `heads`: per attention that loses heads, (name, module, kept head indices).
    """

    graph: object | None = None
    groups: list[tuple[nn.Module, Callable, list[int]]] = field(default_factory=list)
    heads: list[tuple[str, nn.Module, list[int]]] = field(default_factory=list)
    kept: dict[str, list[int]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


@dataclass
class _Unit:
    """Something that loses channels: a DepGraph group (`root`, `handler`, its output layers'
    `names`) or an attention's heads (`attn`, `names` = [its name]), with one score per channel."""

    names: list[str]
    scores: torch.Tensor
    root: nn.Module | None = None
    handler: Callable | None = None
    attn: nn.Module | None = None


def _channel_units(model: nn.Module, selected: set[str], example_inputs: torch.Tensor, importance: Callable,
                   head: nn.Module | None, plan: StructuredPlan, cut: set[str]) -> list[_Unit]:
    name_of = {module: name for name, module in model.named_modules()}
    with torch.enable_grad():
        graph = tp.DependencyGraph().build_dependency(
            model, example_inputs, customized_pruners={PrunedAttention: _AttentionWidth()}, verbose=False)
    plan.graph = graph
    attention = (nn.MultiheadAttention, PrunedAttention, nn.Parameter)
    units = []
    # Every group is scored on the original weights (as mask pruning does) before anything is cut:
    # cutting one group narrows the inputs of the next, which must not change what that one keeps.
    for group in graph.get_all_groups(ignored_layers=[head] if head is not None else [],
                                      root_module_types=(nn.Conv2d, nn.Linear)):
        targets = [dep.target.module for dep, _ in group]
        outputs = [name_of.get(dep.target.module) for dep, _ in group
                   if graph.is_out_channel_pruning_fn(dep.handler)]
        if not selected.intersection(outputs) or any(isinstance(t, attention) for t in targets):
            continue  # not asked for, or the token width of a transformer
        cut.update(n for n in outputs if n is not None)
        scores = importance(group)
        if scores is None:  # a criterion that cannot score this group (Torch-Pruning's convention)
            continue
        units.append(_Unit([n for n in outputs if n is not None], scores.float().cpu(),
                           root=group[0].dep.target.module, handler=group[0].dep.handler))
    return units


def _head_units(model: nn.Module, selected: set[str], head_scores: Callable, cut: set[str]) -> list[_Unit]:
    units = []
    for name, module in model.named_modules():
        if name not in selected or not isinstance(module, (nn.MultiheadAttention, PrunedAttention)):
            continue
        cut.add(name)
        units.append(_Unit([name], head_scores(name, module).float().cpu(), attn=module))
    return units


def _drop_per_layer(units: list[_Unit], amount: float) -> list[list[int]]:
    """Each unit drops its `C - kept_count(C, amount)` lowest-scored channels (ties by index)."""
    dropped = []
    for unit in units:
        channels = len(unit.scores)
        order = torch.sort(unit.scores, stable=True).indices
        dropped.append(sorted(order[: channels - kept_count(channels, amount)].tolist()))
    return dropped


def _drop_global(units: list[_Unit], amount: float, normalise: bool) -> list[list[int]]:
    """`round(amount * N)` of all N channels, lowest scores first across units, at least one kept
    per unit. `normalise`: divide each unit's scores by its mean |score| first (for criteria whose
    scale differs between layers, like weight norms)."""
    scores = [u.scores / u.scores.abs().mean().clamp_min(1e-12) if normalise else u.scores for u in units]
    if not scores:
        return []
    flat = torch.cat(scores)
    owner = torch.cat([torch.full((len(s),), i) for i, s in enumerate(scores)]).tolist()
    offsets = [0]
    for s in scores:
        offsets.append(offsets[-1] + len(s))
    budget = int(round(amount * len(flat)))
    left = [len(s) for s in scores]
    dropped: list[list[int]] = [[] for _ in units]
    for index in torch.sort(flat, stable=True).indices.tolist():
        if budget == 0:
            break
        unit = owner[index]
        if left[unit] > 1:
            dropped[unit].append(index - offsets[unit])
            left[unit] -= 1
            budget -= 1
    return [sorted(d) for d in dropped]


def plan_pruning(model: nn.Module, settings: PruneSettings, *, example_inputs: torch.Tensor,
                 importance: Callable | None = None, head_name: str | None = None) -> StructuredPlan:
    """Choose, without changing `model`, the channels and heads structured pruning as `settings`
    asks removes (see the module doc: coupled layers are one group, attentions lose whole heads).

    Args:
        model: the model; left as it was (tracing needs every parameter's gradient for a moment).
        settings: amount, norm, scope, layer types and pattern (the rest does not change the plan).
        example_inputs: one input batch, for tracing.
        importance: `importance(group) -> scores` (higher = kept; default `LnImportance`) scores
            channels; if it has a `head_scores(name, attention)` method, that scores heads.
            `scope="layer"`: every group and attention loses `amount` of its channels (heads);
            `"global"`: `amount` of all of them together, lowest scores first, at least one kept
            per group. Scores are ranked as they are when `importance.comparable_across_layers`
            is true (the dimensionless forget-aware ratios), else divided by their layer's mean
            |score| first (weight norms).
        head_name: the classifier's module name (found when None); never cut.

    Returns:
        The plan.

    Raises:
        InvalidInputError: nothing selected, or nothing of it can be cut.
    """
    head_name = classifier_name(model, head_name)
    selected = {name for name, _ in select_layers(model, settings.types, settings.pattern, head_name=head_name,
                                                  pruned_attention=True)}
    was_training = model.training
    device = next(model.parameters()).device
    head = model.get_submodule(head_name)
    plan = StructuredPlan()
    cut: set[str] = set()
    units: list[_Unit] = []
    importance = importance or LnImportance(settings.norm)
    if any(isinstance(m, (nn.Conv2d, nn.Linear)) for n, m in model.named_modules() if n in selected):
        with traceable(model):
            units += _channel_units(model, selected, example_inputs.to(device),
                                    importance, head, plan, cut)
    head_scores = getattr(importance, "head_scores", None) or LnImportance(settings.norm).head_scores
    units += _head_units(model, selected, head_scores, cut)
    model.train(was_training)  # tracing left it in eval mode
    if settings.scope == "global":
        dropped = _drop_global(units, settings.amount, not getattr(importance, "comparable_across_layers", False))
    else:
        dropped = _drop_per_layer(units, settings.amount)
    for unit, drop in zip(units, dropped, strict=True):
        kept = [i for i in range(len(unit.scores)) if i not in set(drop)]
        plan.kept.update({n: kept for n in unit.names})
        if not drop:
            continue
        if unit.attn is not None:
            plan.heads.append((unit.names[0], unit.attn, kept))
        else:
            plan.groups.append((unit.root, unit.handler, drop))
    plan.skipped = sorted(selected - cut)
    if not cut:
        raise InvalidInputError(
            f"structured pruning can cut none of the selected layers ({', '.join(sorted(selected)[:4])}...): their "
            "outputs are the token width of a transformer; select attention heads (mha) or MLP hidden layers")
    return plan


def plan_structured(model: nn.Module, amount: float, norm: int = 2, types: Sequence[str] = ("conv",),
                    pattern: str | None = None, *, example_inputs: torch.Tensor, importance: Callable | None = None,
                    head_name: str | None = None, scope: str = "layer") -> StructuredPlan:
    """`plan_pruning` with the settings given one by one (see `PruneSettings` for each)."""
    return plan_pruning(model, PruneSettings(amount=amount, norm=norm, scope=scope, types=tuple(types),
                                             pattern=pattern),
                        example_inputs=example_inputs, importance=importance, head_name=head_name)
