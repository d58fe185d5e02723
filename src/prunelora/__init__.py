"""prunelora: make a trained PyTorch image classifier forget a class or records, and prove it.

The public API follows PyTorch conventions: models are `nn.Module`s, data are Datasets, and every
function that trains takes a seed.
"""

from prunelora.api import RunResult, info, retrain, train
from prunelora.checkpoint import load_checkpoint, save_checkpoint
from prunelora.data import ForgetSpec, build_splits, list_datasets, load_dataset
from prunelora.errors import CheckpointError, InvalidInputError, MissingFileError, PruneLoRAError
from prunelora.models import create_model, list_models
from prunelora.training import TrainConfig

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "ForgetSpec", "InvalidInputError", "MissingFileError", "PruneLoRAError", "RunResult",
    "TrainConfig", "build_splits", "create_model", "info", "list_datasets", "list_models", "load_checkpoint",
    "load_dataset", "retrain", "save_checkpoint", "train",
]
