"""Structured Ln and unstructured magnitude pruning with kept masks (dead channels by default);
physical removal of channels and heads; sparsity report; BN recalibration. Every option is
checked in one place, `PruneSettings`."""

from prunelora.pruning.dead import dead_channel_masks
from prunelora.pruning.masks import (
    LnImportance,
    PrunedParam,
    apply_masks,
    bake_masks,
    magnitude,
    multiply_masks,
    prune,
    recalibrate_batchnorm,
    select_params,
    sparsity_report,
    structured_masks,
    unstructured_masks,
)
from prunelora.pruning.physical import (
    GroupLnImportance,
    PhysicalPruning,
    PrunedAttention,
    StructuredPlan,
    kept_count,
    merge_architecture,
    module_specs,
    physical_prune,
    plan_structured,
    rebuild_pruned,
)
from prunelora.pruning.settings import LAYER_TYPES, PRUNE_TARGETS, PruneSettings

__all__ = [
    "GroupLnImportance", "LAYER_TYPES", "LnImportance", "PRUNE_TARGETS", "PhysicalPruning", "PruneSettings",
    "PrunedAttention", "PrunedParam",
    "StructuredPlan", "apply_masks", "bake_masks", "dead_channel_masks", "kept_count", "magnitude",
    "merge_architecture", "module_specs", "multiply_masks", "physical_prune", "plan_structured", "prune",
    "rebuild_pruned", "recalibrate_batchnorm", "select_params", "sparsity_report", "structured_masks",
    "unstructured_masks",
]
