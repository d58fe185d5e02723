"""prunelora: make a trained PyTorch image classifier forget a class or records, and prove it.

The public API follows PyTorch conventions: models are `nn.Module`s, data are Datasets, and every
function that trains takes a seed.
"""

from prunelora.api import RunResult, info, retrain, train
from prunelora.checkpoint import load_checkpoint, save_checkpoint
from prunelora.data import ForgetSpec, Splits, build_splits, list_datasets, load_dataset
from prunelora.errors import CheckpointError, InvalidInputError, MissingFileError, PruneLoRAError
from prunelora.models import create_model, list_models
from prunelora.training import TrainConfig, fit

__version__ = "0.1.0"

# Loaded on first use: the methods pull in peft (and with it transformers), which would slow down
# every command that does not need them, such as `prunelora info`.
_LAZY = {
    "unlearn": ("prunelora.methods", "unlearn"),
    "list_methods": ("prunelora.methods", "list_methods"),
    "unlearn_checkpoint": ("prunelora.api", "unlearn_checkpoint"),
    "evaluate": ("prunelora.evaluation.evaluate", "evaluate"),
    "RelearnConfig": ("prunelora.evaluation.relearn", "RelearnConfig"),
    "heldout_accuracy": ("prunelora.evaluation.relearn", "heldout_accuracy"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'prunelora' has no attribute {name!r}")


__all__ = [
    "CheckpointError", "ForgetSpec", "InvalidInputError", "MissingFileError", "PruneLoRAError", "RelearnConfig",
    "RunResult", "Splits", "TrainConfig", "build_splits", "create_model", "evaluate", "fit", "heldout_accuracy", "info",
    "list_datasets", "list_methods",
    "list_models", "load_checkpoint", "load_dataset", "retrain", "save_checkpoint", "train", "unlearn",
    "unlearn_checkpoint",
]
