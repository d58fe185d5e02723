"""`prunelora-deep` and its subspace adapters on tiny models: the merged model has no component
along each edited layer's forget subspace, the adapters' updates stay in the complement while
they train, the output is a plain module, and it forgets a digits class."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from prunelora.adapters.subspace import (
    add_subspace_lora,
    editable_layers,
    forget_component,
    forget_subspaces,
    layer_inputs_by_class,
    merge_subspace_lora,
    remove_subspace,
)
from prunelora.checkpoint import load_checkpoint
from prunelora.data.generic import concat, fetch, subset, targets_of
from prunelora.errors import InvalidInputError
from prunelora.evaluation.metrics import accuracy
from prunelora.methods import get_method, unlearn
from prunelora.methods.common import random_wrong_labels
from prunelora.models import create_model
from prunelora.pruning import recalibrate_batchnorm
from prunelora.training.loop import predict


@pytest.fixture(scope="module")
def original(checkpoint_dir) -> nn.Module:
    return load_checkpoint(checkpoint_dir)[0].eval()


def orthonormal(dim: int, k: int, seed: int = 0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(dim, k, generator=torch.Generator().manual_seed(seed)))
    return q


@pytest.mark.parametrize("layer", [nn.Linear(12, 5), nn.Conv2d(12, 6, 3),
                                   nn.MultiheadAttention(12, 3, batch_first=True)])
def test_removal_leaves_no_component_along_the_subspace(layer):
    basis = orthonormal(12, 3)
    weight = layer.in_proj_weight if isinstance(layer, nn.MultiheadAttention) else layer.weight
    # an input direction orthogonal to the subspace, and what the layer's weight makes of it
    other = orthonormal(12, 12, seed=1)[:, :1].squeeze(1)
    other = other - basis @ (basis.T @ other)
    def read(direction):  # the weight applied to one input direction (a conv: per kernel position)
        return torch.einsum("oi...,i->o...", weight.detach(), direction)
    seen = read(other)
    assert forget_component(layer, basis) > 1e-3
    remove_subspace(layer, basis)
    assert forget_component(layer, basis) < 1e-6
    # the rest of the weight is untouched: an input orthogonal to the subspace sees the same layer
    assert torch.allclose(read(other), seen, atol=1e-5)
    assert read(basis[:, 0]).abs().max() < 1e-5
    before = copy.deepcopy(weight.detach())
    remove_subspace(layer, basis)  # a second removal changes nothing
    assert torch.allclose(weight, before, atol=1e-6)


def test_adapter_updates_stay_in_the_complement_while_training(original, class3_splits):
    model = copy.deepcopy(original)
    subspaces = forget_subspaces(model, class3_splits.forget, class3_splits.retain, 2)
    params = add_subspace_lora(model, subspaces, rank=4, alpha=8.0)
    assert all(p.requires_grad for p in params)
    assert sum(p.requires_grad for p in model.parameters()) == len(params)
    optimizer = torch.optim.Adam(params, lr=0.05)
    x, y = fetch(class3_splits.retain, list(range(64)))
    for _ in range(3):
        loss = nn.functional.cross_entropy(model.train()(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, basis in subspaces.items():
        lora = model.get_submodule(name).parametrizations
        update = next(iter(lora.values()))[0].update().detach()
        assert update.abs().max() > 0, name  # it trained ...
        moved = update.movedim(1, -1) @ basis
        assert moved.abs().max() < 1e-5, name  # ... and never along the subspace


def test_the_subspaces(original, class3_splits):
    subspaces = forget_subspaces(original, class3_splits.forget, class3_splits.retain, 3)
    layers = editable_layers(original, 6)
    assert "conv1" not in subspaces and "head" in subspaces  # the 1-channel stem is left alone
    assert set(subspaces) <= set(layers)
    for basis in subspaces.values():
        assert basis.shape[1] == 3
        assert torch.allclose(basis.T @ basis, torch.eye(3), atol=1e-5)
    with pytest.raises(InvalidInputError, match="subspace rank 0"):
        forget_subspaces(original, class3_splits.forget, class3_splits.retain, 0)


def test_a_forget_set_of_a_whole_class_and_some_records_takes_both_directions(original, class3_splits):
    """A whole class plus records of a retained class: the class's directions stay in the subspace
    (the within-class ones alone, as before, left the class out)."""
    retain_targets = targets_of(class3_splits.retain)
    fives = torch.nonzero(retain_targets == 5).flatten()
    moved, kept = fives[:20], torch.cat([torch.nonzero(retain_targets != 5).flatten(), fives[20:]]).sort().values
    mixed_forget = concat(class3_splits.forget, subset(class3_splits.retain, moved))
    mixed = forget_subspaces(original, mixed_forget, subset(class3_splits.retain, kept), 3)
    whole = forget_subspaces(original, class3_splits.forget, class3_splits.retain, 3)
    top = whole["head"][:, 0]
    assert (mixed["head"].T @ top).norm() > 0.9  # the class's first direction lies in the mixed subspace
    records = forget_subspaces(original, subset(class3_splits.retain, moved), subset(class3_splits.retain, kept), 3)
    assert records["head"].shape[1] == 1  # one shared class: one within-class difference, one direction
    assert (records["head"].T @ top).norm() < 0.9


def test_a_layer_whose_inputs_do_not_differ_gets_no_subspace(class3_splits):
    """A zero difference has no direction: its singular vectors would be arbitrary, so the layer
    is left out rather than edited along noise."""
    constant = nn.Linear(64, 8)
    nn.init.zeros_(constant.weight)  # every image gives the next layer the same input (the bias)
    model = nn.Sequential(nn.Flatten(), constant, nn.Linear(8, 10))
    subspaces = forget_subspaces(model, class3_splits.forget, class3_splits.retain, 3)
    assert "1" in subspaces and "2" not in subspaces


class _SequenceFirst(nn.Module):
    """Rows of the image as tokens through PyTorch's default `nn.MultiheadAttention`, which takes
    `(tokens, batch, dim)` (batch_first=False)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(8, 12)
        self.attention = nn.MultiheadAttention(12, 3)
        self.head = nn.Linear(12, 10)

    def forward(self, x):
        tokens = self.embed(x.flatten(1, 2)).transpose(0, 1)  # (N, 8 rows, 8) -> (8, N, 12)
        out, _ = self.attention(tokens, tokens, tokens)
        return self.head(out.mean(0))


