"""The training budget a method's recipe assumes, and the warning when a run trains far less.

A recipe's epochs are not a budget by themselves: the paper's 5 epochs of CIFAR-10 are about 1,750
optimizer steps, while 5 epochs of a 1,500-image data set are about 55. A method that adapts to D_r
(PruneLoRA's repair after pruning half of every layer, LoRA, fine-tuning) is then far from where its
recipe leaves it, and its numbers say little about the method. `unlearn` warns, in one line naming
both step counts, when a run trained less than `FAR_BELOW` of the steps its recipe assumes.

Only recipes that state a budget are listed; a method without one is never warned about.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from prunelora.pruning.settings import FORGET_AWARE

# A run below this share of its recipe's steps is warned about: a tenth leaves room for smaller data
# sets and shorter recipes (the digits presets' ~270 steps pass) but catches a paper recipe run for
# its epochs on small data (55 steps against ~1,750).
FAR_BELOW = 0.1


class BudgetWarning(UserWarning):
    """A method trained far fewer optimizer steps than its recipe assumes (see `recipe_budget`)."""


@dataclass(frozen=True)
class RecipeBudget:
    """The optimizer steps a method's recipe assumes, and where that number comes from."""

    steps: int
    source: str


PAPER = RecipeBudget(1750, "the paper's 5 epochs of CIFAR-10's 45,000 retained images at batch 128")
FORGET_AWARE_REPAIR = RecipeBudget(190, "the forget-aware preset's 3 epochs of repair on a 8,100-image D_r at "
                                        "batch 128")

# The paper's methods (arXiv 2411.11907) all train 5 epochs on D_r with Adam, lr 1e-3.
RECIPE_BUDGETS: dict[str, RecipeBudget] = {name: PAPER for name in ("prunelora", "lora", "finetune",
                                                                      "prune-finetune")}


def recipe_budget(method: str, config: Any) -> RecipeBudget | None:
    """The budget `method`'s recipe assumes for this `config`, or None when its recipe states none.

    A forget-aware pruning criterion kills few channels and needs only a short repair: its recipe
    is the forget-aware preset's, not the paper's.

    Args:
        method: a registered method name.
        config: the method's config (read for `prune_criterion`).

    Returns:
        The recipe's budget, or None.
    """
    if method in ("prunelora", "prune-finetune") and getattr(config, "prune_criterion", "l2") in FORGET_AWARE:
        return FORGET_AWARE_REPAIR
    return RECIPE_BUDGETS.get(method)


def budget_message(method: str, config: Any, steps: int) -> str | None:
    """The one-line warning for a run of `method` that trained `steps` optimizer steps, or None
    when its recipe states no budget or the run trained at least `FAR_BELOW` of it."""
    budget = recipe_budget(method, config)
    if budget is None or steps >= FAR_BELOW * budget.steps:
        return None
    return (f"{method} trained {steps:,} optimizer steps; its recipe assumes about {budget.steps:,} "
            f"({budget.source}): far from converged, it may forget or repair less than the recipe does — "
            f"raise --epochs or give --steps (prunelora recommend names the budget our benchmark supports)")


def warn_if_far_below(method: str, config: Any, steps: int) -> None:
    """Warn (`BudgetWarning`, one line) when `steps` is far below what `method`'s recipe assumes."""
    message = budget_message(method, config, steps)
    if message is not None:
        warnings.warn(message, BudgetWarning, stacklevel=3)
