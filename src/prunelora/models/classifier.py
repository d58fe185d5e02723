"""Find a model's classifier (its final linear layer) and capture the features that enter it.

Metrics that look inside a model (the representation probe) and methods that treat the head
apart need the same two things for any architecture: which module is the classifier, and what
its input is. `find_classifier` answers the first without assuming an attribute name;
`capture_features` answers the second with a hook, so it works on any supported model — the
registry's `Classifier`s (`head`), torchvision models (`fc`, `classifier.N`, `heads.head`), timm
models (`get_classifier()`) and plain `nn.Sequential` networks.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from prunelora.data.generic import eval_view, make_loader
from prunelora.errors import InvalidInputError
from prunelora.training.loop import resolve_device

__all__ = ["Classifier", "capture_features", "classifier_inputs", "find_classifier", "pool_features"]


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


@contextmanager
def _capture(module: nn.Module, where: str, store: list[torch.Tensor]):
    if where == "input":
        def hook(_module, args):
            store.append(torch.flatten(args[0], 1).detach().float().cpu())
        handle = module.register_forward_pre_hook(hook)
    else:
        def hook(_module, _args, output):  # type: ignore[misc]
            store.append(pool_features(output).detach().float().cpu())
        handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def capture_features(model: nn.Module, dataset, module: nn.Module, where: str = "input", *,
                     batch_size: int = 256, device: str | torch.device | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """`(features, targets)` of every sample of `dataset`: what enters `module` (`where="input"`,
    flattened) or what leaves it (`"output"`, pooled by `pool_features`), in eval mode, batched,
    without gradients. Features are float32 on the CPU, in the dataset's order."""
    if where not in ("input", "output"):
        raise InvalidInputError(f"where {where!r} must be 'input' or 'output'")
    device = resolve_device(device)
    was_training = model.training
    model.to(device).eval()
    store: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    try:
        with _capture(module, where, store):
            for x, y in make_loader(eval_view(dataset), batch_size=batch_size):
                before = len(store)
                model(x.to(device))
                if len(store) != before + 1:
                    raise InvalidInputError(f"the probed module ran {len(store) - before} times in one forward pass "
                                            "(expected once); choose a module on the main path")
                targets.append(y)
    finally:
        model.train(was_training)
    if not store:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long)
    return torch.cat(store), torch.cat(targets)


def classifier_inputs(model: nn.Module, dataset, *, name: str | None = None, batch_size: int = 256,
                      device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`(features, targets)`: the classifier's input (see `find_classifier`) for every sample."""
    _, module = find_classifier(model, name)
    return capture_features(model, dataset, module, "input", batch_size=batch_size, device=device)
