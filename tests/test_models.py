"""The model registry: one interface (`features` + `head`) over every architecture, table-driven."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunelora.errors import InvalidInputError
from prunelora.models import Classifier, create_model, list_models

# name, kwargs, in_channels, image_size, batch: small shapes that still exercise every stage.
CASES = [
    ("resnet8", {}, 1, 8, 4),
    ("resnet8", {}, 3, 32, 2),
    ("resnet20", {}, 1, 8, 4),
    ("resnet18", {"width": 0.25}, 3, 8, 2),
    ("resnet50", {"width": 0.25}, 1, 8, 2),
    ("vit-tiny", {}, 1, 8, 2),
    ("vit-tiny", {}, 1, 28, 2),
    ("vit-small", {}, 3, 8, 2),
    ("vit-small", {}, 1, 28, 2),
    ("torchvision:resnet18", {}, 1, 32, 2),
]
IDS = [f"{name}-c{c}-{size}px" for name, _, c, size, _ in CASES]
NUM_CLASSES = 7


def _build(name, kwargs, channels, size, seed=0):
    torch.manual_seed(seed)
    return create_model(name, NUM_CLASSES, channels, size, **kwargs)


def _batch(channels, size, batch):
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, channels, size, size, generator=g), torch.arange(batch) % NUM_CLASSES


def test_table_covers_every_registered_model():
    registered = {name for name in list_models() if name not in ("torchvision:<name>", "timm:<name>")}
    assert registered == {name for name, *_ in CASES if not name.startswith("torchvision:")}
    assert "torchvision:<name>" in list_models()


@pytest.mark.parametrize(("name", "kwargs", "channels", "size", "batch"), CASES, ids=IDS)
def test_forward_backward(name, kwargs, channels, size, batch):
    model = _build(name, kwargs, channels, size)
    assert isinstance(model, Classifier)
    assert isinstance(model.head, nn.Linear) and model.head.out_features == NUM_CLASSES
    x, y = _batch(channels, size, batch)
    model.train()
    logits = model(x)
    assert logits.shape == (batch, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, y).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for param_name, param in trainable:
        assert param.grad is not None, f"{name}: {param_name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}: {param_name} has a non-finite gradient"
    assert any(param.grad.abs().sum() > 0 for _, param in trainable)


@pytest.mark.parametrize(("name", "kwargs", "channels", "size", "batch"), CASES, ids=IDS)
def test_features_then_head_is_forward(name, kwargs, channels, size, batch):
    model = _build(name, kwargs, channels, size).eval()
    x, _ = _batch(channels, size, batch)
    with torch.no_grad():
        features = model.features(x)
        assert features.ndim == 2 and features.shape == (batch, model.head.in_features)
        assert torch.equal(model.head(features), model(x))


@pytest.mark.parametrize(("name", "kwargs", "channels", "size", "batch"), CASES, ids=IDS)
def test_construction_is_seeded(name, kwargs, channels, size, batch):
    a = _build(name, kwargs, channels, size, seed=3).state_dict()
    b = _build(name, kwargs, channels, size, seed=3).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", [n for n in list_models() if not n.startswith(("torchvision:", "timm:"))])
def test_width_changes_parameter_count(name):
    size = 8
    narrow = create_model(name, NUM_CLASSES, 1, size, width=0.25)
    wide = create_model(name, NUM_CLASSES, 1, size, width=0.5)
    assert _count(narrow) < _count(wide)


@pytest.mark.parametrize("name", ["resnet8", "vit-tiny"])
def test_num_classes_and_channels_shape_the_model(name):
    a = create_model(name, 3, 1, 8, width=0.25)
    b = create_model(name, 5, 1, 8, width=0.25)
    assert a.head.out_features == 3 and b.head.out_features == 5
    assert a(torch.zeros(1, 1, 8, 8)).shape == (1, 3)
    assert create_model(name, 3, 3, 8, width=0.25)(torch.zeros(1, 3, 8, 8)).shape == (1, 3)


def test_unknown_model_lists_accepted_names():
    with pytest.raises(InvalidInputError) as info:
        create_model("resnet9000", 10)
    message = str(info.value)
    assert "'resnet9000'" in message
    for name in ("resnet8", "resnet50", "vit-tiny", "torchvision:<name>"):
        assert name in message


def test_unknown_torchvision_model():
    with pytest.raises(InvalidInputError, match="'not_a_net'"):
        create_model("torchvision:not_a_net", 10)


def test_unknown_model_argument():
    with pytest.raises(InvalidInputError, match="resnet8.*depth"):
        create_model("resnet8", 10, depth=3)


def test_unknown_torchvision_argument():
    with pytest.raises(InvalidInputError, match="width"):
        create_model("torchvision:resnet18", 10, 1, 32, width=2)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: create_model("resnet8", 1), "num_classes 1"),
    (lambda: create_model("resnet8", 10, width=0), "width multiplier 0"),
    (lambda: create_model("vit-tiny", 10, 1, 30, patch_size=4), "patch size 4"),
    (lambda: create_model("vit-tiny", 10, 1, 8, depth=0), "depth 0"),
    (lambda: create_model("torchvision:resnet18", 10, 2, 32), "not 2"),
], ids=["one-class", "zero-width", "patch", "depth", "tv-channels"])
def test_bad_model_arguments(call, match):
    with pytest.raises(InvalidInputError, match=match):
        call()


@pytest.mark.parametrize("name", ["vit-tiny", "vit-small"])
def test_vit_attention_is_multihead_attention(name):
    model = create_model(name, NUM_CLASSES, 1, 8, depth=2)
    attention = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    assert len(attention) == len(model.blocks) == 2
    assert all(isinstance(block.attn, nn.MultiheadAttention) for block in model.blocks)


def test_vit_attention_changes_the_output():
    # The attention module must sit on the forward path (the reference code's LoRA target did not).
    torch.manual_seed(0)
    model = create_model("vit-tiny", NUM_CLASSES, 1, 8, depth=1).eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        before = model(x)
        model.blocks[-1].attn.out_proj.weight.mul_(2.0)
        assert not torch.allclose(before, model(x))


def test_torchvision_grey_input_is_repeated_to_rgb():
    torch.manual_seed(0)
    model = create_model("torchvision:resnet18", NUM_CLASSES, 1, 32).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.features(x), torch.flatten(model.backbone(x.repeat(1, 3, 1, 1)), 1))
    assert model.backbone.fc.__class__ is nn.Identity  # the original classifier was replaced by `head`


def test_timm_models_are_built_with_random_weights_and_their_classifier_is_found():
    timm = pytest.importorskip("timm", reason="timm is not installed (pip install 'prunelora[timm]')")
    from prunelora.checkpoint import build_model_from_meta
    from prunelora.models.classifier import find_classifier

    torch.manual_seed(0)
    model = create_model("timm:resnet10t", NUM_CLASSES, 1, 16)
    assert isinstance(model, timm.models.ResNet)
    assert find_classifier(model) == ("fc", model.fc) and model.fc.out_features == NUM_CLASSES
    assert model.eval()(torch.zeros(2, 1, 16, 16)).shape == (2, NUM_CLASSES)
    # seeded, and rebuilt from a checkpoint's meta like any registry model
    torch.manual_seed(0)
    again = build_model_from_meta({"model": {"name": "timm:resnet10t", "num_classes": NUM_CLASSES, "in_channels": 1,
                                             "image_size": 16, "kwargs": {}}})
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(),
                                                 strict=True))
    with pytest.raises(InvalidInputError, match="unknown timm model 'no_such_net'"):
        create_model("timm:no_such_net", NUM_CLASSES, 1, 16)
