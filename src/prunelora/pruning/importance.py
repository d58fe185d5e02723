"""How much a channel, a head or a parameter matters: the Ln norm and the Fisher accumulator.

One Ln importance serves every caller: mask pruning scores a weight's output rows with it,
structured pruning a DepGraph group of coupled layers (the mean over the layers whose outputs are
cut), head pruning an attention's heads (the q, k and v rows of a head taken together), and the
`l2` pruning criterion is it. One gradient accumulator serves the Fisher-based criterion, SSD and
SalUn: `fisher_diagonal` (mean over batches of the squared gradient, SSD's estimate) and
`loss_gradient` (the gradient of the mean loss over a whole data set, SalUn's saliency).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch_pruning as tp
from torch import nn
from torch.nn import functional as F

from prunelora.data.generic import make_loader
from prunelora.pruning.attention import PrunedAttention, check_convertible
from prunelora.pruning.settings import check_norm

# the DepGraph handlers that cut a conv's or a linear's outputs: the layers a channel is scored on
OUT_CHANNEL_HANDLERS = (tp.prune_conv_out_channels, tp.prune_linear_out_channels)


def ln_rows(weight: torch.Tensor, n: int) -> torch.Tensor:
    """Per output row (dim 0): the Ln norm of that row's entries."""
    return weight.detach().flatten(1).norm(p=n, dim=1)


def head_importance(attn: nn.Module, norm: int = 2) -> torch.Tensor:
    """Per head of an `nn.MultiheadAttention` or `PrunedAttention`: the Ln norm of its q, k and v
    rows taken together (the same numbers for both forms of one attention)."""
    if isinstance(attn, nn.MultiheadAttention):
        check_convertible(attn)
        projections = attn.in_proj_weight.detach().chunk(3)
    elif isinstance(attn, PrunedAttention):
        projections = tuple(p.weight.detach() for p in (attn.q_proj, attn.k_proj, attn.v_proj))
    else:
        raise TypeError(f"{type(attn).__name__} is not an attention")
    return ln_rows(torch.cat([w.reshape(attn.num_heads, -1) for w in projections], dim=1), norm)


class LnImportance:
    """The Ln norm (n = 1 or 2) as an importance; higher = kept.

    Called on a weight tensor: per output channel (dim 0), the norm of its row. Called on a
    DepGraph group: per channel of the group, the mean of that norm over the group's convs/linears
    whose outputs are cut (for an uncoupled layer, exactly the row norm). `head_scores` scores the
    heads of an attention. Its scores have a layer's scale, so a global ranking divides them by
    their layer's mean first (`comparable_across_layers` is false).
    """

    comparable_across_layers = False

    def __init__(self, n: int = 2) -> None:
        check_norm(n)
        self.n = n
        self.name = f"l{n}"

    @torch.no_grad()
    def __call__(self, target) -> torch.Tensor:
        if isinstance(target, torch.Tensor):
            return ln_rows(target, self.n)
        scores = torch.zeros(len(target[0].idxs))
        layers = 0
        for i, (dep, idxs) in enumerate(target):
            if dep.handler not in OUT_CHANNEL_HANDLERS:
                continue
            norms = ln_rows(dep.target.module.weight[idxs], self.n)
            scores.index_add_(0, torch.tensor(target[i].root_idxs), norms.float().cpu())
            layers += 1
        return scores / max(layers, 1)

    def head_scores(self, name: str, attn: nn.Module) -> torch.Tensor:
        """Per head of `attn` (named `name` in its model): `head_importance`, on the CPU."""
        return head_importance(attn, self.n).cpu()


def _batch_gradients(model: nn.Module, dataset, params: dict[str, nn.Parameter], batch_size: int, device,
                     reduction: str) -> Iterator[tuple[int, tuple[torch.Tensor | None, ...]]]:
    """Per batch of `dataset` in order: (its size, the gradient of its cross-entropy, summed or
    averaged, with respect to each of `params`), in eval mode. The model's mode and the
    parameters' `requires_grad` flags are restored afterwards; `.grad` is never written."""
    tensors = list(params.values())
    flags = [p.requires_grad for p in tensors]
    was_training = model.training
    model.eval()
    try:
        for p in tensors:
            p.requires_grad_(True)
        with torch.enable_grad():
            for x, y in make_loader(dataset, batch_size=batch_size):
                loss = F.cross_entropy(model(x.to(device)), y.to(device), reduction=reduction)
                yield len(y), torch.autograd.grad(loss, tensors, allow_unused=True)
    finally:
        for p, flag in zip(tensors, flags, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)


def fisher_diagonal(model: nn.Module, dataset, params: dict[str, nn.Parameter], *, batch_size: int,
                    device) -> dict[str, torch.Tensor]:
    """The diagonal Fisher information of `params` on `dataset`: the mean over batches of the
    squared gradient of the batch's mean cross-entropy (SSD's estimate), in eval mode.

    Args:
        model: the model, on `device`.
        dataset: the data, batched in order (pass an `eval_view` for a deterministic estimate).
        params: the parameters, by name.
        batch_size: images per batch.
        device: where the batches go.

    Returns:
        Per name, a float32 tensor of the parameter's shape, on the parameter's device.
    """
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    batches = 0
    for _, grads in _batch_gradients(model, dataset, params, batch_size, device, "mean"):
        for total, grad in zip(fisher.values(), grads, strict=True):
            if grad is not None:
                total += grad.detach().float() ** 2
        batches += 1
    return {n: f / max(batches, 1) for n, f in fisher.items()}


def loss_gradient(model: nn.Module, dataset, params: dict[str, nn.Parameter], *, batch_size: int,
                  device) -> dict[str, torch.Tensor]:
    """The gradient of the mean cross-entropy over all of `dataset` with respect to `params`,
    accumulated batch by batch on a fixed model, in eval mode (SalUn's weight saliency).

    Args:
        model: the model, on `device`.
        dataset: the data, batched in order.
        params: the parameters, by name.
        batch_size: images per batch.
        device: where the batches go.

    Returns:
        Per name, a tensor of the parameter's shape and dtype, on its device.
    """
    totals = {n: torch.zeros_like(p) for n, p in params.items()}
    count = len(dataset)
    for _, grads in _batch_gradients(model, dataset, params, batch_size, device, "sum"):
        for total, grad in zip(totals.values(), grads, strict=True):
            if grad is not None:
                total += grad / count
    return totals
