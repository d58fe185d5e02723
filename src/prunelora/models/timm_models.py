"""Any timm classifier (`timm:<name>`), with random initial weights: never a weight download.

An optional extra (`pip install 'prunelora[timm]'`). The model is timm's own: its classifier is
found through its `get_classifier()` (see `prunelora.models.classifier`), like any user's model.
"""

from __future__ import annotations

import re

from torch import nn

from prunelora.errors import InvalidInputError
from prunelora.models.arguments import check_model_kwargs
from prunelora.models.offline import no_network

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?")


def check_timm_name(arch: str):
    """timm itself, once `arch` is known to it; else one line (timm missing, or the unknown name).

    Raises:
        InvalidInputError: timm is not installed, or has no model `arch`.
    """
    try:
        import timm
    except ImportError:
        raise InvalidInputError(f"timm:{arch[:80]} needs timm: pip install 'prunelora[timm]'") from None
    # a plain registry name only: timm reads "hf-hub:..." and "local-dir:..." names from the hub or a folder
    if not _PLAIN_NAME.fullmatch(arch) or not timm.is_model(arch):
        known = ", ".join(timm.list_models("resnet*")[:8])
        raise InvalidInputError(f"unknown timm model {arch[:80]!r}; e.g. {known}, ... (timm.list_models())")
    return timm


def timm_classifier(arch: str, num_classes: int, in_channels: int, image_size: int, **kwargs) -> nn.Module:
    timm = check_timm_name(arch)
    check_model_kwargs(f"timm:{arch}", kwargs)  # no checkpoint_path, pretrained_cfg, ...: declared scalars only
    try:
        # pretrained=False: the weights are random, nothing is fetched from a hub
        with no_network(f"timm:{arch}"):
            model = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_channels,
                                      **kwargs)
    except TypeError as exc:
        raise InvalidInputError(f"timm:{arch} does not accept {sorted(kwargs)} ({exc})") from None
    model.arch = arch
    return model