def test_an_attention_that_is_not_batch_first_is_pooled_over_its_tokens(class3_splits):
    model = _SequenceFirst().eval()
    means = layer_inputs_by_class(model, class3_splits.forget, {"attention": model.attention})["attention"]
    images = fetch(class3_splits.forget, list(range(len(class3_splits.forget))))[0]
    with torch.no_grad():
        expected = model.embed(images.flatten(1, 2)).mean(1).mean(0).double()  # tokens, then images
    assert torch.allclose(means[3], expected, atol=1e-5)
    assert "attention" in forget_subspaces(model, class3_splits.forget, class3_splits.retain, 2)


@pytest.fixture(scope="module")
def unlearned(original, class3_splits):
    config = get_method("prunelora-deep").make_config(epochs=3, seed=0)
    return unlearn(original, class3_splits, "prunelora-deep", config, device="cpu", progress=False)


def test_the_merged_model_is_plain_with_no_component_along_any_subspace(unlearned, original, class3_splits):
    model = unlearned.model
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert type(model) is type(original)
    assert set(model.state_dict()) == set(original.state_dict())
    subspaces = forget_subspaces(original, class3_splits.forget, class3_splits.retain, 3)
    assert unlearned.record.details["subspaces"] == {name: 3 for name in subspaces}
    for name, basis in subspaces.items():
        assert forget_component(model.get_submodule(name), basis) < 1e-5, name


def test_it_forgets_a_digits_class_and_keeps_the_others(unlearned, original, class3_splits):
    ua = 100.0 - accuracy(*predict(unlearned.model, class3_splits.forget, device="cpu"))
    ta = accuracy(*predict(unlearned.model, class3_splits.test_retain, device="cpu"))
    ta_before = accuracy(*predict(original, class3_splits.test_retain, device="cpu"))
    assert ua > 90.0
    assert ta > ta_before - 10.0


def test_merge_is_the_trained_function():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    subspaces = {"0": orthonormal(8, 2), "2": orthonormal(8, 2, seed=2)}
    params = add_subspace_lora(model, subspaces, rank=2, alpha=2.0)
    with torch.no_grad():
        for p in params:
            p.normal_()
    x = torch.randn(5, 8)
    expected = model(x)
    merge_subspace_lora(model)
    assert not parametrize.is_parametrized(model[0])
    assert torch.allclose(model(x), expected, atol=1e-5)


