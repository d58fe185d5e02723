"""Structured Ln and unstructured magnitude pruning with kept masks; sparsity report; BN recalibration."""

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

__all__ = ["LnImportance", "PrunedParam", "apply_masks", "bake_masks", "magnitude", "multiply_masks", "prune",
           "recalibrate_batchnorm", "select_params", "sparsity_report", "structured_masks", "unstructured_masks"]
