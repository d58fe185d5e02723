"""The one training loop: seeding, budgets, divergence, recipe validation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from prunelora.api import train
from prunelora.data import build_splits
from prunelora.errors import InvalidInputError
from prunelora.models import create_model
from prunelora.training import (
    TrainConfig,
    TrainingDivergedError,
    accuracy_on,
    fit,
    predict,
    seed_everything,
)


@pytest.fixture(scope="module")
def small_train(digits):
    """200 digits images: a few optimizer steps take milliseconds."""
    return digits.train.subset(range(200))


def _tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("resnet8", 10, 1, 8, width=0.25)


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_weights_whatever_the_global_rng(state_dicts_equal):
    # Same recipe and seed, but the global RNG differs before each call (as it does between two
    # calls in one process): the result must depend on the recipe's seed alone.
    torch.manual_seed(1)
    a = train("digits", "resnet8", TrainConfig(epochs=1, seed=0), progress=False)
    torch.manual_seed(2)
    b = train("digits", "resnet8", TrainConfig(epochs=1, seed=0), progress=False)
    assert state_dicts_equal(a.model.state_dict(), b.model.state_dict())
    assert a.meta["metrics"] == b.meta["metrics"]


def test_same_seed_and_same_init_gives_identical_weights(state_dicts_equal):
    torch.manual_seed(7)
    a = train("digits", "resnet8", TrainConfig(epochs=1, seed=0), progress=False)
    torch.manual_seed(7)
    b = train("digits", "resnet8", TrainConfig(epochs=1, seed=0), progress=False)
    assert state_dicts_equal(a.model.state_dict(), b.model.state_dict())
    assert a.meta["metrics"] == b.meta["metrics"]
    assert a.meta["history"] == b.meta["history"]


def test_different_seeds_give_different_weights(state_dicts_equal):
    torch.manual_seed(7)
    a = train("digits", "resnet8", TrainConfig(epochs=1, seed=0), progress=False)
    torch.manual_seed(7)
    b = train("digits", "resnet8", TrainConfig(epochs=1, seed=1), progress=False)
    assert not state_dicts_equal(a.model.state_dict(), b.model.state_dict())


def test_fit_is_repeatable(small_train, state_dicts_equal):
    config = TrainConfig(steps=5, batch_size=32, seed=3)
    a, b = _tiny(), _tiny()
    fit(a, small_train, config, progress=False)
    fit(b, small_train, config, progress=False)
    assert state_dicts_equal(a.state_dict(), b.state_dict())


def test_seed_everything_seeds_python_numpy_and_torch():
    import random

    import numpy as np

    seed_everything(11)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(11)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


# --------------------------------------------------------------------------- budgets


@pytest.mark.parametrize("steps", [1, 3, 20])  # 20 steps cross an epoch boundary (7 batches/epoch)
def test_steps_budget_is_honoured(small_train, steps):
    result = fit(_tiny(), small_train, TrainConfig(steps=steps, batch_size=32, epochs=99), progress=False)
    assert result.steps == steps
    assert result.history[-1]["steps"] == steps
    assert len(result.history) == math.ceil(steps / 7)
    assert math.isfinite(result.final_loss)


@pytest.mark.parametrize(("epochs", "expected"), [(1, 7), (2, 14), (0.5, 4)])
def test_epochs_budget(small_train, epochs, expected):
    config = TrainConfig(epochs=epochs, batch_size=32)
    assert config.total_steps(len(small_train)) == expected
    result = fit(_tiny(), small_train, config, progress=False)
    assert result.steps == expected


def test_api_train_records_the_steps(trained):
    # 1347 train - 135 val = 1212 retain images, batch 128 -> 10 steps an epoch, 2 epochs.
    assert trained.meta["cost"]["steps"] == 20
    assert [h["epoch"] for h in trained.meta["history"]] == [1, 2]


def test_params_restricts_what_is_trained(small_train):
    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, small_train, TrainConfig(steps=3, batch_size=32), params=model.head.parameters(),
        freeze_batchnorm=True, progress=False)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"head.weight", "head.bias"}


def test_loss_fn_and_after_step_are_used(small_train):
    calls = {"loss": 0, "after": 0}

    def loss_fn(model, x, y):
        calls["loss"] += 1
        return nn.functional.cross_entropy(model(x), y)

    def after_step(model):
        calls["after"] += 1

    fit(_tiny(), small_train, TrainConfig(steps=4, batch_size=32), loss_fn=loss_fn, after_step=after_step,
        progress=False)
    assert calls == {"loss": 4, "after": 4}


def test_training_lowers_the_loss(small_train):
    model = _tiny()
    result = fit(model, small_train, TrainConfig(epochs=4, batch_size=32, optimizer="adam", lr=1e-2),
                 progress=False)
    assert result.history[-1]["loss"] < result.history[0]["loss"]


# --------------------------------------------------------------------------- divergence


def test_huge_learning_rate_diverges(small_train):
    config = TrainConfig(steps=20, batch_size=32, lr=1e8, schedule="constant")
    with pytest.raises(TrainingDivergedError) as info:
        fit(_tiny(), small_train, config, progress=False)
    message = str(info.value)
    assert "100000000.0" in message and "learning rate" in message
    assert isinstance(info.value, InvalidInputError)  # the CLI turns it into exit status 2


def test_nothing_to_train(small_train):
    model = _tiny()
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(InvalidInputError, match="nothing to train"):
        fit(model, small_train, TrainConfig(steps=1), progress=False)


# --------------------------------------------------------------------------- recipe validation


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"optimizer": "rmsprop"}, "'rmsprop'"),
    ({"schedule": "step"}, "'step'"),
    ({"lr": 0.0}, "learning rate 0.0"),
    ({"lr": -1.0}, "learning rate -1.0"),
    ({"lr": float("nan")}, "lr nan must be a finite number"),
    ({"lr": float("inf")}, "lr inf must be a finite number"),
    ({"momentum": -1.0}, r"momentum -1.0 is outside \[0, 1\)"),
    ({"momentum": float("nan")}, "momentum nan must be a finite number"),
    ({"seed": 2**63}, r"seed 9223372036854775808 is not an integer in \[0, 2\^63\)"),
    ({"epochs": 0}, "epochs 0"),
    ({"epochs": -2}, "epochs -2"),
    ({"steps": 0}, "steps 0"),
    ({"batch_size": 0}, "batch size 0"),
    ({"weight_decay": -1e-4}, "weight decay"),
    ({"warmup_fraction": 1.0}, "warm-up fraction 1.0"),
    ({"grad_clip": 0.0}, "gradient clip 0.0"),
])
def test_train_config_validation(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        TrainConfig(**kwargs)


def test_steps_replace_epochs():
    config = TrainConfig(epochs=0, steps=5)  # epochs is not checked when steps is the budget
    assert config.total_steps(10_000) == 5


def test_train_config_round_trip():
    config = TrainConfig(epochs=3, optimizer="adam", lr=1e-3, grad_clip=1.0, seed=9)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig.from_dict({**config.to_dict(), "future_key": 1}) == config


# --------------------------------------------------------------------------- prediction helpers


def test_predict_restores_mode_and_matches_accuracy(digits):
    model = _tiny().train()
    test = digits.test.subset(range(50))
    logits, targets = predict(model, test, batch_size=16)
    assert model.training
    assert logits.shape == (50, 10) and torch.equal(targets, test.targets)
    expected = 100.0 * (logits.argmax(1) == targets).float().mean().item()
    assert accuracy_on(model, test) == pytest.approx(expected)


def test_accuracy_on_empty_dataset_is_nan(digits):
    splits = build_splits(digits, None)
    assert math.isnan(accuracy_on(_tiny(), splits.forget))
