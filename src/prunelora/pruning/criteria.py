"""Which channels structured pruning removes: pruning criteria as strategy objects.

A criterion scores the channels of a DepGraph group (`criterion(group) -> scores`, one per channel;
LOW scores are pruned, as with Torch-Pruning's importances) and the heads of an attention
(`criterion.head_scores(name, attn)`). Forget-aware criteria first gather statistics with
`fit(model, forget, retain_sample)`: they read the forget set D_f and a sample of the retain set
D_r only, never a validation or test set.

- `l2` (the paper's): the Ln norm of each channel's weights (L2, or L1 with `norm=1`), blind to
  what must be forgotten.
- `activation-ratio` (Pochinkov & Schoots 2024, selective pruning): mean activation on D_f over
  mean activation on D_r (+1e-3); the channels that fire most for D_f relative to D_r go first.
- `tfidf` (Wang et al., WWW 2022, class-discriminative pruning): per channel, the term frequency
  of its activation for D_f (its share of the layer's activation on D_f, times the layer's width so
  that an even share is 1 in every layer and global scope compares layers fairly) times an inverse
  document frequency over the classes of D_r plus D_f as one more "class"
  (`log(K / (1 + #classes whose activation exceeds the channel's mean over classes))`); the most
  discriminative channels for D_f go first. (The paper prunes the channels of HIGH TF-IDF for the
  forgotten class; we follow the paper, not a reading of its code that prunes the lowest.)
- `fisher-ratio` (SSD's idea, Foster et al. 2024, per channel): the diagonal Fisher information of
  a channel's parameters (its weight rows, bias and norm γ/β; a head's q/k/v rows) on D_f over that
  on D_r (+1e-3 × the layer's mean on D_r); the channels D_f depends on most, relative to D_r, go first.

Activations: a channel's activation is `relu` of the output of the last per-channel layer of its
group that the criterion watched (a BatchNorm when the group has one, else the conv or linear):
exactly the post-ReLU value for a conv-BN-ReLU channel, a close proxy for a GELU MLP neuron; for a
group of coupled residual channels, the mean over its members (the value before the residual sum).
A head's activation is the mean |contribution| of its output to the attention's result, recomputed
from the attention's inputs (the fused `nn.MultiheadAttention` does not expose it).

All ratios are dimensionless, so the forget-aware scores of different layers can be ranked
together (`scope="global"`); Ln norms are not, and are divided by their layer's mean first.
Works for class-wise and random-fraction forgetting (a random forget set has no class signature:
the ratios then mostly pick noise; see README).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from prunelora.data.generic import eval_view, make_loader, targets_of
from prunelora.errors import InvalidInputError
from prunelora.pruning.attention import PrunedAttention
from prunelora.pruning.dead import dead_masks
from prunelora.pruning.importance import OUT_CHANNEL_HANDLERS, LnImportance, fisher_diagonal
from prunelora.pruning.masks import apply_masks
from prunelora.pruning.settings import CRITERIA as CRITERIA  # the names, checked in `settings`
from prunelora.pruning.settings import FORGET_AWARE, PruneSettings, check_criterion, check_norm
from prunelora.training import accuracy_on

_WATCHED = (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)
_ATTENTION = (nn.MultiheadAttention, PrunedAttention)
_EPS = 1e-3
_BN = nn.modules.batchnorm._BatchNorm


class Criterion:
    """Base: scores channels of a group and heads of an attention; higher = kept."""

    name = "base"
    comparable_across_layers = True  # may its scores be ranked across layers as they are?

    def fit(self, model: nn.Module, forget, retain_sample, *, batch_size: int = 256,
            device: torch.device | str = "cpu", num_classes: int | None = None) -> Criterion:
        return self

    def __call__(self, group) -> torch.Tensor | None:
        raise NotImplementedError

    def _check_samples(self, forget, retain_sample) -> None:
        """A data-driven criterion needs both D_f and a D_r sample (one line when either is empty)."""
        if len(forget) == 0:
            raise InvalidInputError(f"pruning criterion {self.name!r} needs forget samples, but the forget set is empty")
        if len(retain_sample) == 0:
            raise InvalidInputError(f"pruning criterion {self.name!r} needs retain samples, but the sample is empty")

    def head_scores(self, name: str, attn: nn.Module) -> torch.Tensor:
        raise NotImplementedError


class LnCriterion(LnImportance, Criterion):
    """The paper's: the Ln norm of each channel's weights (mean over a coupled group's layers), the
    one `LnImportance` as a criterion (nothing to fit)."""


def _channel_dim(module: nn.Module, out: torch.Tensor) -> int:
    return out.ndim - 1 if isinstance(module, nn.Linear) else 1


def _per_channel(module: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """(batch, channels): mean relu activation of each channel over positions / tokens."""
    dim = _channel_dim(module, out)
    act = F.relu(out.detach()).float().movedim(dim, -1)
    return act.reshape(act.shape[0], -1, act.shape[-1]).mean(dim=1)


def _head_contributions(attn: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """(batch, heads): mean |contribution| of each head's output to the attention's result."""
    if isinstance(attn, nn.MultiheadAttention):
        wq, wk, wv = attn.in_proj_weight.chunk(3)
        bq, bk, bv = attn.in_proj_bias.chunk(3) if attn.in_proj_bias is not None else (None, None, None)
        w_out, batch_first = attn.out_proj.weight, attn.batch_first
    else:
        (wq, bq), (wk, bk), (wv, bv) = ((p.weight, p.bias) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        w_out, batch_first = attn.out_proj.weight, attn.batch_first
    if not batch_first:
        query, key, value = (t.transpose(0, 1) for t in (query, key, value))
    heads, d = attn.num_heads, attn.head_dim

    def split(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        y = F.linear(x, w, b)
        return y.view(y.shape[0], y.shape[1], heads, d).transpose(1, 2)  # (B, h, L, d)

    q, k, v = split(query, wq, bq), split(key, wk, bk), split(value, wv, bv)
    out = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1) @ v  # (B, h, L, d)
    per_head_out = w_out.view(w_out.shape[0], heads, d)  # (E, h, d)
    contribution = torch.einsum("bhld,ehd->bhle", out, per_head_out)
    return contribution.abs().mean(dim=(2, 3)).float()


def _batches(dataset, batch_size: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    return make_loader(eval_view(dataset), batch_size=batch_size)


class _ActivationStats(Criterion):
    """Per-class mean activations of every watched channel and head, gathered on D_f and D_r.

    `stats[module][k]` is the mean activation per channel on class k of the retain sample, and
    `stats[module][K]` (the last row) that on D_f as a whole.
    """

    def fit(self, model: nn.Module, forget, retain_sample, *, batch_size: int = 256,
            device: torch.device | str = "cpu", num_classes: int | None = None) -> Criterion:
        self._check_samples(forget, retain_sample)
        if num_classes is None:
            num_classes = int(max(targets_of(retain_sample).max(), targets_of(forget).max())) + 1
        rows = num_classes + 1  # the classes of D_r, then D_f as one more row
        sums: dict[nn.Module, torch.Tensor] = {}
        counts: dict[nn.Module, torch.Tensor] = {}
        label: dict[str, torch.Tensor] = {}

        def add(module: nn.Module, values: torch.Tensor) -> None:
            if module not in sums:
                sums[module] = torch.zeros(rows, values.shape[1])
                counts[module] = torch.zeros(rows)
            y = label["y"]
            sums[module].index_add_(0, y, values.cpu())
            counts[module].index_add_(0, y, torch.ones(len(y)))

        def channel_hook(module, inputs, out):
            if isinstance(out, torch.Tensor):
                add(module, _per_channel(module, out))

        def attention_hook(module, args, kwargs, out):
            query, key, value = (list(args) + [kwargs.get(n) for n in ("query", "key", "value")][len(args):])[:3]
            add(module, _head_contributions(module, query, key, value))

        handles = []
        for module in model.modules():
            if isinstance(module, _ATTENTION):
                handles.append(module.register_forward_hook(attention_hook, with_kwargs=True))
            elif isinstance(module, _WATCHED):
                handles.append(module.register_forward_hook(channel_hook))
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for dataset, is_forget in ((retain_sample, False), (forget, True)):
                    for x, y in _batches(dataset, batch_size):
                        label["y"] = torch.full_like(y, rows - 1) if is_forget else y.long()
                        model(x.to(device))
        finally:
            for h in handles:
                h.remove()
            model.train(was_training)
        self.stats = {m: sums[m] / counts[m].clamp_min(1)[:, None] for m in sums}
        self.retain_mean = {m: sums[m][:-1].sum(0) / counts[m][:-1].sum().clamp_min(1) for m in sums}
        self.present = {m: counts[m][:-1] > 0 for m in sums}  # classes the retain sample holds
        return self

    def channel_score(self, module: nn.Module) -> torch.Tensor:
        """Per channel of a watched module: higher = more specific to D_f (pruned first)."""
        raise NotImplementedError

    def __call__(self, group) -> torch.Tensor | None:
        if not hasattr(self, "stats"):
            raise InvalidInputError(f"pruning criterion {self.name!r} was not fitted on the forget and retain sets")
        members = []  # the watched layers that produce (or normalise) the group's channels
        for i, (dep, idxs) in enumerate(group):
            module = dep.target.module
            if module in self.stats and (dep.handler in OUT_CHANNEL_HANDLERS or isinstance(module, _BN)):
                members.append((module, idxs, group[i].root_idxs))
        chosen = [m for m in members if isinstance(m[0], _BN)] or members  # the last per-channel layer
        if not chosen:
            return None
        scores = torch.zeros(len(group[0].idxs))
        for module, idxs, root_idxs in chosen:
            scores.index_add_(0, torch.tensor(root_idxs), -self.channel_score(module)[list(idxs)])
        return scores / len(chosen)

    def head_scores(self, name: str, attn: nn.Module) -> torch.Tensor:
        if attn not in self.stats:
            raise InvalidInputError(f"attention {name!r} was not run while the criterion {self.name!r} was fitted")
        return -self.channel_score(attn)


class ActivationRatio(_ActivationStats):
    """Mean activation on D_f / (mean activation on D_r + 1e-3): the highest ratios are pruned first."""

    name = "activation-ratio"

    def channel_score(self, module: nn.Module) -> torch.Tensor:
        return self.stats[module][-1] / (self.retain_mean[module] + _EPS)


class TfIdf(_ActivationStats):
    """Class-discriminative TF-IDF of D_f per channel (Wang et al. 2022): the highest are pruned first."""

    name = "tfidf"

    def channel_score(self, module: nn.Module) -> torch.Tensor:
        per_class = torch.cat([self.stats[module][:-1][self.present[module]], self.stats[module][-1:]])
        tf = per_class / (per_class.sum(dim=1, keepdim=True) + 1e-12)  # each class's share, per channel
        above = (tf > tf.mean(dim=0, keepdim=True)).sum(dim=0).float()
        idf = torch.log(per_class.shape[0] / (1.0 + above))
        # A share of a layer's activation scales with 1/width: times the width, 1 is an even share,
        # so that global scope ranks a 4-head attention and a 128-neuron MLP on one scale (the
        # paper prunes layer by layer, where the factor changes nothing).
        return tf[-1] * idf * tf.shape[1]


class FisherRatio(Criterion):
    """Diagonal Fisher of each channel's (head's) parameters on D_f over that on D_r (SSD, per channel)."""

    name = "fisher-ratio"

    def fit(self, model: nn.Module, forget, retain_sample, *, batch_size: int = 256,
            device: torch.device | str = "cpu", num_classes: int | None = None) -> Criterion:
        self._check_samples(forget, retain_sample)
        self.forget_fisher = self._fisher(model, forget, batch_size, device)
        self.retain_fisher = self._fisher(model, retain_sample, batch_size, device)
        return self

    @staticmethod
    def _fisher(model: nn.Module, dataset, batch_size: int, device) -> dict[str, torch.Tensor]:
        """`fisher_diagonal` of every parameter on `dataset` (un-augmented), on the CPU."""
        fisher = fisher_diagonal(model, eval_view(dataset), dict(model.named_parameters()), batch_size=batch_size,
                                 device=device)
        return {n: f.cpu() for n, f in fisher.items()}

    def _rows(self, fisher: dict[str, torch.Tensor], module: nn.Module, names: dict) -> torch.Tensor:
        """Per output channel of a conv/linear/norm: the sum of its parameters' Fisher values."""
        prefix = names[module]
        total = None
        for param in ("weight", "bias"):
            f = fisher.get(f"{prefix}.{param}" if prefix else param)
            if f is None:
                continue
            rows = f.flatten(1).sum(1) if f.ndim > 1 else f
            total = rows if total is None else total + rows
        return total

    def __call__(self, group) -> torch.Tensor | None:
        if not hasattr(self, "forget_fisher"):
            raise InvalidInputError(f"pruning criterion {self.name!r} was not fitted on the forget and retain sets")
        names = self._names
        scores = torch.zeros(len(group[0].idxs))
        used = 0
        for i, (dep, idxs) in enumerate(group):
            module = dep.target.module
            is_out = dep.handler in OUT_CHANNEL_HANDLERS
            if not (is_out or isinstance(module, nn.modules.batchnorm._BatchNorm)) or module not in names:
                continue
            f_f = self._rows(self.forget_fisher, module, names)
            f_r = self._rows(self.retain_fisher, module, names)
            if f_f is None or f_r is None:
                continue
            ratio = f_f / (f_r + _EPS * f_r.mean() + 1e-20)
            scores.index_add_(0, torch.tensor(group[i].root_idxs), -ratio[list(idxs)])
            used += 1
        return scores / used if used else None

    def head_scores(self, name: str, attn: nn.Module) -> torch.Tensor:
        heads, d = attn.num_heads, attn.head_dim

        def per_head(fisher: dict[str, torch.Tensor]) -> torch.Tensor:
            if isinstance(attn, nn.MultiheadAttention):
                rows = fisher[f"{name}.in_proj_weight"].sum(1).view(3, heads, d).sum((0, 2))
                bias = fisher.get(f"{name}.in_proj_bias")
                return rows + (bias.view(3, heads, d).sum((0, 2)) if bias is not None else 0)
            total = torch.zeros(heads)
            for proj in ("q_proj", "k_proj", "v_proj"):
                total += fisher[f"{name}.{proj}.weight"].sum(1).view(heads, d).sum(1)
            return total

        f_f, f_r = per_head(self.forget_fisher), per_head(self.retain_fisher)
        return -(f_f / (f_r + _EPS * f_r.mean() + 1e-20))

    def bind(self, model: nn.Module) -> FisherRatio:
        self._names = {m: n for n, m in model.named_modules()}
        return self


