"""Datasets, normalisation constants, forget specifications and the split builder."""

from prunelora.data.datasets import (
    NORMALIZATION,
    DatasetBundle,
    ImageDataset,
    check_data_identity,
    data_digest,
    list_datasets,
    load_dataset,
    register_dataset,
)
from prunelora.data.generic import (
    Relabelled,
    concat,
    eval_view,
    fetch,
    make_loader,
    relabel,
    subset,
    targets_of,
)
from prunelora.data.splits import (
    FORGET_OPTIONS,
    ForgetSpec,
    Splits,
    build_splits,
    resolve_splits,
    stratified_indices,
    stratified_subset,
    validation_indices,
)

__all__ = [
    "FORGET_OPTIONS", "NORMALIZATION", "DatasetBundle", "ForgetSpec", "ImageDataset", "Splits", "build_splits", "resolve_splits",
    "validation_indices", "check_data_identity", "data_digest", "list_datasets", "load_dataset", "make_loader",
    "register_dataset", "stratified_indices", "stratified_subset",
    "Relabelled", "concat", "eval_view", "fetch", "relabel", "subset", "targets_of",
]
