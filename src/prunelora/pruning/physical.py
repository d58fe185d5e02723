"""Physical structured pruning: pruned channels and heads are removed, so the model gets smaller.

Masks (masks.py) zero weights; the model keeps its shape, its size and its speed. Here the same
structured Ln criterion at the same amount selects output channels (convs, linears) or attention
heads, and they are cut out of the tensors:

- Channels go through Torch-Pruning's dependency graph (DepGraph): cutting a conv's output
  channel also cuts its BatchNorm, the next layer's input, every conv added to it in a residual
  sum, and the classifier's input after the pooled feature map. Coupled layers form one group;
  a group keeps `round((1 - amount) * C)` channels chosen by the mean over its layers of each
  output channel's Ln norm (for an uncoupled layer, exactly the channels mask pruning keeps).
- The head's outputs (classes) are never cut.
- Attention heads: `nn.MultiheadAttention` cannot hold fewer heads than its width (its q/k/v
  width is its embedding width), so an attention that loses heads becomes a `PrunedAttention`
  with q/k/v/out `nn.Linear` projections, importance = Ln norm of a head's q, k and v rows.
  Groups that would narrow the token width of a transformer (its residual stream) are left
  alone: for a ViT, pruning removes heads and MLP hidden units.

The pruned architecture is described as plain JSON (`{"modules": {name: spec}}`, one spec per
module whose shape changed) for meta.json; `rebuild_pruned` re-creates those modules on a
registry model, without running the pruning again, so that a checkpoint loads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn
from torch.nn import functional as F

from prunelora.errors import CheckpointError, InvalidInputError
from prunelora.pruning.masks import classifier_name, compile_pattern
from prunelora.pruning.settings import PruneSettings, layer_classes

ARCHITECTURE_FORMAT = 1


# ------------------------------------------------------------------------- attention with fewer heads


def _check_convertible(mha: nn.MultiheadAttention) -> None:
    if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
        raise InvalidInputError("head pruning supports MultiheadAttention without kdim/vdim, "
                                "bias_k/bias_v or add_zero_attn")


class PrunedAttention(nn.Module):
    """Multi-head attention whose q/k/v width is `num_heads * head_dim`, not the token width.

    A drop-in for `nn.MultiheadAttention` in the models here (same call, same result with all
    heads kept). The projections are `nn.Linear` modules that are called, so LoRA can adapt them.
    """

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = True) -> None:
        super().__init__()
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, head_dim
        self.dropout, self.batch_first = dropout, batch_first
        inner = num_heads * head_dim
        self.q_proj = nn.Linear(embed_dim, inner, bias=bias)
        self.k_proj = nn.Linear(embed_dim, inner, bias=bias)
        self.v_proj = nn.Linear(embed_dim, inner, bias=bias)
        self.out_proj = nn.Linear(inner, embed_dim, bias=bias)

    @classmethod
    def from_multihead(cls, mha: nn.MultiheadAttention) -> PrunedAttention:
        """The same function as `mha`, with its packed q/k/v split into three linears."""
        _check_convertible(mha)
        bias = mha.in_proj_bias is not None
        new = cls(mha.embed_dim, mha.num_heads, mha.head_dim, mha.dropout, bias, mha.batch_first)
        new.to(device=mha.in_proj_weight.device, dtype=mha.in_proj_weight.dtype)
        with torch.no_grad():
            for i, proj in enumerate((new.q_proj, new.k_proj, new.v_proj)):
                proj.weight.copy_(mha.in_proj_weight.chunk(3)[i])
                if bias:
                    proj.bias.copy_(mha.in_proj_bias.chunk(3)[i])
            new.out_proj.weight.copy_(mha.out_proj.weight)
            if bias:
                new.out_proj.bias.copy_(mha.out_proj.bias)
        new.train(mha.training)
        return new

    def head_importance(self, norm: int = 2) -> torch.Tensor:
        """Per head: the Ln norm of its q, k and v rows taken together."""
        return head_importance(self, norm)

    @torch.no_grad()
    def keep_heads(self, heads: Sequence[int]) -> None:
        """Keep only `heads` (indices, in this order): rows of q/k/v, columns of the out projection."""
        index = torch.tensor(list(heads), dtype=torch.long, device=self.q_proj.weight.device)
        rows = (index[:, None] * self.head_dim + torch.arange(self.head_dim, device=index.device)).flatten()
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            proj.weight = nn.Parameter(proj.weight.index_select(0, rows))
            if proj.bias is not None:
                proj.bias = nn.Parameter(proj.bias.index_select(0, rows))
            proj.out_features = len(rows)
        self.out_proj.weight = nn.Parameter(self.out_proj.weight.index_select(1, rows))
        self.out_proj.in_features = len(rows)
        self.num_heads = len(index)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        if key_padding_mask is not None or attn_mask is not None or is_causal:
            raise InvalidInputError("PrunedAttention takes no attention masks")
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        batch, length, _ = query.shape

        def heads(x: torch.Tensor) -> torch.Tensor:  # (B, L, h*d) -> (B, h, L, d)
            return x.view(batch, -1, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q_proj(query)), heads(self.k_proj(key)), heads(self.v_proj(value))
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:  # the explicit path, as nn.MultiheadAttention returns the weights
            weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.head_dim), dim=-1)
            out = F.dropout(weights, p, self.training) @ v
            weights = weights.mean(dim=1) if average_attn_weights else weights
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        out = self.out_proj(out.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim))
        return (out if self.batch_first else out.transpose(0, 1)), weights


def pruned_attention_macs_hook(module: PrunedAttention, inputs, output) -> None:
    """Torch-Pruning op-counter hook: multiply-accumulates of a `PrunedAttention` call, counted
    like its counter for `nn.MultiheadAttention` (projections, scores, softmax, weighted sum)."""
    query, key = inputs[0], inputs[1]
    batch_dim, len_dim = (0, 1) if module.batch_first else (1, 0)
    q_len, k_len = query.shape[len_dim], key.shape[len_dim]
    inner, width, heads = module.num_heads * module.head_dim, module.embed_dim, module.num_heads
    bias = module.q_proj.bias is not None
    macs = q_len * inner  # scaling q
    macs += (q_len + 2 * k_len) * width * inner + (q_len + 2 * k_len) * inner * bias
    macs += heads * (2 * q_len * k_len * module.head_dim + q_len * k_len)
    macs += q_len * inner * width + q_len * width * bias
    module.__flops__ += int(macs * query.shape[batch_dim])


# ------------------------------------------------------------------------- architecture description


def _conv_spec(m: nn.Conv2d) -> dict:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels, "kernel_size": list(m.kernel_size),
            "stride": list(m.stride), "padding": m.padding if isinstance(m.padding, str) else list(m.padding),
            "dilation": list(m.dilation), "groups": m.groups, "bias": m.bias is not None,
            "padding_mode": m.padding_mode}


def _bn_spec(m: nn.modules.batchnorm._BatchNorm) -> dict:
    return {"num_features": m.num_features, "eps": m.eps, "momentum": m.momentum, "affine": m.affine,
            "track_running_stats": m.track_running_stats}


_SPECS: dict[type[nn.Module], Callable[[nn.Module], dict]] = {
    nn.Conv2d: _conv_spec,
    nn.BatchNorm1d: _bn_spec,
    nn.BatchNorm2d: _bn_spec,
    nn.Linear: lambda m: {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None},
    nn.LayerNorm: lambda m: {"normalized_shape": list(m.normalized_shape), "eps": m.eps,
                             "elementwise_affine": m.elementwise_affine, "bias": m.bias is not None},
    nn.MultiheadAttention: lambda m: {"embed_dim": m.embed_dim, "num_heads": m.num_heads, "dropout": m.dropout,
                                      "bias": m.in_proj_bias is not None, "batch_first": m.batch_first},
    PrunedAttention: lambda m: {"embed_dim": m.embed_dim, "num_heads": m.num_heads, "head_dim": m.head_dim,
                                "dropout": m.dropout, "bias": m.q_proj.bias is not None,
                                "batch_first": m.batch_first},
}
_BUILDERS: dict[str, Callable[[dict], nn.Module]] = {
    "Conv2d": lambda s: nn.Conv2d(s["in_channels"], s["out_channels"], tuple(s["kernel_size"]), tuple(s["stride"]),
                                  s["padding"] if isinstance(s["padding"], str) else tuple(s["padding"]),
                                  tuple(s["dilation"]), s["groups"], s["bias"], s["padding_mode"]),
    "BatchNorm1d": lambda s: nn.BatchNorm1d(s["num_features"], s["eps"], s["momentum"], s["affine"],
                                            s["track_running_stats"]),
    "BatchNorm2d": lambda s: nn.BatchNorm2d(s["num_features"], s["eps"], s["momentum"], s["affine"],
                                            s["track_running_stats"]),
    "Linear": lambda s: nn.Linear(s["in_features"], s["out_features"], s["bias"]),
    "LayerNorm": lambda s: nn.LayerNorm(tuple(s["normalized_shape"]), s["eps"], s["elementwise_affine"],
                                        bias=s["bias"]),
    "MultiheadAttention": lambda s: nn.MultiheadAttention(s["embed_dim"], s["num_heads"], s["dropout"], s["bias"],
                                                          batch_first=s["batch_first"]),
    "PrunedAttention": lambda s: PrunedAttention(s["embed_dim"], s["num_heads"], s["head_dim"], s["dropout"],
                                                 s["bias"], s["batch_first"]),
}
_LEAVES = (nn.MultiheadAttention, PrunedAttention)  # their children follow from their own spec


def module_specs(model: nn.Module) -> dict[str, dict]:
    """`{name: {"type": ..., constructor arguments}}` of every module whose shape pruning can change."""
    specs: dict[str, dict] = {}
    leaf_prefixes: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(p + ".") for p in leaf_prefixes):
            continue
        describe = _SPECS.get(type(module))
        if describe is not None:
            specs[name] = {"type": type(module).__name__, **describe(module)}
        if isinstance(module, _LEAVES):
            leaf_prefixes.append(name)
    return specs


def merge_architecture(previous: dict | None, changes: dict) -> dict:
    """The description after `changes` were applied to a model already pruned as `previous`."""
    return {"format": ARCHITECTURE_FORMAT,
            "modules": {**((previous or {}).get("modules") or {}), **changes.get("modules", {})}}


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent_name), leaf, new)


def rebuild_pruned(model: nn.Module, architecture: dict) -> nn.Module:
    """Re-create, on a freshly built registry model, each module the description lists, with its
    stored shape (weights uninitialised in meaning: load the checkpoint's state next)."""
    modules = architecture.get("modules") if isinstance(architecture, dict) else None
    if not isinstance(modules, dict):
        raise CheckpointError("meta.json model.pruned has no 'modules' table")
    for name in sorted(modules, key=lambda n: n.count(".")):  # parents before children
        spec = dict(modules[name])
        kind = spec.pop("type", None)
        if kind not in _BUILDERS:
            raise CheckpointError(f"meta.json model.pruned: module {name!r} has type {kind!r}; "
                                  f"rebuildable types: {', '.join(_BUILDERS)}")
        try:
            _replace(model, name, _BUILDERS[kind](spec))
        except AttributeError:
            raise CheckpointError(f"meta.json model.pruned names module {name!r}, which the model lacks") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"meta.json model.pruned: module {name!r} has a bad spec ({exc})") from None
    return model


