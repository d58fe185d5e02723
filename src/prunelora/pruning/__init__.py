"""Structured Ln and unstructured magnitude pruning with kept masks (dead channels by default);
physical removal of channels and heads; sparsity report; BN recalibration. Every option is
checked in one place, `PruneSettings`.

The modules, lowest first: `settings` (the options), `attention` (attention with fewer heads),
`architecture` (the pruned shape as JSON), `selection` (which layers; shared with LoRA),
`importance` (the Ln norm, the Fisher accumulator), `plan` (which channels and heads go),
`masks`, `dead` and `physical` (zero them or cut them), `dispatch` (prune by a `PruneSettings`),
`criteria` (forget-aware choices).
"""

from prunelora.pruning.architecture import merge_architecture, module_specs, rebuild_pruned
from prunelora.pruning.attention import PrunedAttention, pruned_attention_macs_hook
from prunelora.pruning.dead import dead_channel_masks, dead_masks
from prunelora.pruning.dispatch import apply_pruning, prune, prune_masks, recalibrate_batchnorm
from prunelora.pruning.importance import (
    LnImportance,
    fisher_diagonal,
    head_importance,
    loss_gradient,
)
from prunelora.pruning.masks import (
    apply_masks,
    bake_masks,
    magnitude,
    multiply_masks,
    sparsity_report,
    structured_masks,
    unstructured_masks,
    used_parameters,
)
from prunelora.pruning.physical import PhysicalPruning, cut_pruned, physical_prune
from prunelora.pruning.plan import StructuredPlan, kept_count, plan_pruning, plan_structured
from prunelora.pruning.selection import PrunedParam, compile_pattern, select_layers, select_params
from prunelora.pruning.settings import LAYER_TYPES, PRUNE_TARGETS, PruneSettings

__all__ = [
    "LAYER_TYPES", "LnImportance", "PRUNE_TARGETS", "PhysicalPruning", "PruneSettings", "PrunedAttention",
    "PrunedParam", "StructuredPlan", "apply_masks", "apply_pruning", "bake_masks", "compile_pattern", "cut_pruned",
    "dead_channel_masks", "dead_masks", "fisher_diagonal", "head_importance", "kept_count", "loss_gradient",
    "magnitude", "merge_architecture", "module_specs", "multiply_masks", "physical_prune", "plan_pruning",
    "plan_structured", "prune", "prune_masks", "pruned_attention_macs_hook", "rebuild_pruned",
    "recalibrate_batchnorm", "select_layers", "select_params", "sparsity_report", "structured_masks",
    "unstructured_masks", "used_parameters",
]