def test_the_vit_is_edited_at_its_attention_inputs(digits):
    vit = create_model("vit-tiny", num_classes=10, in_channels=1, image_size=8).eval()
    from prunelora.data import ForgetSpec, build_splits

    splits = build_splits(digits, ForgetSpec.from_classes(3), val_fraction=0.1, seed=0)
    subspaces = forget_subspaces(vit, splits.forget, splits.retain, 2)
    assert "blocks.0.attn" in subspaces and "blocks.0.mlp.0" in subspaces
    assert not any(name.endswith("out_proj") for name in subspaces)  # never runs as a module
    config = get_method("prunelora-deep").make_config(steps=2, subspace_rank=2)
    result = unlearn(vit, splits, "prunelora-deep", config, device="cpu", progress=False)
    for name, basis in subspaces.items():
        assert forget_component(result.model.get_submodule(name), basis) < 1e-5, name


def test_bad_options():
    method = get_method("prunelora-deep")
    with pytest.raises(InvalidInputError, match="strength 1.5"):
        method.make_config(strength=1.5)
    with pytest.raises(InvalidInputError, match="subspace_rank 0"):
        method.make_config(subspace_rank=0)
    with pytest.raises(InvalidInputError, match="repair 'loose' is not one of subspace, free, none"):
        method.make_config(repair="loose")


def test_the_free_repair_rebuilds_along_the_subspace(original, class3_splits):
    """The ablation: the same LoRA, unconstrained, moves the weights back along the subspace."""
    config = get_method("prunelora-deep").make_config(epochs=1, repair="free", seed=0)
    model = unlearn(original, class3_splits, "prunelora-deep", config, device="cpu", progress=False).model
    subspaces = forget_subspaces(original, class3_splits.forget, class3_splits.retain, 3)
    assert max(forget_component(model.get_submodule(n), b) for n, b in subspaces.items()) > 1e-3
    edit_only = get_method("prunelora-deep").make_config(repair="none")
    result = unlearn(original, class3_splits, "prunelora-deep", edit_only, device="cpu", progress=False)
    assert result.cost.steps == 0 and result.cost.trainable_params == 0


@pytest.mark.parametrize("objective", ["random-label", "contract"])
def test_a_forget_objective_acts_through_the_constrained_adapters(original, class3_splits, objective):
    """With an objective on D_f, the repair still has no component along any forget subspace, and
    it moves D_f further than the D_r-only repair does (D_f's features: at the classifier input)."""
    def forget_feature_norm(model):
        store = []
        handle = model.head.register_forward_pre_hook(lambda _m, args: store.append(args[0].flatten(1)))
        with torch.no_grad():
            model.eval()(fetch(class3_splits.forget, list(range(len(class3_splits.forget))))[0])
        handle.remove()
        return store[0].norm(dim=1).mean().item()

    method = get_method("prunelora-deep")
    runs = {name: unlearn(original, class3_splits, "prunelora-deep",
                          method.make_config(steps=12, seed=0, forget_objective=name), device="cpu",
                          progress=False) for name in ("none", objective)}
    subspaces = forget_subspaces(original, class3_splits.forget, class3_splits.retain, 3)
    for name, basis in subspaces.items():
        assert forget_component(runs[objective].model.get_submodule(name), basis) < 1e-5, name
    assert not any(parametrize.is_parametrized(m) for m in runs[objective].model.modules())
    if objective == "contract":
        assert forget_feature_norm(runs["contract"].model) < 0.9 * forget_feature_norm(runs["none"].model)
    else:  # random labels on D_f: its predictions move towards the wrong labels it was given
        images = fetch(class3_splits.forget, list(range(len(class3_splits.forget))))[0]
        wrong = random_wrong_labels(targets_of(class3_splits.forget), class3_splits.num_classes, 0)
        to_wrong = {name: nn.functional.cross_entropy(run.model.eval()(images), wrong).item()
                    for name, run in runs.items()}
        assert to_wrong["random-label"] < to_wrong["none"]
    if objective == "contract":
        # the D_f batches ran in train mode, so BatchNorm's running statistics are partly D_f's and
        # part of the contraction lives there: recomputed on D_r alone, most of it is undone
        recalibrated = copy.deepcopy(runs["contract"].model)
        recalibrate_batchnorm(recalibrated, class3_splits.retain)
        contracted, plain = forget_feature_norm(runs["contract"].model), forget_feature_norm(runs["none"].model)
        assert forget_feature_norm(recalibrated) - contracted > 0.5 * (plain - contracted)


