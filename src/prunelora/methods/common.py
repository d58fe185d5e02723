"""Option groups, forgetting objectives and steps shared by the methods."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from prunelora.adapters import AdapterSnapshot, LoraSettings, add_lora, check_lora_rank, merge_lora
from prunelora.data import ImageDataset, Splits
from prunelora.data.generic import concat, make_loader, relabel, subset, targets_of
from prunelora.errors import InvalidInputError
from prunelora.methods.base import (
    MethodContext,
    MethodRecord,
    PruningChoice,
    TrainingOptions,
    option,
    options_from,
    settings_from,
)
from prunelora.pruning import PhysicalPruning, PruneSettings, apply_pruning, recalibrate_batchnorm
from prunelora.pruning.criteria import FORGET_AWARE, fit_criterion, smallest_forgetting_amount

OBJECTIVES = ("retain", "random-label", "neggrad-plus")


def cycle(dataset: ImageDataset, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled batches of `dataset` (a new seeded order each pass)."""
    epoch = 0
    while True:
        yield from make_loader(dataset, batch_size=batch_size, shuffle=True, seed=seed + epoch)
        epoch += 1


def random_wrong_labels(targets: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """A uniformly random label different from each true one (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, num_classes, (len(targets),), generator=gen)
    return (targets + shift) % num_classes


def random_label_dataset(splits: Splits, seed: int) -> ImageDataset:
    """D_r plus D_f relabelled with random wrong labels (Golatkar et al. 2020; SalUn's RL)."""
    forget = relabel(splits.forget, random_wrong_labels(targets_of(splits.forget), splits.num_classes, seed))
    return concat(splits.retain, forget)


NEGGRAD_ALPHA_HELP = ("NegGrad+'s weight alpha in alpha*CE(D_r) - (1 - alpha)*CE(D_f), in (0, 1) (Kurmanji et "
                      "al.); prunelora uses it with --objective neggrad-plus")


def check_neggrad_alpha(alpha: float) -> None:
    """NegGrad+'s alpha (the `neggrad-plus` method's, and PruneLoRA's `neggrad-plus` objective's)."""
    if not 0.0 < alpha < 1.0:
        raise InvalidInputError(f"neggrad_alpha {alpha} is outside (0, 1)")


def paired_cross_entropy(forget: ImageDataset, retain_weight: float, forget_weight: float, batch_size: int,
                         seed: int, device):
    """`loss(model, x_r, y_r) = retain_weight * CE(D_r batch) + forget_weight * CE(next batch of forget)`.

    Iterated over D_r; each step also draws the next batch of `forget` (cycled, reshuffled each pass).
    """
    forget_batches = cycle(forget, batch_size, seed)
    criterion = nn.CrossEntropyLoss()

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        xf, yf = next(forget_batches)
        return retain_weight * criterion(model(x), y) + forget_weight * criterion(model(xf.to(device)), yf.to(device))

    return loss_fn


def neggrad_plus_loss(splits: Splits, alpha: float, batch_size: int, seed: int, device):
    """`loss(model, x_r, y_r) = alpha * CE(D_r batch) - (1 - alpha) * CE(D_f batch)` (Kurmanji et al. 2023).

    Iterated over D_r; each step also draws the next batch of the (cycled) forget set.
    """
    return paired_cross_entropy(splits.forget, alpha, -(1 - alpha), batch_size, seed, device)


def objective_data(objective: str, splits: Splits, alpha: float, batch_size: int, seed: int, device):
    """(dataset to iterate, loss_fn or None for plain cross-entropy) of a forgetting objective."""
    if objective == "retain":
        return splits.retain, None
    if len(splits.forget) == 0:
        raise InvalidInputError(f"objective {objective!r} needs forget samples, but the forget set is empty")
    if objective == "random-label":
        return random_label_dataset(splits, seed), None
    if objective == "neggrad-plus":
        return splits.retain, neggrad_plus_loss(splits, alpha, batch_size, seed, device)
    raise InvalidInputError(f"objective {objective!r} is not one of {', '.join(OBJECTIVES)}")


def _as_tuple(value) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


@dataclass
class OptmlRecipe(TrainingOptions):
    """The unlearning recipe of OPTML-Group's public code (Unlearn-Sparse, Unlearn-Saliency), which
    the field's baselines are usually run with: 10 epochs of SGD, momentum 0.9, weight decay 5e-4,
    batch 256, lr 0.01, a constant schedule (its step decay at epochs 91/136 never fires in 10)."""

    epochs: float = option(TrainingOptions, "epochs", 10)
    batch_size: int = option(TrainingOptions, "batch_size", 256)
    optimizer: str = option(TrainingOptions, "optimizer", "sgd")
    lr: float = option(TrainingOptions, "lr", 0.01)
    momentum: float = option(TrainingOptions, "momentum", 0.9)
    weight_decay: float = option(TrainingOptions, "weight_decay", 5e-4)


@dataclass
@options_from(PruneSettings, PruneSettings.OPTION_NAMES)
class PruneOptions(TrainingOptions):
    """Pruning before adaptation. Default: the paper's 50% structured L2 on every conv.

    `prune_mode`: `mask` (the paper's) zeroes the pruned channels and keeps them zero; `physical`
    removes them (channels through the dependency graph, ViT heads and MLP hidden units), so the
    model that is trained next, and the result, are smaller and faster. Both choose the same
    channels and give the same model: the mode changes speed, not the function.

    `prune_targets` (structured masks): `dead` (default) masks a pruned channel's weight row,
    bias and the following norm's weight and bias, so it outputs exactly 0 and nothing trains it;
    `weights-only` is the paper's literal `ln_structured` (weight rows of each layer alone, bias
    and BatchNorm kept, so the channel still outputs a constant), kept for the ablation.

    `prune_criterion` chooses which channels go (see `prunelora.pruning.criteria`): `l2` (the
    paper's weight norm, order `prune_norm`) or a forget-aware one — `activation-ratio`, `tfidf`,
    `fisher-ratio` — fitted on D_f and a seeded sample of `prune_retain_samples` images of D_r
    (never on validation or test data). `prune_forget_accuracy` makes the amount automatic: the
    smallest amount up to `prune_amount` whose dead-channel model scores at most that accuracy (%)
    on D_f (bisection, D_f only).

    Every `prune_*` option is a field of `prunelora.pruning.PruneSettings` (declared, documented
    and checked there; `prune_settings()` builds it).
    """

    bn_recalibrate: bool = field(default=True, metadata={"help": (
        "recompute BatchNorm running statistics on D_r after pruning")})

    def validate(self) -> None:
        self.prune_types = _as_tuple(self.prune_types)
        self.prune_settings()  # every pruning option, checked in one place
        super().validate()

    def prune_settings(self) -> PruneSettings:
        """These options as `PruneSettings`, which checks them."""
        return settings_from(self, PruneSettings, PruneSettings.OPTION_NAMES)

    def retain_sample(self, splits: Splits):
        """A seeded sample of `prune_retain_samples` images of D_r (all of it when smaller)."""
        n = len(splits.retain)
        if n <= self.prune_retain_samples:
            return splits.retain
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        return subset(splits.retain, order[: self.prune_retain_samples].sort().values)

    def choose_pruning(self, model: nn.Module, splits: Splits, ctx: MethodContext):
        """(criterion or None for the default Ln norm, amount) — fitted on D_f and a D_r sample only."""
        criterion = None
        if self.prune_criterion != "l2" or self.prune_forget_accuracy is not None:
            retain = self.retain_sample(splits) if self.prune_criterion in FORGET_AWARE else splits.retain
            criterion = fit_criterion(self.prune_criterion, model, splits.forget, retain, norm=self.prune_norm,
                                      batch_size=self.batch_size, device=ctx.device, num_classes=splits.num_classes)
        amount = self.prune_amount
        if self.prune_forget_accuracy is not None:
            if len(splits.forget) == 0:
                raise InvalidInputError("prune_forget_accuracy needs forget samples, but the forget set is empty")
            amount = smallest_forgetting_amount(
                model, criterion, splits.forget, self.prune_forget_accuracy, self.prune_amount, norm=self.prune_norm,
                types=self.prune_types, pattern=self.prune_pattern, scope=self.prune_scope,
                example_inputs=splits.forget[0][0].unsqueeze(0), head_name=ctx.classifier, device=ctx.device)
        if criterion is not None and self.prune_criterion == "l2":
            criterion = None  # the default path, bit for bit
        return criterion, amount

    def prune_model(self, model: nn.Module, splits: Splits, ctx: MethodContext, bake: bool) -> Pruned:
        """Prune `model` in place as these options ask; returns what was chosen and done (the masks
        in mask mode, the architecture change in physical mode)."""
        criterion, amount = self.choose_pruning(model, splits, ctx)
        settings = dataclasses.replace(self.prune_settings(), amount=amount)
        done = apply_pruning(model, settings, example_inputs=splits.retain[0][0].unsqueeze(0),
                             head_name=ctx.classifier, importance=criterion, bake=bake)
        if self.bn_recalibrate:  # downstream statistics changed with the pruned (or removed) channels
            recalibrate_batchnorm(model, splits.retain, device=ctx.device)
        choice = PruningChoice(self.prune_criterion, self.prune_scope, amount)
        if isinstance(done, PhysicalPruning):
            return Pruned(choice, None, done.architecture)
        return Pruned(choice, done, None)


@dataclass(frozen=True)
class Pruned:
    """What `PruneOptions.prune_model` did: the choice, and the masks (mask mode) or the
    architecture change (physical mode)."""

    choice: PruningChoice
    masks: dict[str, torch.Tensor] | None
    architecture: dict | None

    def recorded(self, record: MethodRecord) -> MethodRecord:
        """`record` with this pruning in it."""
        return dataclasses.replace(record, pruning=self.choice, masks=self.masks, architecture=self.architecture)


@dataclass
@options_from(LoraSettings, LoraSettings.OPTION_NAMES)
class LoraOptions(TrainingOptions):
    """LoRA adapters. Default: the paper's ResNet setting (r=8, alpha=16, dropout 0.1, every conv).

    Every `lora_*` option (and `train_head`) is a field of `prunelora.adapters.LoraSettings`
    (declared, documented and checked there; `lora_settings()` builds it).
    """

    def validate(self) -> None:
        self.lora_types = _as_tuple(self.lora_types)
        self.lora_settings()  # every LoRA option, checked in one place
        super().validate()

    def lora_settings(self) -> LoraSettings:
        """These options as `LoraSettings`, which checks them."""
        return settings_from(self, LoraSettings, LoraSettings.OPTION_NAMES)

    def train_lora(self, model: nn.Module, splits: Splits, ctx: MethodContext, description: str,
                   masks: dict | None = None, keep_sparsity: bool = True, objective: str = "retain",
                   alpha: float = 0.95) -> tuple[nn.Module, MethodRecord]:
        """Add adapters, train them (and the head) with `objective` (default: on D_r; `alpha`:
        NegGrad+'s), merge. Returns (plain model, record)."""
        dataset, loss_fn = objective_data(objective, splits, alpha, self.batch_size, self.seed, ctx.device)
        check_lora_rank(model, self.lora_settings(), ctx.classifier)
        peft_model = add_lora(model, self.lora_settings(), masks=masks, keep_sparsity=keep_sparsity,
                              head_name=ctx.classifier)
        record = self.train(peft_model, dataset, ctx, description, loss_fn=loss_fn)
        adapter = AdapterSnapshot.of(peft_model)  # the merge discards the adapters
        merged = merge_lora(peft_model, masks=masks, keep_sparsity=keep_sparsity)
        return merged, dataclasses.replace(record, adapter=adapter)

