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
from prunelora.data.splits import (
    ForgetSpec,
    Splits,
    build_splits,
    make_loader,
    stratified_indices,
    stratified_subset,
)

__all__ = [
    "NORMALIZATION", "DatasetBundle", "ForgetSpec", "ImageDataset", "Splits", "build_splits",
    "check_data_identity", "data_digest", "list_datasets", "load_dataset", "make_loader", "register_dataset", "stratified_indices", "stratified_subset",
]
