"""The pruned architecture as plain JSON, and the model rebuilt from it.

`{"format": 1, "modules": {name: spec}}`, one spec per module whose shape pruning changed, is what
meta.json holds; `rebuild_pruned` re-creates those modules on a registry model, without running
the pruning again, so that a checkpoint loads.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from prunelora.errors import CheckpointError
from prunelora.pruning.attention import PrunedAttention

ARCHITECTURE_FORMAT = 1


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


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
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
            replace_module(model, name, _BUILDERS[kind](spec))
        except AttributeError:
            raise CheckpointError(f"meta.json model.pruned names module {name!r}, which the model lacks") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"meta.json model.pruned: module {name!r} has a bad spec ({exc})") from None
    return model