# ------------------------------------------------------------------------- importance and pruning


class GroupLnImportance:
    """Per channel of a DepGraph group: the mean, over the group's convs/linears whose outputs are
    cut, of that output channel's Ln norm (mask pruning's `LnImportance`, shared by coupled layers)."""

    def __init__(self, n: int = 2) -> None:
        PruneSettings(norm=n)  # refuses an order other than 1 or 2
        self.n = n

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor:
        out_fns = (tp.prune_conv_out_channels, tp.prune_linear_out_channels)
        scores = torch.zeros(len(group[0].idxs))
        layers = 0
        for i, (dep, idxs) in enumerate(group):
            if dep.handler not in out_fns:
                continue
            norms = dep.target.module.weight.detach()[idxs].flatten(1).norm(p=self.n, dim=1)
            scores.index_add_(0, torch.tensor(group[i].root_idxs), norms.float().cpu())
            layers += 1
        return scores / max(layers, 1)


class _AttentionWidth(tp.BasePruningFunc):
    """Lets DepGraph trace through a `PrunedAttention`; its token width is never cut (see module doc)."""

    def prune_out_channels(self, layer, idxs):
        raise InvalidInputError("the token width of an attention is not pruned physically")

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer):
        return layer.embed_dim

    def get_in_channels(self, layer):
        return layer.embed_dim


