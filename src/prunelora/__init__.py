"""prunelora: make a trained PyTorch image classifier forget a class or records, and prove it.

The public API follows PyTorch conventions: models are `nn.Module`s, data are Datasets, and every
function that trains takes a seed.
"""

from prunelora.errors import (
    CheckpointError,
    InvalidInputError,
    MissingFileError,
    OutputError,
    PruneLoRAError,
)

__version__ = "0.1.0"

# Every name is loaded on first use: importing the package (which the `prunelora` command does
# before anything else) then costs nothing, so Ctrl-C during start-up reaches the command's own
# handler, and `prunelora info` does not pull in peft (and with it transformers).
_LAZY = {
    "RunResult": ("prunelora.api", "RunResult"),
    "CheckpointEvaluation": ("prunelora.api", "CheckpointEvaluation"),
    "evaluate_checkpoint": ("prunelora.api", "evaluate_checkpoint"),
    "info": ("prunelora.api", "info"),
    "import_model": ("prunelora.importing", "import_model"),
    "retrain": ("prunelora.api", "retrain"),
    "train": ("prunelora.api", "train"),
    "unlearn_checkpoint": ("prunelora.api", "unlearn_checkpoint"),
    "load_checkpoint": ("prunelora.checkpoint", "load_checkpoint"),
    "save_checkpoint": ("prunelora.checkpoint", "save_checkpoint"),
    "ForgetSpec": ("prunelora.data", "ForgetSpec"),
    "build_splits": ("prunelora.data", "build_splits"),
    "Splits": ("prunelora.data", "Splits"),
    "list_datasets": ("prunelora.data", "list_datasets"),
    "load_dataset": ("prunelora.data", "load_dataset"),
    "create_model": ("prunelora.models", "create_model"),
    "list_models": ("prunelora.models", "list_models"),
    "TrainConfig": ("prunelora.training", "TrainConfig"),
    "fit": ("prunelora.training", "fit"),
    "unlearn": ("prunelora.methods", "unlearn"),
    "list_methods": ("prunelora.methods", "list_methods"),
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


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CheckpointError", "CheckpointEvaluation", "ForgetSpec", "InvalidInputError", "MissingFileError", "OutputError",
    "PruneLoRAError", "RelearnConfig", "RunResult", "Splits", "TrainConfig", "build_splits", "create_model", "evaluate",
    "evaluate_checkpoint", "fit", "heldout_accuracy", "import_model", "info", "list_datasets", "list_methods",
    "list_models", "load_checkpoint", "load_dataset", "retrain", "save_checkpoint", "train", "unlearn",
    "unlearn_checkpoint",
]
