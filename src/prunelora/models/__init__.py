"""Model registry: CIFAR ResNets, small ViTs and torchvision classifiers behind one interface."""

from prunelora.models import resnet, vit  # noqa: F401  (registers the models)
from prunelora.models.registry import (
    Classifier,
    check_model_name,
    create_model,
    list_models,
    register_model,
)

__all__ = ["Classifier", "check_model_name", "create_model", "list_models", "register_model"]
