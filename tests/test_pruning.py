"""Mask pruning: structured Ln and unstructured magnitude, layer selection, kept masks, sparsity
report and BatchNorm recalibration. Table-driven over a tiny ResNet (convs) and a tiny ViT
(MultiheadAttention's packed in_proj and the linears)."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from helpers import tiny_resnet, tiny_vit, weight_of, zero_channels
from torch import nn
from torch.nn.utils import parametrize

from prunelora.errors import InvalidInputError
from prunelora.pruning import (
    LnImportance,
    bake_masks,
    multiply_masks,
    prune,
    recalibrate_batchnorm,
    select_params,
    sparsity_report,
    structured_masks,
    unstructured_masks,
)
from prunelora.training import TrainConfig, fit

PRESET_VIT_PATTERN = r"blocks\.{last}\.(attn|mlp)"  # the paper's ViT preset (configs/prunelora-vit.yaml)


# the pruning tests' ViT has 3 blocks
MODELS = {"resnet": (tiny_resnet, ("conv",)), "vit": (functools.partial(tiny_vit, depth=3), ("mha", "linear"))}
EXAMPLE = torch.zeros(1, 1, 8, 8)  # one input, for the trace dead-channel pruning takes
WEIGHTS_ONLY = {"targets": "weights-only"}  # the paper's literal per-layer weight masks (the ablation)


def any_parametrized(model: nn.Module) -> bool:
    return any(parametrize.is_parametrized(m) for m in model.modules())


# --------------------------------------------------------------------------- structured Ln


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("norm", [1, 2])
@pytest.mark.parametrize("arch", list(MODELS))
def test_structured_zeroes_round_amount_of_output_channels(arch, norm, amount):
    make, types = MODELS[arch]
    model = make()
    before = copy.deepcopy(model)
    masks = prune(model, amount, structured=True, norm=norm, types=types, **WEIGHTS_ONLY)
    selected = [p.key for p in select_params(before, types)]
    assert sorted(masks) == sorted(selected)
    for key in selected:
        original, pruned = weight_of(before, key), weight_of(model, key)
        channels = original.shape[0]
        expected = int(round(amount * channels))
        assert zero_channels(pruned) == expected, key
        # the fraction of all-zero channels is the amount, up to rounding to whole channels
        assert abs(zero_channels(pruned) / channels - amount) <= 0.5 / channels
        dropped = (pruned.flatten(1) == 0).all(dim=1)
        # the dropped channels are those of lowest Ln norm; kept channels are untouched
        norms = original.flatten(1).norm(p=norm, dim=1)
        assert norms[dropped].max() <= norms[~dropped].min(), key
        assert torch.equal(pruned[~dropped], original[~dropped])
    # everything that was not selected is untouched, the head above all
    pruned_keys = set(selected)
    for name, tensor in before.state_dict().items():
        if name not in pruned_keys and "parametrizations" not in name:
            assert torch.equal(model.state_dict()[name], tensor), name


@pytest.mark.parametrize("arch", list(MODELS))
def test_sparsity_report_of_structured_pruning(arch):
    make, types = MODELS[arch]
    model = make()
    masks = prune(model, 0.5, types=types, bake=True, **WEIGHTS_ONLY)
    report = sparsity_report(model, masks)
    assert set(report["layers"]) == set(masks)
    total = zeros = 0
    for key, entry in report["layers"].items():
        w = weight_of(model, key)
        assert entry["params"] == w.numel()
        assert entry["zero_channels"] == pytest.approx(0.5)  # every pruned width is even
        assert entry["zero_fraction"] == pytest.approx(0.5)
    assert report["pruned_layers"] == pytest.approx(0.5)
    for p in model.parameters():
        if p.ndim > 1:
            total += p.numel()
            zeros += int((p == 0).sum())
    assert report["overall"] == pytest.approx(zeros / total)
    assert 0.0 < report["overall"] < 0.5  # the head, norms and embeddings stay dense

    bare = sparsity_report(model)
    assert bare["layers"] == {} and bare["pruned_layers"] == 0.0
    assert bare["overall"] == pytest.approx(report["overall"])


def test_sparsity_report_overall_while_masks_are_applied():
    # With the masks still attached (bake=False) the model's weights read as masked, so the
    # overall figure must match the baked model's. src bug: `overall` iterates model.parameters(),
    # which yields the unmasked `parametrizations.weight.original`, and reports 0.0.
    model = tiny_resnet()
    masks = prune(model, 0.5, bake=False, example_inputs=EXAMPLE)
    live = sparsity_report(model, masks)
    bake_masks(model)
    baked = sparsity_report(model, masks)
    assert live["pruned_layers"] == pytest.approx(baked["pruned_layers"])
    assert live["overall"] == pytest.approx(baked["overall"]) and live["overall"] > 0.4


def test_structured_importance_is_a_callable():
    # Torch-Pruning style: the criterion is passed in. Rank by minus the L2 norm -> the
    # *largest* channels go, which proves the callable is the one used.
    model = tiny_resnet()
    params = select_params(model, ("conv",), pattern=r"^conv1$")
    weight = params[0].module.weight.detach().clone()
    masks = structured_masks(params, 0.5, importance=lambda w: -LnImportance(2)(w))
    dropped = (masks["conv1.weight"].flatten(1) == 0).all(dim=1)
    norms = weight.flatten(1).norm(dim=1)
    assert norms[dropped].min() >= norms[~dropped].max()


def test_ln_norm_must_be_1_or_2():
    with pytest.raises(InvalidInputError, match="prune_norm 3 is not 1 or 2"):
        LnImportance(3)


# --------------------------------------------------------------------------- masks during training


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("arch", list(MODELS))
def test_masks_stay_applied_while_training(arch, optimizer, small_train):
    make, types = MODELS[arch]
    model = make()
    masks = prune(model, 0.5, types=types, bake=False, example_inputs=EXAMPLE)  # weights, biases, norms
    before = {k: weight_of(model, k).clone() for k in masks}
    seen_nonzero: list[str] = []

    def check(m: nn.Module) -> None:
        for key, mask in masks.items():
            if (weight_of(m, key)[mask == 0] != 0).any():
                seen_nonzero.append(key)

    # momentum and weight decay: the paths by which the reference code regrew pruned weights
    fit(model, small_train, TrainConfig(steps=4, optimizer=optimizer, lr=0.05, momentum=0.9, weight_decay=0.01),
        after_step=check, progress=False)
    assert seen_nonzero == []
    bake_masks(model)
    assert not any_parametrized(model)
    for key, mask in masks.items():
        w = weight_of(model, key)
        assert (w[mask == 0] == 0).all(), key
        assert not torch.equal(w, before[key]), f"{key} was not trained"


def test_without_kept_masks_fine_tuning_regrows_the_pruned_weights(small_train):
    # The reference code's defect, shown: bake first (masks removed), then fine-tune -> the zeros
    # fill in. This is why prune-finetune keeps the masks attached while training.
    model = tiny_resnet()
    masks = prune(model, 0.5, bake=True, **WEIGHTS_ONLY)
    fit(model, small_train, TrainConfig(steps=2, optimizer="sgd", lr=0.05), progress=False)
    regrown = [k for k, mask in masks.items() if (weight_of(model, k)[mask == 0] != 0).any()]
    assert regrown


def test_bake_leaves_a_plain_model_with_the_original_keys():
    model = tiny_vit(depth=3)
    keys = set(model.state_dict())
    prune(model, 0.5, types=("mha", "linear"), bake=False, example_inputs=EXAMPLE)
    assert any_parametrized(model)
    assert set(model.state_dict()) != keys
    bake_masks(model)
    assert not any_parametrized(model)
    assert set(model.state_dict()) == keys
    assert isinstance(model.blocks[0].attn.in_proj_weight, nn.Parameter)


def test_multiply_masks_restores_the_zeros():
    model = tiny_resnet()
    masks = prune(model, 0.5, bake=True, example_inputs=EXAMPLE)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # refill everything, as a dense merge would
    multiply_masks(model, masks)
    for key, mask in masks.items():
        assert zero_channels(weight_of(model, key)) == zero_channels(mask)


# --------------------------------------------------------------------------- which layers


def _names(params) -> list[str]:
    return [p.name for p in params]


def test_selection_by_type_resnet():
    model = tiny_resnet()
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    params = select_params(model, ("conv",))
    assert _names(params) == convs
    assert all(p.param == "weight" for p in params)


def test_selection_by_type_vit():
    model = tiny_vit(depth=3)
    mha = select_params(model, ("mha",))
    assert _names(mha) == [f"blocks.{i}.attn" for i in range(3)]
    assert all(p.param == "in_proj_weight" for p in mha)
    linear = _names(select_params(model, ("linear",)))
    assert linear == [f"blocks.{i}.{s}" for i in range(3) for s in ("attn.out_proj", "mlp.0", "mlp.3")]
    assert _names(select_params(model, ("conv",))) == ["patch_embed"]


@pytest.mark.parametrize("arch", list(MODELS))
def test_head_is_never_selected_unless_asked(arch):
    make, _ = MODELS[arch]
    model = make()
    for types in (("conv",), ("linear",), ("mha",), ("conv", "linear", "mha")):
        try:
            names = _names(select_params(model, types))
        except InvalidInputError:
            continue  # e.g. resnet has no linear but its head
        assert "head" not in names
    assert "head" in _names(select_params(model, ("linear",), include_head=True))


def test_resnet_head_alone_is_refused_and_pruning_it_deletes_classes():
    model = tiny_resnet()
    with pytest.raises(InvalidInputError, match="head is excluded"):
        select_params(model, ("linear",))
    # With include_head, structured dim-0 pruning removes whole class rows: the reference defect.
    masks = prune(model, 0.3, types=("linear",), include_head=True, bake=True, **WEIGHTS_ONLY)
    assert list(masks) == ["head.weight"]
    assert zero_channels(model.head.weight) == 3  # 3 of 10 classes can no longer be scored


def test_selection_by_pattern():
    model = tiny_resnet()
    names = _names(select_params(model, ("conv",), pattern=r"layers\.1\."))
    assert names and all(n.startswith("layers.1.") for n in names)
    assert len(names) < len(select_params(model, ("conv",)))


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_last_resolves_to_the_last_vit_block(depth):
    model = tiny_vit(depth=depth)
    last = depth - 1
    assert _names(select_params(model, ("mha",), pattern=r"blocks\.{last}\.attn$")) == [f"blocks.{last}.attn"]
    params = select_params(model, ("mha", "linear"), pattern=PRESET_VIT_PATTERN)
    assert sorted(p.key for p in params) == sorted([
        f"blocks.{last}.attn.in_proj_weight", f"blocks.{last}.attn.out_proj.weight",
        f"blocks.{last}.mlp.0.weight", f"blocks.{last}.mlp.3.weight",
    ])


@pytest.mark.parametrize("pattern", ["nomatch", r"blocks\.{last}", r"layers\.9"])
def test_pattern_matching_no_layer_is_refused(pattern):
    model = tiny_resnet()  # has no `blocks`: `{last}` finds nothing
    with pytest.raises(InvalidInputError, match="matches pattern"):
        select_params(model, ("conv",), pattern=pattern)
    with pytest.raises(InvalidInputError):
        prune(model, 0.5, pattern=pattern, example_inputs=EXAMPLE)
    assert not any_parametrized(model)


def test_bad_regex_and_unknown_type_are_refused():
    model = tiny_resnet()
    with pytest.raises(InvalidInputError, match="regular expression"):
        select_params(model, ("conv",), pattern="layers(")
    with pytest.raises(InvalidInputError, match="'bogus'"):
        select_params(model, ("bogus",))


@pytest.mark.parametrize("structured", [True, False])
@pytest.mark.parametrize("amount", [0.0, 1.0, -0.1, 1.5])
def test_amount_outside_open_unit_interval_is_refused(amount, structured):
    model = tiny_resnet()
    state = copy.deepcopy(model.state_dict())
    with pytest.raises(InvalidInputError, match=str(amount)):
        prune(model, amount, structured=structured, example_inputs=EXAMPLE)
    assert not any_parametrized(model)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


# --------------------------------------------------------------------------- unstructured


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("arch", list(MODELS))
def test_unstructured_layerwise_zeroes_the_fraction_in_every_layer(arch, amount):
    make, types = MODELS[arch]
    model = make()
    before = copy.deepcopy(model)
    masks = prune(model, amount, structured=False, scope="layer", types=types, bake=True)
    for key in masks:
        original, pruned = weight_of(before, key), weight_of(model, key)
        assert int((pruned == 0).sum()) == int(round(amount * pruned.numel())), key
        dropped = pruned == 0
        assert original.abs()[dropped].max() <= original.abs()[~dropped].min()


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.7])
def test_unstructured_global_zeroes_the_fraction_overall(amount):
    model = tiny_resnet()
    before = copy.deepcopy(model)
    masks = prune(model, amount, structured=False, scope="global", bake=True)
    total = sum(weight_of(model, k).numel() for k in masks)
    zeros = sum(int((weight_of(model, k) == 0).sum()) for k in masks)
    assert zeros == int(round(amount * total))
    dropped = torch.cat([(weight_of(model, k) == 0).flatten() for k in masks])
    magnitudes = torch.cat([weight_of(before, k).abs().flatten() for k in masks])
    assert magnitudes[dropped].max() <= magnitudes[~dropped].min()
    # one threshold for all layers: layers of different scales lose different fractions
    fractions = {round(float((weight_of(model, k) == 0).float().mean()), 3) for k in masks}
    assert len(fractions) > 1
    report = sparsity_report(model, masks)
    assert report["pruned_layers"] == pytest.approx(zeros / total)


def test_unstructured_unknown_scope_is_refused():
    model = tiny_resnet()
    with pytest.raises(InvalidInputError, match="'everywhere'"):
        unstructured_masks(select_params(model), 0.5, scope="everywhere")


# --------------------------------------------------------------------------- BatchNorm


def test_recalibrate_batchnorm_recomputes_stats_and_restores_momentum(small_train):
    model = tiny_resnet()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    norms[0].momentum = 0.3
    norms[1].momentum = None
    prune(model, 0.5, bake=True, example_inputs=EXAMPLE)
    model.eval()
    stats = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    momenta = [m.momentum for m in norms]
    params = copy.deepcopy(dict(model.named_parameters()))

    assert recalibrate_batchnorm(model, small_train, batch_size=64) == len(norms)

    for m, (mean, var) in zip(norms, stats, strict=True):
        assert not torch.equal(m.running_mean, mean)
        assert not torch.equal(m.running_var, var)
    assert [m.momentum for m in norms] == momenta
    assert not model.training  # the mode it came in with
    for name, p in model.named_parameters():
        assert torch.equal(p, params[name]), name


def test_recalibrate_batchnorm_is_the_average_over_the_data(small_train):
    # One batch holding the whole set: the running stats are exactly its mean and unbiased var.
    model = nn.Sequential(nn.BatchNorm2d(1)).train()
    assert recalibrate_batchnorm(model, small_train, batch_size=len(small_train)) == 1
    x = small_train[list(range(len(small_train)))][0]
    bn = model[0]
    torch.testing.assert_close(bn.running_mean, x.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(bn.running_var, x.var(dim=(0, 2, 3), unbiased=True))
    assert model.training
    assert bn.momentum == 0.1


def test_recalibrate_batchnorm_max_batches_and_no_batchnorm(small_train):
    model = tiny_resnet()
    recalibrate_batchnorm(model, small_train, batch_size=32, max_batches=2)
    assert all(int(m.num_batches_tracked) == 2 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert recalibrate_batchnorm(tiny_vit(depth=3), small_train) == 0