@dataclass
class PhysicalPruning:
    """What `physical_prune` did: the architecture change (for meta.json), the kept output channel
    (or head) indices of every layer it cut, and the selected layers it could not cut."""

    architecture: dict
    kept: dict[str, list[int]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def kept_count(channels: int, amount: float) -> int:
    """Channels (or heads) left of `channels` at `amount`: round((1 - amount) * C), at least one."""
    return max(1, round((1.0 - amount) * channels))


def _selected_names(model: nn.Module, types: Sequence[str], pattern: str | None, head_name: str | None) -> set[str]:
    wanted = layer_classes(types) + ((PrunedAttention,) if "mha" in types else ())
    head_name = classifier_name(model, head_name)
    regex = compile_pattern(model, pattern)
    names = {name for name, module in model.named_modules()
             if isinstance(module, wanted) and not (name == head_name or name.startswith(head_name + "."))
             and (regex is None or regex.search(name))}
    if not names:
        raise InvalidInputError(f"no layer of type {'/'.join(types)} matches pattern {pattern!r} (the head is excluded)")
    return names


@contextmanager
def _traceable(model: nn.Module) -> Iterator[None]:
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


def head_importance(attn: nn.Module, norm: int = 2) -> torch.Tensor:
    """Per head of an `nn.MultiheadAttention` or `PrunedAttention`: the Ln norm of its q, k and v
    rows taken together (the same numbers for both forms of one attention)."""
    if isinstance(attn, nn.MultiheadAttention):
        _check_convertible(attn)
        projections = attn.in_proj_weight.detach().chunk(3)
    else:
        projections = tuple(p.weight.detach() for p in (attn.q_proj, attn.k_proj, attn.v_proj))
    rows = torch.cat([w.reshape(attn.num_heads, -1) for w in projections], dim=1)
    return rows.norm(p=norm, dim=1)


def plan_structured(model: nn.Module, amount: float, norm: int = 2, types: Sequence[str] = ("conv",),
                    pattern: str | None = None, *, example_inputs: torch.Tensor, importance: Callable | None = None,
                    head_name: str | None = None, scope: str = "layer") -> StructuredPlan:
    """Choose, without changing `model`, the channels and heads structured pruning at `amount`
    removes (see the module doc: coupled layers are one group, attentions lose whole heads).

    `importance(group) -> scores` (higher = kept; default: the group Ln norm) scores channels; if it
    has a `head_scores(name, attention)` method, that scores heads (default: `head_importance`).
    `scope`: `layer` — every group and attention loses `amount` of its channels (heads); `global`
    — `amount` of all of them together, lowest scores first, at least one kept per group. Scores
    are ranked as they are when `importance.comparable_across_layers` is true (the dimensionless
    forget-aware ratios), else divided by their layer's mean |score| first (weight norms).
    """
    PruneSettings(amount=amount, norm=norm, scope=scope, types=tuple(types), pattern=pattern)
    head_name = classifier_name(model, head_name)
    selected = _selected_names(model, types, pattern, head_name)
    was_training = model.training
    device = next(model.parameters()).device
    head = model.get_submodule(head_name)
    plan = StructuredPlan()
    cut: set[str] = set()
    units: list[_Unit] = []
    if any(isinstance(m, (nn.Conv2d, nn.Linear)) for n, m in model.named_modules() if n in selected):
        with _traceable(model):
            units += _channel_units(model, selected, example_inputs.to(device),
                                    importance or GroupLnImportance(norm), head, plan, cut)
    head_scores = getattr(importance, "head_scores", None) or (lambda _, attn: head_importance(attn, norm).cpu())
    units += _head_units(model, selected, head_scores, cut)
    model.train(was_training)  # tracing left it in eval mode
    if scope == "global":
        dropped = _drop_global(units, amount, not getattr(importance, "comparable_across_layers", False))
    else:
        dropped = _drop_per_layer(units, amount)
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


def physical_prune(model: nn.Module, amount: float, norm: int = 2, types: Sequence[str] = ("conv",),
                   pattern: str | None = None, include_head: bool = False, *, example_inputs: torch.Tensor,
                   importance: Callable | None = None, head_name: str | None = None,
                   scope: str = "layer") -> PhysicalPruning:
    """Remove, in place, the channels (and heads) that structured Ln pruning at `amount` selects.

    `types`/`pattern` select layers as in `prune` (masks); a selected conv or linear has its output
    channels cut together with every layer coupled to them (see the module doc), a selected
    `MultiheadAttention` loses heads. `example_inputs`: one input batch, for tracing.
    `importance(group) -> scores` may replace the group Ln norm (e.g. a Torch-Pruning criterion, or
    a forget-aware one from `prunelora.pruning.criteria`); `scope` as in `plan_structured`.
    Returns the architecture change for meta.json (see `rebuild_pruned`).
    """
    PruneSettings(amount=amount, norm=norm, scope=scope, types=tuple(types), pattern=pattern,
                  include_head=include_head, mode="physical")
    before = module_specs(model)
    plan = plan_structured(model, amount, norm, types, pattern, example_inputs=example_inputs,
                           importance=importance, head_name=head_name, scope=scope)
    with _traceable(model):  # restores the requires_grad flags of the cut (new) parameters
        for root, handler, idxs in plan.groups:  # channel indices of one group are untouched by another's cut
            plan.graph.get_pruning_group(root, handler, idxs).prune()
    for name, module, kept in plan.heads:
        attn = PrunedAttention.from_multihead(module) if isinstance(module, nn.MultiheadAttention) else module
        attn.keep_heads(kept)
        _replace(model, name, attn)
    after = module_specs(model)
    return PhysicalPruning(architecture={"format": ARCHITECTURE_FORMAT,
                                         "modules": {n: s for n, s in after.items() if before.get(n) != s}},
                           kept=plan.kept, skipped=plan.skipped)