def make_criterion(name: str, norm: int = 2) -> Criterion:
    """The criterion called `name` (one of `CRITERIA`), unfitted; `norm` is the order of `l2`'s norm."""
    check_criterion(name)
    check_norm(norm)
    if name == "l2":
        return LnCriterion(norm)
    if name == "activation-ratio":
        return ActivationRatio()
    if name == "tfidf":
        return TfIdf()
    return FisherRatio()


def fit_criterion(name: str, model: nn.Module, forget, retain_sample, *, norm: int = 2, batch_size: int = 256,
                  device: torch.device | str = "cpu", num_classes: int | None = None) -> Criterion:
    """`make_criterion(name)` fitted on `forget` (D_f) and `retain_sample` (a sample of D_r): the
    only data a criterion ever reads."""
    criterion = make_criterion(name, norm)
    if isinstance(criterion, FisherRatio):
        criterion.bind(model)
    if name in FORGET_AWARE:
        criterion.fit(model, forget, retain_sample, batch_size=batch_size, device=device, num_classes=num_classes)
    return criterion


@torch.no_grad()
def forget_accuracy_at(model: nn.Module, criterion: Criterion | None, forget, amount: float, *, norm: int = 2,
                       types: Sequence[str] = ("conv",), pattern: str | None = None, scope: str = "layer",
                       example_inputs: torch.Tensor, head_name: str | None = None,
                       device: torch.device | str = "cpu") -> float:
    """Accuracy (%) on `forget` of `model` with the channels `criterion` chooses at `amount` dead
    (no repair); `model` is left exactly as it was (weights and BatchNorm statistics)."""
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    settings = PruneSettings(amount=amount, norm=norm, types=tuple(types), pattern=pattern, scope=scope)
    params, masks, _ = dead_masks(model, settings, example_inputs=example_inputs, importance=criterion,
                                  head_name=head_name)
    apply_masks(params, masks)
    try:
        return accuracy_on(model, forget, device=device)
    finally:
        for p in params:
            parametrize.remove_parametrizations(p.module, p.param, leave_parametrized=False)
        model.load_state_dict(saved)


def smallest_forgetting_amount(model: nn.Module, criterion: Criterion | None, forget, target: float, upper: float,
                               *, steps: int = 6, **kwargs) -> float:
    """The smallest amount in (0, `upper`] (to `upper / 2**steps`) whose dead-channel model scores
    at most `target` % on `forget`, by bisection; `upper` when even that does not reach it.

    Reads D_f only. Assumes that pruning more never helps D_f (it need not hold exactly: the
    bisection then returns one amount that reaches the target, not necessarily the smallest).
    """
    lo, hi = 0.0, upper
    if forget_accuracy_at(model, criterion, forget, hi, **kwargs) > target:
        return hi
    for _ in range(steps):
        mid = (lo + hi) / 2
        if forget_accuracy_at(model, criterion, forget, mid, **kwargs) <= target:
            hi = mid
        else:
            lo = mid
    return hi