def test_random_records_are_forgotten_through_the_adapters(original, digits):
    """Random records: the random-label objective through the adapters moves the forget set's own
    records (UA rises), where the D_r-only repair leaves them memorised (no subspace edit in either:
    a random set's within-class directions are noise, so the lever is the objective alone)."""
    from prunelora.data import ForgetSpec, build_splits

    splits = build_splits(digits, ForgetSpec(kind="fraction", fraction=0.1, seed=3), val_fraction=0.1, seed=0)
    method = get_method("prunelora-deep")
    ua = {}
    for objective in ("none", "random-label"):
        config = method.make_config(epochs=3, lr=0.003, strength=0.0, seed=0, forget_objective=objective)
        model = unlearn(original, splits, "prunelora-deep", config, device="cpu", progress=False).model
        ua[objective] = 100.0 - accuracy(*predict(model, splits.forget, device="cpu"))
    assert ua["random-label"] > ua["none"] + 15.0, ua


def test_bad_forget_objective_options():
    method = get_method("prunelora-deep")
    with pytest.raises(InvalidInputError, match="forget_objective 'forget' is not one of none, random-label, contract"):
        method.make_config(forget_objective="forget")
    with pytest.raises(InvalidInputError, match="forget_weight 0"):
        method.make_config(forget_objective="contract", forget_weight=0)
    with pytest.raises(InvalidInputError, match="needs a repair"):
        method.make_config(forget_objective="random-label", repair="none")


def test_linear_depth_scaling_edits_the_deepest_layer_in_full_and_the_first_least(original, class3_splits):
    config = get_method("prunelora-deep").make_config(repair="none", depth_scaling="linear")
    model = unlearn(original, class3_splits, "prunelora-deep", config, device="cpu", progress=False).model
    subspaces = forget_subspaces(original, class3_splits.forget, class3_splits.retain, 3)
    left = {name: forget_component(model.get_submodule(name), basis) / forget_component(
        original.get_submodule(name), basis) for name, basis in subspaces.items()}
    first, last = next(iter(left)), "head"  # in forward order: the first edited conv ... the head
    assert left[last] < 1e-5  # strength 1 x L / L
    assert 0.5 < left[first] < 1.0  # strength 1 x 1 / L, L > 2: most of it stays
    assert sorted(left.values(), reverse=True) == list(left.values())  # less is left the deeper the layer
    with pytest.raises(InvalidInputError, match="depth_scaling 'deep' is not one of uniform, linear"):
        get_method("prunelora-deep").make_config(depth_scaling="deep")


def test_train_norms_trains_the_norms_and_biases_and_still_leaves_no_component(original, class3_splits):
    config = get_method("prunelora-deep").make_config(steps=3, lr=0.01, seed=0, train_norms=True)
    result = unlearn(original, class3_splits, "prunelora-deep", config, device="cpu", progress=False)
    frozen = unlearn(original, class3_splits, "prunelora-deep",
                     get_method("prunelora-deep").make_config(steps=3, lr=0.01, seed=0), device="cpu", progress=False)
    norms = [n for n, m in original.named_modules() if isinstance(m, nn.BatchNorm2d)]
    moved = [n for n in norms if not torch.equal(result.model.get_submodule(n).weight, original.get_submodule(n).weight)]
    assert moved and not any(not torch.equal(frozen.model.get_submodule(n).weight, original.get_submodule(n).weight)
                             for n in norms)
    assert not torch.equal(result.model.head.bias, original.head.bias)
    assert result.record.trainable_params > frozen.record.trainable_params
    for name, basis in forget_subspaces(original, class3_splits.forget, class3_splits.retain, 3).items():
        assert forget_component(result.model.get_submodule(name), basis) < 1e-5, name


@pytest.mark.parametrize("preset", ["prunelora-deep", "prunelora-deep-light"])
def test_the_deep_presets_forget_a_digits_class(original, class3_splits, preset):
    """The presets were chosen on Fashion-MNIST; they travel to digits unchanged (2 epochs of D_r)."""
    result = unlearn(original, class3_splits, preset=preset, device="cpu", progress=False)
    assert result.method == "prunelora-deep" and result.config.lr == 0.003 and result.config.strength == 1.0
    ua = 100.0 - accuracy(*predict(result.model, class3_splits.forget, device="cpu"))
    ta = accuracy(*predict(result.model, class3_splits.test_retain, device="cpu"))
    ta_before = accuracy(*predict(original, class3_splits.test_retain, device="cpu"))
    assert ua > 90.0, ua
    assert ta > ta_before - 15.0, (ta, ta_before)
