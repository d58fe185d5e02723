"""`find_classifier` and `capture_features` on every kind of model the library supports: the
features a hook captures are exactly what the classifier turns into the model's logits."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from prunelora.errors import InvalidInputError
from prunelora.evaluation.features import capture_features, classifier_inputs, pool_features
from prunelora.models import create_model
from prunelora.models.classifier import find_classifier


def sequential_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 10))


class TimmStyle(nn.Module):
    """timm's interface: `get_classifier()`; a Linear after it in module order is not the classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU())
        self.fc_out = nn.Linear(8, 10)
        self.aux = nn.Linear(8, 2)  # registered last, unused by forward

    def get_classifier(self) -> nn.Module:
        return self.fc_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(self.body(x))


def tv_resnet18() -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    model.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    return model


CASES = {
    # name: (builder, expected classifier name)
    "resnet8": (lambda: create_model("resnet8", 10, 1, 8), "head"),
    "vit-tiny": (lambda: create_model("vit-tiny", 10, 1, 8, depth=1), "head"),
    "torchvision:resnet18 (registry)": (lambda: create_model("torchvision:resnet18", 10, 1, 8), "head"),
    "torchvision resnet18 (plain)": (tv_resnet18, "fc"),
    "nn.Sequential CNN": (sequential_cnn, "7"),
    "timm-style get_classifier()": (TimmStyle, "fc_out"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_classifier_is_found_and_its_input_gives_the_logits(case, digits):
    build, expected = CASES[case]
    model = build().eval()
    name, module = find_classifier(model)
    assert name == expected
    assert module is model.get_submodule(name)
    dataset = digits.test.subset(range(20))
    features, targets = classifier_inputs(model, dataset, batch_size=8, device="cpu")  # 3 batches
    x, y = dataset[list(range(20))]
    assert torch.equal(targets, y)
    assert features.shape[0] == 20 and features.ndim == 2
    with torch.no_grad():
        assert torch.allclose(module(features), model(x), atol=1e-5)


def test_capture_restores_the_training_mode_and_needs_no_gradient(digits):
    model = create_model("resnet8", 10, 1, 8).train()
    features, _ = classifier_inputs(model, digits.test.subset(range(4)), device="cpu")
    assert model.training  # restored
    assert not features.requires_grad
    # eval mode inside: BatchNorm used its running statistics, so one sample alone gives the same features
    single, _ = classifier_inputs(model, digits.test.subset(range(1)), device="cpu")
    assert torch.allclose(single[0], features[0], atol=1e-6)
    assert not model._forward_pre_hooks and not model.head._forward_pre_hooks  # the hook was removed


def test_an_explicit_name_wins():
    model = TimmStyle()
    assert find_classifier(model, "aux") == ("aux", model.aux)


def test_unknown_name_is_one_clear_error():
    with pytest.raises(InvalidInputError, match=r"no module 'nohead'.*body"):
        find_classifier(TimmStyle(), "nohead")


def test_a_model_without_any_linear_layer_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 10, 8), nn.Flatten())
    with pytest.raises(InvalidInputError, match="has no classifier"):
        find_classifier(model)


def test_output_capture_pools_space_and_tokens(digits):
    model = create_model("resnet8", 10, 1, 8)
    features, _ = capture_features(model, digits.test.subset(range(5)), model.layers[1], "output", device="cpu")
    assert features.shape == (5, 32)  # stage 2 has 32 channels, averaged over its 4x4 map
    tokens = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(pool_features(tokens), tokens.mean(1))
    assert torch.equal(pool_features((torch.ones(2, 5), None)), torch.ones(2, 5))


def test_a_module_that_never_runs_is_refused(digits):
    model = TimmStyle()
    with pytest.raises(InvalidInputError, match="ran 0 times"):
        capture_features(model, digits.test.subset(range(3)), model.aux, device="cpu")
