"""Structured Ln and unstructured magnitude pruning with kept masks; physical removal of channels
and heads; sparsity report; BN recalibration."""

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
    kept_count,
    merge_architecture,
    module_specs,
    physical_prune,
    rebuild_pruned,
)

__all__ = ["GroupLnImportance", "LnImportance", "PhysicalPruning", "PrunedAttention", "PrunedParam", "apply_masks",
           "bake_masks", "kept_count", "magnitude", "merge_architecture", "module_specs", "multiply_masks",
           "physical_prune", "prune", "rebuild_pruned", "recalibrate_batchnorm", "select_params", "sparsity_report",
           "structured_masks", "unstructured_masks"]
