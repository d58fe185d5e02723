"""What may be pruned and how: the one place where pruning options are checked.

Every entry point that takes loose pruning arguments — `prune()`, `physical_prune()`,
`plan_structured()` — builds one `PruneSettings` from them and hands it down; the methods' `prune_*`
options are a `PruneSettings` (`PruneOptions.prune_settings()`). Functions that take a single
option (an importance's norm, a mask's amount) call that option's check below, the one the
settings call too. So a bad amount, norm, layer type or combination is refused with the same one
line wherever it comes from. The messages name the options as a method config and the command line
spell them (`prune_amount`, `--prune-amount`), since that is where users set them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from torch import nn

from prunelora.errors import InvalidInputError

LAYER_TYPES: dict[str, tuple[type[nn.Module], ...]] = {
    "conv": (nn.Conv2d,),
    "linear": (nn.Linear,),
    "mha": (nn.MultiheadAttention,),
}
PRUNE_TARGETS = ("dead", "weights-only")
PRUNE_MODES = ("mask", "physical")
PRUNE_SCOPES = ("layer", "global")
CRITERIA = ("l2", "activation-ratio", "tfidf", "fisher-ratio")
FORGET_AWARE = ("activation-ratio", "tfidf", "fisher-ratio")


def layer_classes(types: Sequence[str], option: str = "prune_types") -> tuple[type[nn.Module], ...]:
    """The module classes of the layer type names `types` (`conv`, `linear`, `mha`); an unknown
    name is refused naming `option` (LoRA's `lora_types` share the vocabulary)."""
    bad = [t for t in types if t not in LAYER_TYPES]
    if bad:
        raise InvalidInputError(f"{option} {bad[0]!r} is not one of {', '.join(LAYER_TYPES)}")
    return tuple(cls for t in types for cls in LAYER_TYPES[t])


def check_amount(amount: float) -> None:
    """Refuse a pruned fraction outside (0, 1)."""
    if not 0.0 < amount < 1.0:
        raise InvalidInputError(f"prune_amount {amount} is outside (0, 1)")


def check_norm(norm: int) -> None:
    """Refuse an Ln norm order other than 1 or 2."""
    if norm not in (1, 2):
        raise InvalidInputError(f"prune_norm {norm} is not 1 or 2")


def check_scope(scope: str) -> None:
    """Refuse a scope other than `layer` or `global`."""
    if scope not in PRUNE_SCOPES:
        raise InvalidInputError(f"prune_scope {scope!r} is not 'layer' or 'global'")


def check_criterion(criterion: str) -> None:
    """Refuse a criterion name not in `CRITERIA`."""
    if criterion not in CRITERIA:
        raise InvalidInputError(f"prune_criterion {criterion!r} is not one of {', '.join(CRITERIA)}")


@dataclass(frozen=True)
class PruneSettings:
    """One pruning request, checked on construction. Defaults: the paper's 50% structured L2
    pruning of every conv, dead channels, per layer, masks.

    `amount`: the fraction of channels (heads, or weights when not `structured`) pruned, in (0, 1).
    `norm`: the order (1 or 2) of the Ln norm that scores channels. `scope`: `layer` or `global`.
    `types`/`pattern`: which layers (`conv`, `linear`, `mha`; a name regex). `include_head`: the
    classifier too (whole classes; weights-only masks only). `targets`: `dead` (weight rows,
    biases and the following norm) or `weights-only` (the paper's literal weight rows). `mode`:
    `mask` or `physical` (channels removed). `criterion`: which channels go (see
    `prunelora.pruning.criteria`). `forget_accuracy`: the automatic amount's target accuracy (%)
    on D_f; `retain_samples`: the D_r sample a forget-aware criterion is fitted on.
    """

    # Each field's help is the command line's (`--prune-amount` ...): the methods' `prune_*` options
    # are generated from these fields (`methods.common.PruneOptions`), named as `OPTION_NAMES` says.
    amount: float = field(default=0.5, metadata={"help": (
        "fraction of channels (heads) pruned, per layer or of all selected ones (--prune-scope); with "
        "--prune-forget-accuracy the upper bound of the automatic amount")})
    norm: int = field(default=2, metadata={"help": "order of the Ln norm that scores channels: 1 or 2"})
    structured: bool = field(default=True, metadata={"help": (
        "structured (whole output channels and heads, the paper's) or, with --no-prune-structured, single "
        "weights by magnitude")})
    scope: str = field(default="layer", metadata={"help": (
        "layer (each layer or coupled group loses --prune-amount of its channels) or global (that share "
        "of all selected channels, lowest scores first, at least one kept per group)")})
    criterion: str = field(default="l2", metadata={"help": (
        "which channels go: l2 (the paper's weight norm, of order --prune-norm) or a forget-aware one "
        "fitted on D_f and a D_r sample: activation-ratio (mean activation on D_f / on D_r), tfidf "
        "(class-discriminative TF-IDF of D_f), fisher-ratio (channel Fisher information on D_f / on D_r)")})
    retain_samples: int = field(default=1024, metadata={"help": (
        "size of the seeded sample of D_r a forget-aware criterion compares D_f with")})
    forget_accuracy: float | None = field(default=None, metadata={"help": (
        "automatic amount: the smallest amount up to --prune-amount whose pruned model (dead channels, "
        "before repair) has at most this accuracy in percent on D_f, found by bisection on D_f alone")})
    types: tuple[str, ...] = field(default=("conv",), metadata={"help": (
        "layer types pruned, comma-separated: conv, linear, mha (attention heads)")})
    pattern: str | None = field(default=None, metadata={"help": (
        "only layers whose name matches this regex ({last} stands for the highest block index)")})
    include_head: bool = field(default=False, metadata={"help": (
        "prune the classifier too (whole classes; needs --prune-targets weights-only)")})
    mode: str = field(default="mask", metadata={"help": (
        "mask (pruned channels zeroed and kept at zero, the paper's) or physical (removed: a smaller, "
        "faster model, the same function)")})
    targets: str = field(default="dead", metadata={"help": (
        "what structured mask pruning zeroes: dead (default: weight rows, biases and the following "
        "norm's weight and bias, so a pruned channel outputs 0) or weights-only (the paper's literal "
        "weight rows alone, for the ablation: the channel keeps its bias and BatchNorm)")})

    # the name of each field as a method's option and a flag (`--prune-head` for `include_head`)
    OPTION_NAMES: ClassVar[dict[str, str]] = {
        "amount": "prune_amount", "norm": "prune_norm", "structured": "prune_structured", "scope": "prune_scope",
        "criterion": "prune_criterion", "retain_samples": "prune_retain_samples",
        "forget_accuracy": "prune_forget_accuracy", "types": "prune_types", "pattern": "prune_pattern",
        "include_head": "prune_head", "mode": "prune_mode", "targets": "prune_targets"}

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", tuple(self.types))
        dead = self.structured and self.targets == "dead"
        if self.mode not in PRUNE_MODES:
            raise InvalidInputError(f"prune_mode {self.mode!r} is not one of {', '.join(PRUNE_MODES)}")
        if self.mode == "physical" and not self.structured:
            raise InvalidInputError("prune_mode 'physical' needs prune_structured: scattered zeros cannot be removed")
        if self.mode == "physical" and self.include_head:
            raise InvalidInputError("prune_mode 'physical' never prunes the head (its outputs are the classes)")
        if self.targets not in PRUNE_TARGETS:
            raise InvalidInputError(f"prune_targets {self.targets!r} is not one of {', '.join(PRUNE_TARGETS)}")
        if self.mode == "physical" and self.targets != "dead":
            raise InvalidInputError(f"prune_targets {self.targets!r} needs prune_mode 'mask': physical "
                                    "pruning removes whole channels")
        if self.include_head and dead:
            raise InvalidInputError("prune_head (pruning whole classes) needs prune_targets 'weights-only': "
                                    "dead-channel pruning never prunes the head")
        check_amount(self.amount)
        check_norm(self.norm)
        check_scope(self.scope)
        layer_classes(self.types)
        check_criterion(self.criterion)
        if self.criterion != "l2" and not dead:
            raise InvalidInputError(f"prune_criterion {self.criterion!r} scores channels: it needs structured "
                                    "pruning with prune_targets 'dead' (or prune_mode 'physical')")
        if self.scope == "global" and self.structured and self.targets != "dead":
            raise InvalidInputError("prune_scope 'global' with structured pruning needs prune_targets 'dead': "
                                    "weights-only masks are per layer")
        if isinstance(self.retain_samples, bool) or not isinstance(self.retain_samples, int) \
                or self.retain_samples < 1:
            raise InvalidInputError(f"prune_retain_samples {self.retain_samples!r} is not a positive integer")
        if self.forget_accuracy is not None:
            if not 0.0 <= self.forget_accuracy < 100.0:
                raise InvalidInputError(f"prune_forget_accuracy {self.forget_accuracy} is outside [0, 100) "
                                        "(a percentage)")
            if not dead:
                raise InvalidInputError("prune_forget_accuracy (an automatic amount) needs structured pruning with "
                                        "prune_targets 'dead'")
