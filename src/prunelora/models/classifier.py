"""Find a model's classifier (its final linear layer), on any architecture.

Metrics that look inside a model (the representation probe) and methods that treat the head
apart need to know which module is the classifier. `find_classifier` answers without assuming an
attribute name, so it works on any supported model — the registry's `Classifier`s (`head`),
torchvision models (`fc`, `classifier.N`, `heads.head`), timm models (`get_classifier()`) and
plain `nn.Sequential` networks. What enters it is captured by `prunelora.evaluation.features`.
"""

from __future__ import annotations

import torch
from torch import nn

from prunelora.errors import InvalidInputError

__all__ = ["Classifier", "classifier_outputs", "find_classifier", "find_module", "layer_input", "pool_features"]


class Classifier(nn.Module):
    """The registry's models: `forward(x) = head(features(x))`. Subclasses implement `features`;
    `head` is the final `nn.Linear`, so methods and metrics can treat all architectures alike."""

    head: nn.Linear

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _some_names(model: nn.Module, limit: int = 8) -> str:
    names = [name for name, _ in model.named_modules() if name][:limit]
    return ", ".join(names) + (", ..." if len(names) == limit else "") if names else "none"


def find_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule called `name` (as in `named_modules()`); one clear error when there is none."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise InvalidInputError(f"{type(model).__name__} has no module {name!r}; its modules include "
                                f"{_some_names(model)}") from None


def find_classifier(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module]:
    """`(name, module)` of the model's classifier, the layer that maps features to logits.

    Resolution order: the module called `name` when given; else a `head` attribute (every model
    of the registry); else timm's `get_classifier()`; else the last `nn.Linear` in
    `named_modules()` order (torchvision's `fc`, `classifier.6`, `heads.head`, an `nn.Sequential`
    CNN's final layer). Raises `InvalidInputError` when none of these exists.
    """
    if name is not None:
        return name, find_module(model, name)
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module):
        return "head", head
    get_classifier = getattr(model, "get_classifier", None)
    if callable(get_classifier):
        module = get_classifier()
        if isinstance(module, nn.Module):
            for found_name, found in model.named_modules():
                if found is module:
                    return found_name, module
    last: tuple[str, nn.Module] | None = None
    for found_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = (found_name, module)
    if last is None:
        raise InvalidInputError(f"{type(model).__name__} has no classifier: no `head`, no get_classifier() and no "
                                f"nn.Linear; name the classifier module (its modules include {_some_names(model)})")
    return last


def classifier_outputs(model: nn.Module, name: str | None = None) -> int | None:
    """How many classes the classifier scores (its `out_features`), when it says."""
    out = getattr(find_classifier(model, name)[1], "out_features", None)
    return int(out) if isinstance(out, int) else None


def layer_input(module: nn.Module, args: tuple, kwargs: dict) -> torch.Tensor:
    """What enters `module`, seen by a forward pre-hook registered `with_kwargs=True`, batch first:
    the first positional argument, else the `query` (attention) or `input` keyword. An
    `nn.MultiheadAttention` built with `batch_first=False` (PyTorch's default) takes `(T, N, D)`,
    returned as `(N, T, D)` so that pooling averages over tokens, not over the batch."""
    value = args[0] if args else kwargs.get("query", kwargs.get("input"))
    if isinstance(module, nn.MultiheadAttention) and not module.batch_first and value.ndim == 3:
        value = value.transpose(0, 1)
    return value


def pool_features(value: torch.Tensor | tuple) -> torch.Tensor:
    """A layer's activations as one vector per sample: `(N, C, H, W)` maps are averaged over space
    (global average pooling), `(N, T, D)` token sequences over tokens, anything else flattened.
    A tuple output (e.g. `nn.MultiheadAttention`'s) contributes its first element."""
    if isinstance(value, (tuple, list)):
        value = value[0]
    if value.ndim == 4:
        return value.mean(dim=(2, 3))
    if value.ndim == 3:
        return value.mean(dim=1)
    return value.flatten(1)
