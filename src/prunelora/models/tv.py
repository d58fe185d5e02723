"""Any torchvision classifier behind the `Classifier` interface (`torchvision:<name>`)."""

from __future__ import annotations

import torch
from torch import nn

from prunelora.errors import InvalidInputError
from prunelora.models.arguments import check_model_kwargs
from prunelora.models.classifier import Classifier
from prunelora.models.offline import download_switches, no_network


class TorchvisionClassifier(Classifier):
    """Wraps a torchvision model: its last `nn.Linear` becomes `head`, the rest is `backbone`."""

    def __init__(self, backbone: nn.Module, head: nn.Linear, in_channels: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.repeat = 3 // in_channels if in_channels in (1, 3) else 1  # grey images fed as RGB

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.repeat > 1:
            x = x.repeat(1, self.repeat, 1, 1)
        return torch.flatten(self.backbone(x), 1)


def check_torchvision_name(arch: str) -> None:
    """Refuse, in one line, a name that is not one of torchvision's classification models.

    Detection, segmentation, video and quantized models are refused too: they are not classifiers
    (and detection builders fetch backbone weights by default).

    Raises:
        InvalidInputError: `arch` is not a torchvision classification model.
    """
    import torchvision

    classifiers = torchvision.models.list_models(module=torchvision.models)
    if arch.lower() not in classifiers:  # what get_model accepts (it lowercases)
        other = " (not a classification model)" if arch.lower() in torchvision.models.list_models() else ""
        raise InvalidInputError(f"unknown torchvision model {arch[:80]!r}{other}; e.g. {', '.join(classifiers[:12])}, ...")


def torchvision_classifier(arch: str, num_classes: int, in_channels: int, image_size: int,
                           **kwargs) -> TorchvisionClassifier:
    import torchvision

    if in_channels not in (1, 3):
        raise InvalidInputError(f"torchvision models take 1 or 3 input channels, not {in_channels}")
    check_torchvision_name(arch)
    check_model_kwargs(f"torchvision:{arch}", kwargs)
    builder = torchvision.models.get_model_builder(arch)
    try:
        # every weights*/pretrained* switch off (weights_backbone too): never download at run time
        with no_network(f"torchvision:{arch}"):
            backbone = builder(**download_switches(builder), **kwargs)
    except TypeError as exc:  # an argument the torchvision builder does not take
        raise InvalidInputError(f"torchvision:{arch} does not accept {sorted(kwargs)} ({exc})") from None
    last_name, last = None, None
    for name, module in backbone.named_modules():
        if isinstance(module, nn.Linear):
            last_name, last = name, module
    if last is None:
        raise InvalidInputError(f"torchvision:{arch} has no final nn.Linear classifier to resize")
    parent = backbone.get_submodule(last_name.rsplit(".", 1)[0]) if "." in last_name else backbone
    setattr(parent, last_name.rsplit(".", 1)[-1], nn.Identity())
    model = TorchvisionClassifier(backbone, nn.Linear(last.in_features, num_classes), in_channels)
    model.arch = arch
    return model
