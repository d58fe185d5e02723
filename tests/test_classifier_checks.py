"""The classifier, the splits and the model a user hands to the Python API and the CLI, checked before
any work: a wrong classifier (empty name, a Conv2d, a hidden nn.Linear with other outputs), retain and
forget sets that overlap or disagree with `forget_classes`, and models or data prunelora cannot run
(a string, the meta device, float64, three channels for one, a device this machine lacks).
Each refusal is prunelora's own error in one line; the chosen classifier is printed and recorded.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import one_error_line
from torch import nn
from torch.utils.data import Subset, TensorDataset

import prunelora
from prunelora.errors import InvalidInputError, PruneLoRAError

CLASSES = 4


class Scaled(TensorDataset):
    """A user's dataset without `.targets`: float images, int labels, its own transform."""

    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        return x * 2 - 1, int(y)


def make_data(n: int, seed: int, channels: int = 1) -> Scaled:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % CLASSES
    images = torch.rand(n, channels, 8, 8, generator=gen)
    images[:, :, :2, :2] += labels.view(-1, 1, 1, 1) * 0.3
    return Scaled(images, labels)


class HiddenProjection(nn.Module):
    """A user's CNN whose real head (`logits`) is followed, in definition order, by an auxiliary
    nn.Linear(16, 32) that `forward` uses on the side: the last nn.Linear is not the classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.logits = nn.Linear(16, CLASSES)
        self.projection = nn.Linear(16, 32)

    def forward(self, x):
        features = self.body(x)
        self.embedding = self.projection(features)  # e.g. for a contrastive loss elsewhere
        return self.logits(features)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, CLASSES))


@pytest.fixture(scope="module")
def data():
    train, test = make_data(64, 0), make_data(32, 1)
    labels = torch.arange(64) % CLASSES
    forget = Subset(train, (labels == 1).nonzero().flatten().tolist())
    retain = Subset(train, (labels != 1).nonzero().flatten().tolist())
    return {"retain": retain, "forget": forget, "test": test, "forget_classes": [1]}


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and isinstance(exc.value, PruneLoRAError)
    return message


def _unlearn(model, data, **extra):
    return prunelora.unlearn(model, method="finetune", progress=False, steps=1, batch_size=16, **data, **extra)


def _evaluate(model, data, **extra):
    return prunelora.evaluate(model, throughput=False, macs=False, relearn=None, **data, **extra)


# --------------------------------------------------------------------------- the classifier

def test_a_hidden_linear_after_the_head_is_refused_naming_it_and_the_option(data):
    torch.manual_seed(0)
    with pytest.raises(InvalidInputError) as info:
        _unlearn(HiddenProjection(), data)
    line = _one_line(info)
    assert "'projection'" in line and "32 outputs" in line and f"{CLASSES} classes" in line
    assert "classifier=" in line and "--classifier-name" in line and "logits" in line  # the candidate


def test_the_right_classifier_named_is_used_and_recorded(data):
    torch.manual_seed(0)
    model = HiddenProjection()
    result = _unlearn(model, data, classifier="logits")
    assert result.record.details["classifier"] == "logits"
    assert not torch.equal(result.model.logits.weight, model.logits.weight)  # the head trained
    assert result.to_dict()["classifier"] == "logits"  # in the JSON a bench cell holds


def test_the_found_classifier_is_recorded(data):
    assert _unlearn(small_cnn(), data).record.details["classifier"] == "4"


def test_evaluate_refuses_a_hidden_linear_for_its_probe(data):
    torch.manual_seed(0)
    with pytest.raises(InvalidInputError) as info:
        _evaluate(HiddenProjection(), data)
    line = _one_line(info)
    assert "'projection'" in line and "probe=False" in line


@pytest.mark.parametrize("name,named", [("", "names no module"), ("  ", "names no module"),
                                        ("0", "'0' (Conv2d) is not an nn.Linear"),
                                        ("2", "'2' (AdaptiveAvgPool2d) is not an nn.Linear")])
def test_a_classifier_name_that_cannot_be_the_classifier_is_refused(name, named, data):
    with pytest.raises(InvalidInputError) as info:
        _unlearn(small_cnn(), data, classifier=name)
    line = _one_line(info)
    assert named in line and "--classifier-name" in line


@pytest.mark.parametrize("name,named", [("", "names no module"), ("conv1", "'conv1' (Conv2d) is not an nn.Linear")])
def test_the_cli_refuses_such_a_classifier_name_and_writes_nothing(name, named, run_cli, checkpoint_dir, tmp_path):
    out = tmp_path / "out"
    line = one_error_line(run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-class", "3", "--method",
                                  "lora", "--steps", "1", "--classifier-name", name, "--out", out, "--no-progress"),
                          "unlearn")
    assert named in line
    assert not out.exists()


def test_the_cli_prints_the_classifier_of_train_and_unlearn(run_cli, checkpoint_dir, tmp_path):
    code, stdout, stderr = run_cli("train", "--dataset", "digits", "--model", "resnet8", "--steps", "1", "--out",
                                   tmp_path / "trained", "--no-progress")
    assert code == 0, stderr
    assert "classifier: head" in stdout
    code, stdout, stderr = run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-class", "3", "--method",
                                   "finetune", "--steps", "1", "--out", tmp_path / "forgot", "--no-progress")
    assert code == 0, stderr
    assert "classifier: head" in stdout


# --------------------------------------------------------------------------- the splits

def test_a_retain_set_holding_the_forget_records_is_refused(data):
    train = data["retain"].dataset
    with pytest.raises(InvalidInputError) as info:
        _unlearn(small_cnn(), {"retain": train, "forget": Subset(train, [1, 5, 9])})
    line = _one_line(info)
    assert "share 3 of the forget set's 3 records" in line and "forget record 0 is retain record 1" in line


def test_copies_of_the_forget_records_in_the_retain_set_are_refused(data):
    """Not subsets of one object: equal copies (input and label), as a user who filtered tensors makes."""
    train = data["retain"].dataset
    images, labels = train.tensors
    forget = Scaled(images[:8].clone(), labels[:8].clone())
    with pytest.raises(InvalidInputError, match="share 8 of the forget set's 8 records"):
        prunelora.Splits.from_datasets(Scaled(images.clone(), labels.clone()), forget)


def test_a_few_duplicates_are_a_warning_not_a_refusal(data):
    train = data["retain"].dataset
    images, labels = train.tensors
    retain = Scaled(torch.cat([images[8:], images[:1]]), torch.cat([labels[8:], labels[:1]]))
    with pytest.warns(UserWarning, match="1 of the forget set's 8 records equal a retain record"):
        splits = prunelora.Splits.from_datasets(retain, Scaled(images[:8], labels[:8]))
    assert len(splits.forget) == 8


def test_disjoint_sets_raise_no_warning(data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        splits = prunelora.Splits.from_datasets(data["retain"], data["forget"], forget_classes=[1])
    assert splits.spec.classes == (1,)


def test_forget_classes_that_disagree_with_the_forget_set_are_refused(data):
    train = data["retain"].dataset
    labels = torch.arange(64) % CLASSES
    class2 = Subset(train, (labels == 2).nonzero().flatten().tolist())
    retain = Subset(train, (labels != 2).nonzero().flatten().tolist())
    with pytest.raises(InvalidInputError) as info:
        _unlearn(small_cnn(), {"retain": retain, "forget": class2, "forget_classes": [1]})
    line = _one_line(info)
    assert "forget_classes [1]" in line and "16 of its 16 records are of other classes" in line


def test_a_retain_set_holding_the_forgotten_class_is_refused(data):
    train = data["retain"].dataset
    labels = torch.arange(64) % CLASSES
    forget = Subset(train, (labels == 1).nonzero().flatten().tolist()[:8])
    retain = Subset(train, [i for i in range(64) if i not in forget.indices])
    with pytest.raises(InvalidInputError, match="the retain set holds 8 records of the forgotten classes"):
        prunelora.Splits.from_datasets(retain, forget, forget_classes=[1])


# --------------------------------------------------------------------------- models and data the API cannot run

def _meta_model():
    with torch.device("meta"):
        return small_cnn()


def _three_channel(data):
    return {**data, "test": make_data(32, 1, channels=3)}


def _three_channel_forget(data):
    forget = make_data(16, 2, channels=3)
    return {"retain": data["retain"], "forget": forget}


API_CASES = {
    "string-model": (lambda d: ("resnet8", d, {}), "must be an nn.Module"),
    "meta-device-model": (lambda d: (_meta_model(), d, {}), "meta device"),
    "float64-model": (lambda d: (small_cnn().double(), d, {}), "torch.float64"),
    "no-such-device": (lambda d: (small_cnn(), d, {"device": "cuda:3"}), "device 'cuda:3' is not available"),
    "not-a-device": (lambda d: (small_cnn(), d, {"device": "gpu"}), "device 'gpu' is not available"),
}


@pytest.mark.parametrize("function", ["unlearn", "evaluate"])
@pytest.mark.parametrize("case", list(API_CASES))
def test_the_api_refuses_what_it_cannot_run_in_one_line(case, function, data):
    build, named = API_CASES[case]
    model, inputs, extra = build(data)
    with pytest.raises(PruneLoRAError) as info:
        (_unlearn if function == "unlearn" else _evaluate)(model, inputs, **extra)
    assert named in _one_line(info)


def test_evaluate_refuses_a_three_channel_test_set_for_a_one_channel_model(data):
    with pytest.raises(InvalidInputError) as info:
        _evaluate(small_cnn(), _three_channel(data))
    line = _one_line(info)
    assert "cannot score the test set" in line and "(3, 8, 8)" in line


def test_unlearn_refuses_a_three_channel_forget_set_for_a_one_channel_model(data):
    with pytest.raises(InvalidInputError) as info:
        _unlearn(small_cnn(), _three_channel_forget(data))
    line = _one_line(info)
    assert "cannot score the forget set" in line and "(3, 8, 8)" in line
