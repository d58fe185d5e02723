"""A model's blocks in forward order, and "the last k blocks": what EU-k and CF-k re-initialise or train.

One definition for every architecture, so that `k` means the same kind of thing on each:
- the registry's CIFAR ResNets: their residual blocks (`layers.<stage>.<block>`), so resnet8 has
  3 and resnet20 has 9;
- the registry's ViTs: their encoder blocks (`blocks.<i>`);
- any other model (a user's own, torchvision, timm): its weighted layers (convolutions, linear
  layers, attention modules) in the order the forward pass calls them, the classifier excluded.
  A user's model has no "block" we could know of, and a layer is the unit Goel et al. count in
  their own "last k layers"; normalisation layers ride along with the layer before them (see below).

"The last k blocks" is then everything the forward pass runs from the first call of the k-th
last block on: those blocks, whatever follows them (the ViT's final norm, a user model's
trailing BatchNorm) and the classifier. Parameters the forward pass runs before that point (the
stem, the ViT's class token and position embeddings) are "the rest". The order is read from one
traced forward pass of one example input, so it follows the model's real data flow rather than
the order its attributes were declared in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunelora.errors import InvalidInputError
from prunelora.models.classifier import find_classifier
from prunelora.models.resnet import BasicBlock, Bottleneck, CifarResNet
from prunelora.models.vit import ViT

__all__ = ["LastBlocks", "last_blocks", "model_blocks"]

WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear, nn.MultiheadAttention)


@torch.no_grad()
def forward_order(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Names of the submodules in the order of their first call in one forward pass of `example`
    (eval mode, no gradient; the model's mode is restored). Modules never called are absent."""
    order: dict[str, int] = {}

    def seen(name: str):
        def hook(_module, _args) -> None:  # a pre-hook that returned a value would replace the input
            order.setdefault(name, len(order))
        return hook

    handles = [module.register_forward_pre_hook(seen(name)) for name, module in model.named_modules() if name]
    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        model.eval()
        model(example.to(device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return sorted(order, key=order.__getitem__)


def model_blocks(model: nn.Module, example: torch.Tensor, classifier: str | None = None) -> list[str]:
    """The names of `model`'s blocks in forward order (see the module's docstring for what a block is)."""
    if isinstance(model, CifarResNet):
        blocks = [n for n, m in model.named_modules() if isinstance(m, (BasicBlock, Bottleneck))]
    elif isinstance(model, ViT):
        blocks = [f"blocks.{i}" for i in range(len(model.blocks))]
    else:
        blocks = None
    order = forward_order(model, example)
    if blocks is not None:
        return sorted(blocks, key=order.index)
    head, _ = find_classifier(model, classifier)
    modules = dict(model.named_modules())
    # a weighted layer inside an attention module (its out_projection) is part of that module
    inside_attention = [n for n, m in modules.items() if isinstance(m, nn.MultiheadAttention)]
    return [n for n in order if isinstance(modules[n], WEIGHTED) and n != head and not n.startswith(head + ".")
            and not any(n.startswith(a + ".") for a in inside_attention)]


@dataclass(frozen=True)
class LastBlocks:
    """The last `k` of a model's `blocks` (names) and the part of the model they start.

    `modules`: every submodule the forward pass calls from the first of those blocks on (the
    blocks, what follows them, the classifier); `parameters`: the names of the parameters inside
    them (the rest of the model's parameters are the frozen part).
    """

    k: int
    blocks: tuple[str, ...]
    modules: tuple[str, ...]
    parameters: tuple[str, ...]


def last_blocks(model: nn.Module, k: int, example: torch.Tensor, classifier: str | None = None) -> LastBlocks:
    """The last `k` blocks of `model` and everything after them (see the module's docstring).

    Args:
        model: any classifier (the registry's ResNets and ViTs, or a user's own model).
        k: how many blocks, from the end; 0 selects the classifier alone.
        example: one input batch (e.g. one image with its batch dimension) to trace the forward pass.
        classifier: the classifier module's name, when it cannot be found (see `find_classifier`).

    Returns:
        The selected blocks, the modules from the first of them on and their parameter names.

    Raises:
        InvalidInputError: `k` is negative or exceeds the model's number of blocks.
    """
    blocks = model_blocks(model, example, classifier)
    if not 0 <= k <= len(blocks):
        raise InvalidInputError(f"k {k} is outside [0, {len(blocks)}]: {type(model).__name__} has {len(blocks)} "
                                f"blocks ({', '.join(blocks[:4])}{', ...' if len(blocks) > 4 else ''})")
    head, _ = find_classifier(model, classifier)
    order = forward_order(model, example)
    start = order.index(blocks[len(blocks) - k]) if k else order.index(head)
    selected = tuple(order[start:])
    # A parameter belongs to the part when a selected module owns it or contains its owner (an
    # attention module's out_proj is never called on its own, yet its weight is the attention's).
    params = tuple(name for name, _ in model.named_parameters()
                   if any(name.startswith(m + ".") for m in selected))
    return LastBlocks(k, tuple(blocks[len(blocks) - k:]), selected, params)
