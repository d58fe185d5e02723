"""Dead-channel masks: structured mask pruning that removes channels in function, not just weights.

Zeroing a conv's weight row alone (the paper's literal `ln_structured`) leaves the channel alive:
its bias and the following BatchNorm's beta still add a constant, so after the ReLU it outputs
relu(beta), and fine-tuning keeps training that beta. Here a pruned channel is dead: its output is
exactly 0 in training and evaluation, after a LoRA merge and in the saved model.

The channels are chosen by the same plan as physical pruning (`plan.plan_pruning`: DepGraph
groups, so coupled residual channels go together, scored by `LnImportance`; attentions lose
whole heads), and for each dropped channel the masks zero

- the output row (and bias) of every conv/linear of the group that produces the channel,
- the affine weight and bias of every normalisation of the group (BatchNorm, LayerNorm, GroupNorm),
- for a dropped head, its q, k and v rows and biases (so its values, hence its output, are 0).

Inputs of the next layers are left as they are: they multiply zeros. For BatchNorm (per-channel
statistics) the masked model and the physically pruned one compute the same function, which is
what makes `prune_mode` a matter of speed only; a LayerNorm or GroupNorm inside a group still
counts the dead channel in its statistics, so there the two differ slightly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from prunelora.pruning.attention import PrunedAttention
from prunelora.pruning.plan import StructuredPlan, plan_pruning
from prunelora.pruning.selection import PrunedParam
from prunelora.pruning.settings import PruneSettings

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


class _MaskBuilder:
    """Collects the zeros of each (module, parameter) as a mask of that parameter's shape."""

    def __init__(self, model: nn.Module) -> None:
        self.name_of = {module: name for name, module in model.named_modules()}
        self.params: dict[str, PrunedParam] = {}
        self.masks: dict[str, torch.Tensor] = {}

    def zero(self, module: nn.Module, param: str, rows: Sequence[int] | torch.Tensor, dim: int = 0) -> None:
        tensor = getattr(module, param, None)
        if not isinstance(tensor, torch.Tensor):
            return  # no bias, or a norm without affine parameters
        p = PrunedParam(self.name_of[module], module, param)
        if p.key not in self.masks:
            self.params[p.key] = p
            self.masks[p.key] = torch.ones_like(tensor.detach())
        index = torch.as_tensor(rows, dtype=torch.long, device=tensor.device)
        self.masks[p.key].index_fill_(dim, index, 0.0)


def _channel_deps(plan: StructuredPlan, builder: _MaskBuilder) -> list[tuple[nn.Module, list[int]]]:
    """Zero every parameter that produces or scales a dropped channel; returns the norms touched."""
    norms = []
    for root, handler, drop in plan.groups:
        group = plan.graph.get_pruning_group(root, handler, drop)
        for dep, idxs in group:
            module, idxs = dep.target.module, list(idxs)
            if isinstance(module, (nn.Conv2d, nn.Linear)) and plan.graph.is_out_channel_pruning_fn(dep.handler):
                builder.zero(module, "weight", idxs)
                builder.zero(module, "bias", idxs)
            elif isinstance(module, _NORMS):
                weight = getattr(module, "weight", None)
                if isinstance(weight, torch.Tensor) and weight.ndim == 1:
                    builder.zero(module, "weight", idxs)
                    builder.zero(module, "bias", idxs)
                    norms.append((module, idxs))
    return norms


def _head_rows(attn: nn.Module, kept: Sequence[int]) -> torch.Tensor:
    dropped = [h for h in range(attn.num_heads) if h not in set(kept)]
    index = torch.tensor(dropped, dtype=torch.long)
    return (index[:, None] * attn.head_dim + torch.arange(attn.head_dim)).flatten()


def _heads(plan: StructuredPlan, builder: _MaskBuilder) -> None:
    for _, attn, kept in plan.heads:
        rows = _head_rows(attn, kept)
        if isinstance(attn, nn.MultiheadAttention):  # packed q/k/v: one block of embed_dim rows each
            packed = torch.cat([rows + i * attn.embed_dim for i in range(3)])
            builder.zero(attn, "in_proj_weight", packed)
            builder.zero(attn, "in_proj_bias", packed)
        elif isinstance(attn, PrunedAttention):
            for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
                builder.zero(proj, "weight", rows)
                builder.zero(proj, "bias", rows)


@torch.no_grad()
def dead_masks(model: nn.Module, settings: PruneSettings, *, example_inputs: torch.Tensor,
               importance: Callable | None = None,
               head_name: str | None = None) -> tuple[list[PrunedParam], dict[str, torch.Tensor], StructuredPlan]:
    """The masks (keyed `module.param`) that kill the channels and heads `physical_prune` would cut.

    Args:
        model: the model; only the running statistics of its dead BatchNorm channels change.
        settings: the pruning request (amount, norm, scope, layer types and pattern).
        example_inputs: one input batch, for tracing.
        importance: replaces the group Ln norm (see `plan_pruning`).
        head_name: the classifier's module name (found when None).

    Returns:
        (parameters to mask, masks, the plan). The running statistics of the dead BatchNorm
        channels are reset to mean 0, variance 1: with a zero weight and bias their output is 0
        either way, and the stored statistics then say nothing about the data that channel once saw.
    """
    plan = plan_pruning(model, settings, example_inputs=example_inputs, importance=importance, head_name=head_name)
    builder = _MaskBuilder(model)
    for module, idxs in _channel_deps(plan, builder):
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats \
                and module.running_mean is not None:
            index = torch.as_tensor(idxs, dtype=torch.long, device=module.running_mean.device)
            module.running_mean.index_fill_(0, index, 0.0)
            module.running_var.index_fill_(0, index, 1.0)
    _heads(plan, builder)
    return list(builder.params.values()), builder.masks, plan


def dead_channel_masks(model: nn.Module, amount: float, norm: int = 2, types: Sequence[str] = ("conv",),
                       pattern: str | None = None, *, example_inputs: torch.Tensor,
                       importance: Callable | None = None, head_name: str | None = None,
                       scope: str = "layer") -> tuple[list[PrunedParam], dict[str, torch.Tensor], StructuredPlan]:
    """`dead_masks` with the settings given one by one (see `PruneSettings` for each)."""
    settings = PruneSettings(amount=amount, norm=norm, scope=scope, types=tuple(types), pattern=pattern)
    return dead_masks(model, settings, example_inputs=example_inputs, importance=importance, head_name=head_name)
