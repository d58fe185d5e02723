"""Your model, your data: every registered method on models the registry did not build — a
torchvision ResNet-18 (classifier `fc`), a plain `nn.Sequential` CNN and, when timm is installed, a
timm model — each on a user's own `TensorDataset` subclass with its own transform."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import prunelora
from prunelora.errors import InvalidInputError
from prunelora.methods import get_method, list_methods
from prunelora.training import TrainConfig

CLASSES, FORGET = 4, 1


class Scaled(TensorDataset):
    """A user's dataset: float images, int labels, its own transform, no `.targets`."""

    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        return (x - 0.5) * 4.0, int(y)


def make_data(n: int, seed: int) -> Scaled:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % CLASSES
    images = torch.rand(n, 3, 16, 16, generator=gen) * 0.5
    images[:, labels % 3, :4, :4] += 0.5  # something learnable per class
    return Scaled(images, labels)


@pytest.fixture(scope="module")
def data():
    train, test = make_data(64, 0), make_data(32, 1)
    labels = torch.arange(64) % CLASSES
    forget = torch.utils.data.Subset(train, (labels == FORGET).nonzero().flatten().tolist())
    retain = torch.utils.data.Subset(train, (labels != FORGET).nonzero().flatten().tolist())
    return retain, forget, test


def torchvision_resnet18() -> nn.Module:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return resnet18(num_classes=CLASSES)  # random init: nothing is downloaded


def sequential_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, CLASSES),
    )


def timm_resnet() -> nn.Module:
    timm = pytest.importorskip("timm", reason="timm is not installed (pip install 'prunelora[timm]')")
    torch.manual_seed(0)
    return timm.create_model("resnet10t", pretrained=False, num_classes=CLASSES)


MODELS = {"torchvision-resnet18": (torchvision_resnet18, "fc"), "sequential": (sequential_cnn, "8"),
          "timm-resnet10t": (timm_resnet, "fc")}
RECIPE = TrainConfig(steps=2, batch_size=16, optimizer="sgd", lr=0.01, seed=0)


def fast_options(method: str) -> dict:
    fields = {f.name for f in dataclasses.fields(get_method(method).config_cls)}
    options = {"steps": 2} if "steps" in fields else {}
    if "batch_size" in fields:
        options["batch_size"] = 16
    return options


def classifier_of(model: nn.Module, name: str) -> nn.Linear:
    return model.get_submodule(name)


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("method", sorted(list_methods()))
def test_every_method_unlearns_a_users_model_on_a_users_dataset(model_name, method, data):
    make, classifier = MODELS[model_name]
    retain, forget, test = data
    model = make()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    extra = {"model_factory": make, "recipe": RECIPE} if method == "retrain" else {}
    result = prunelora.unlearn(model, retain=retain, forget=forget, test=test, forget_classes=[FORGET],
                               method=method, progress=False, **fast_options(method), **extra)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the input is untouched
    out = result.model
    assert isinstance(out, type(model))  # a plain model of the user's own class
    assert all(torch.isfinite(p).all() for p in out.parameters())
    head = classifier_of(out, classifier)
    # never pruned: every class keeps a live row
    assert bool((head.weight != 0).any(dim=1).all())
    trained_head = not torch.equal(head.weight, before[f"{classifier}.weight"])
    if method in ("lora", "prunelora", "finetune", "prune-finetune", "retrain"):
        assert trained_head, "the classifier must train"
    if method in ("prune-finetune", "prunelora"):
        assert result.sparsity["overall"] > 0.1  # the merge kept the pruned zeros
        for key in result.sparsity["layers"]:
            assert not key.startswith(classifier + "."), key


@pytest.mark.parametrize("model_name", ["torchvision-resnet18", "sequential"])
def test_evaluate_a_users_model_on_a_users_datasets(model_name, data):
    make, _ = MODELS[model_name]
    retain, forget, test = data
    model = make()
    evaluation = prunelora.evaluate(model, retain=retain, forget=forget, test=test, forget_classes=[FORGET],
                                    throughput=False, macs=False, relearn_target=50.0)
    m = evaluation.metrics
    for key in ("UA", "RA", "TA", "FA", "MIA", "Probe-FA", "Probe-TA"):
        assert 0.0 <= m[key] <= 100.0, key
    assert m["relearn_steps"] >= 0  # relearning fetched the user's records through their transform


def test_the_classifier_can_be_named_and_a_model_without_one_is_refused(data):
    retain, forget, test = data
    result = prunelora.unlearn(sequential_cnn(), retain=retain, forget=forget, method="lora", classifier="8",
                               progress=False, steps=1, batch_size=16)
    assert result.model[8].weight.shape == (CLASSES, 16)
    no_classifier = nn.Sequential(nn.Conv2d(3, CLASSES, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(InvalidInputError, match="has no classifier"):
        prunelora.unlearn(no_classifier, retain=retain, forget=forget, method="finetune", progress=False, steps=1)
    with pytest.raises(InvalidInputError, match="no module 'classifier'"):
        prunelora.unlearn(sequential_cnn(), retain=retain, forget=forget, method="finetune", classifier="classifier",
                          progress=False, steps=1)


def test_retrain_of_a_users_model_needs_its_factory_and_recipe(data):
    retain, forget, _ = data
    with pytest.raises(InvalidInputError, match="model_factory= and recipe="):
        prunelora.unlearn(sequential_cnn(), retain=retain, forget=forget, method="retrain", progress=False)
    with pytest.raises(InvalidInputError, match="recipe=TrainConfig"):
        prunelora.unlearn(sequential_cnn(), retain=retain, forget=forget, method="retrain", progress=False,
                          model_factory=sequential_cnn)
