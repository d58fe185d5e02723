"""Model registry and factory in the style of timm: `create_model(name, ...)` over a listable table.

Every model is a `Classifier`: `features(x)` gives the penultimate representation and `head` is
the final `nn.Linear`, so methods and metrics can treat all architectures alike.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from prunelora.errors import InvalidInputError, did_you_mean
from prunelora.factories import call_model_factory, get_factory
from prunelora.models.classifier import Classifier, classifier_outputs
from prunelora.models.timm_models import (  # timm is imported on first use
    check_timm_name,
    timm_classifier,
)
from prunelora.models.tv import (  # so is torchvision's zoo
    check_torchvision_name,
    torchvision_classifier,
)

__all__ = ["Classifier", "check_model_name", "create_model", "list_models", "register_model"]


ModelFn = Callable[..., Classifier]
_MODELS: dict[str, tuple[ModelFn, str]] = {}


def register_model(name: str, description: str) -> Callable[[ModelFn], ModelFn]:
    """Register `fn(num_classes, in_channels, image_size, **kwargs) -> Classifier` under `name`."""

    def wrap(fn: ModelFn) -> ModelFn:
        if name in _MODELS:
            raise InvalidInputError(f"model {name!r} is already registered; pick another name")
        _MODELS[name] = (fn, description)
        return fn

    return wrap


def list_models() -> dict[str, str]:
    """Registered model names with a one-line description (plus the torchvision:<name> family).

    Returns:
        `{name: description}`.
    """
    return {name: desc for name, (_, desc) in _MODELS.items()} | {
        "torchvision:<name>": "any torchvision classifier, head resized to num_classes",
        "timm:<name>": "any timm classifier, random initial weights (pip install 'prunelora[timm]')",
    }


def model_builder(name: str) -> ModelFn | None:
    """The builder registered under `name` (None for any other name), for its declared arguments."""
    entry = _MODELS.get(name)
    return entry[0] if entry is not None else None


def _factory_model(name: str, num_classes: int, in_channels: int, image_size: int, **kwargs) -> nn.Module:
    """A model from a user's `--model-factory FILE.py:FUNC` (see `prunelora.factories`)."""
    build = get_factory(name, "--model-factory")
    model = call_model_factory(build, f"model factory {name[8:]}", num_classes, in_channels, image_size, **kwargs)
    if not isinstance(model, nn.Module):
        raise InvalidInputError(f"model factory {name[8:]} returned {type(model).__name__}, not an nn.Module")
    outputs = classifier_outputs(model)
    if outputs is not None and outputs != num_classes:
        raise InvalidInputError(f"model factory {name[8:]} built a classifier of {outputs} outputs for "
                                f"{num_classes} classes")
    return model


def check_model_name(name: str) -> None:
    """Refuse a name `create_model` would refuse, with the same line, without building anything.

    Accepted: a registered name, `torchvision:<name>` and `timm:<name>` of a model that library
    holds, and `factory:` references (checked when built: the factory file must be trusted then).

    Raises:
        InvalidInputError: the name is not one `create_model` builds.
    """
    if not isinstance(name, str):
        raise InvalidInputError(f"model name {name!r} must be a string")
    if name.startswith("torchvision:"):
        check_torchvision_name(name.split(":", 1)[1])
    elif name.startswith("timm:"):
        check_timm_name(name.split(":", 1)[1])
    elif not name.startswith("factory:") and name not in _MODELS:
        raise InvalidInputError(
            f"unknown model {name!r}{did_you_mean(name, _MODELS)}; accepted: {', '.join(sorted(_MODELS))}, "
            "torchvision:<name>, timm:<name>"
        )


def create_model(name: str, num_classes: int, in_channels: int = 3, image_size: int = 32,
                 **kwargs) -> nn.Module:
    """Build a registered model with random initial weights (nothing is downloaded).

    Args:
        name: a registered name (`prunelora.list_models()`): `resnet8`, `resnet20`, `resnet18`,
            `resnet50`, `vit-tiny`, `vit-small`, `torchvision:<name>`, `timm:<name>`.
        num_classes: the classifier's outputs.
        in_channels: image channels (1 for grey, 3 for colour).
        image_size: the side of the (square) input images.
        **kwargs: the builder's own arguments, e.g. `width=2`.

    Returns:
        The model, an `nn.Module` whose classifier is an `nn.Linear`.

    Raises:
        InvalidInputError: an unknown name or a bad argument.

    Example:
        ```python
        model = prunelora.create_model("resnet20", 10, 1, 28, width=2)
        ```
    """
    if num_classes < 2:
        raise InvalidInputError(f"num_classes {num_classes} must be at least 2")
    if name.startswith("torchvision:"):
        return torchvision_classifier(name.split(":", 1)[1], num_classes, in_channels, image_size, **kwargs)
    if name.startswith("factory:"):
        return _factory_model(name, num_classes, in_channels, image_size, **kwargs)
    if name.startswith("timm:"):
        return timm_classifier(name.split(":", 1)[1], num_classes, in_channels, image_size, **kwargs)
    check_model_name(name)
    try:
        return _MODELS[name][0](num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kwargs)
    except TypeError as exc:  # an unknown keyword argument
        raise InvalidInputError(f"model {name!r} does not accept these arguments {sorted(kwargs)}: {exc}") from None
