"""The features a layer computes, captured with a hook on any model: what the representation
probe reads (`probe.py`), the classifier's input by default.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from prunelora.data.generic import eval_view, make_loader
from prunelora.errors import InvalidInputError
from prunelora.models.classifier import find_classifier, pool_features
from prunelora.training import resolve_device

__all__ = ["capture_features", "classifier_inputs", "pool_features"]


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
