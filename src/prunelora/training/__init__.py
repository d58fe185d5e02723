"""The one training loop, its recipe, seeding and prediction helpers."""

from prunelora.training.loop import (
    TrainConfig,
    TrainingDivergedError,
    TrainResult,
    accuracy_on,
    check_device,
    fit,
    predict,
    resolve_device,
    seed_everything,
    top1_accuracy,
    trainable_parameters,
)

__all__ = ["TrainConfig", "TrainResult", "TrainingDivergedError", "accuracy_on", "check_device", "fit", "predict",
           "resolve_device", "seed_everything", "top1_accuracy", "trainable_parameters"]
