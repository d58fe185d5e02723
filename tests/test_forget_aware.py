"""Forget-aware structured pruning: a channel that fires only on the forget class is chosen first by
every forget-aware criterion (and not by the weight norm); the ViT loses heads and MLP neurons in
every block; global scope ranks channels across layers; the automatic amount reaches its target on
D_f and leaves the model as it was; pruned channels output 0 after PruneLoRA's merge; physical
removal works with every criterion; no criterion reads validation or test data."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch
from helpers import one_error_line
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from prunelora.data.generic import subset
from prunelora.errors import InvalidInputError
from prunelora.methods import unlearn
from prunelora.models import create_model
from prunelora.pruning import apply_masks, dead_channel_masks, physical_prune, plan_structured
from prunelora.pruning.criteria import (
    FORGET_AWARE,
    fit_criterion,
    forget_accuracy_at,
    smallest_forgetting_amount,
)
from prunelora.pruning.plan import _drop_global, _drop_per_layer, _Unit


class Tiny(nn.Module):
    """1x1 conv (2 -> 4) + BatchNorm + ReLU + pooling + head. Input channel 0 is lit only for the
    forget class 0, so conv channel 0 (the largest weights) fires only on it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 3)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = 3.0  # forget-only channel, largest L2 norm
            self.conv.weight[1:, 1] = torch.tensor([1.0, 1.5, 2.0])[:, None, None]
            self.head.weight.copy_(torch.tensor([[4.0, 0, 0, 0], [0, 1, 1, 1], [0, -1, 1, 0.5]]))
            self.head.bias.zero_()
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def tiny_data() -> tuple[TensorDataset, TensorDataset]:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(60, 2, 3, 3, generator=gen) * 0.1
    y = torch.arange(60) % 3
    x[y == 0, 0] += 1.0  # the forget class lights input channel 0 ...
    x[y != 0, 1] += 1.0  # ... the others input channel 1
    forget, retain = y == 0, y != 0
    return TensorDataset(x[forget], y[forget]), TensorDataset(x[retain], y[retain])


def inputs(batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", FORGET_AWARE)
def test_a_channel_that_fires_only_on_the_forget_class_is_chosen_first(name):
    model = Tiny()
    forget, retain = tiny_data()
    criterion = fit_criterion(name, model, forget, retain, num_classes=3)
    example = forget[0][0].unsqueeze(0)
    plan = plan_structured(model, 0.25, example_inputs=example, importance=criterion)
    assert [drop for _, _, drop in plan.groups] == [[0]]
    # the weight norm is blind to it: it keeps channel 0 (the largest) and drops the smallest
    assert [drop for _, _, drop in plan_structured(model, 0.25, example_inputs=example).groups] == [[1]]


def test_the_vit_loses_heads_and_mlp_neurons_in_every_block(class3_splits):
    torch.manual_seed(0)
    model = create_model("vit-tiny", 10, 1, 8, width=0.25, depth=2).eval()
    forget = subset(class3_splits.forget, range(40))
    retain = subset(class3_splits.retain, range(120))
    for name in FORGET_AWARE:
        criterion = fit_criterion(name, model, forget, retain, num_classes=10)
        plan = plan_structured(model, 0.5, types=("mha", "linear"), example_inputs=inputs(), importance=criterion)
        assert sorted(n for n, _, _ in plan.heads) == ["blocks.0.attn", "blocks.1.attn"], name
        cut = sorted(n for n in plan.kept if n.endswith("mlp.0") and len(plan.kept[n]) < model.blocks[0].mlp[0].out_features)
        assert cut == ["blocks.0.mlp.0", "blocks.1.mlp.0"], name


def test_global_scope_ranks_all_channels_together_and_keeps_one_per_group():
    units = [_Unit(["a"], torch.tensor([0.1, 5.0, 6.0])), _Unit(["b"], torch.tensor([0.2, 0.3]))]
    # 3 of 5 go, lowest first across layers, but b keeps one: 0.1 (a), 0.2 (b), then 5.0 (a)
    assert _drop_global(units, 0.6, normalise=False) == [[0, 1], [0]]
    assert _drop_per_layer(units, 0.6) == [[0, 1], [0]]
    # normalised per layer (weight norms): b's 0.2 / 0.25 = 0.8 outranks a's 5.0 / 3.7 = 1.35
    assert _drop_global(units, 0.4, normalise=True) == [[0], [0]]
    torch.manual_seed(0)
    model = create_model("resnet8", 10, 1, 8)
    layer = plan_structured(model, 0.25, example_inputs=inputs())
    glob = plan_structured(model, 0.25, example_inputs=inputs(), scope="global")
    assert sum(map(len, (d for *_, d in glob.groups))) == sum(map(len, (d for *_, d in layer.groups)))
    assert [d for *_, d in glob.groups] != [d for *_, d in layer.groups]  # other channels, same total here
    with pytest.raises(InvalidInputError, match="scope 'sideways'"):
        plan_structured(model, 0.25, example_inputs=inputs(), scope="sideways")


def test_the_automatic_amount_reaches_its_target_on_the_forget_set_and_changes_nothing():
    model = Tiny()
    forget, retain = tiny_data()
    criterion = fit_criterion("activation-ratio", model, forget, retain, num_classes=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kwargs = {"example_inputs": forget[0][0].unsqueeze(0)}
    assert forget_accuracy_at(model, criterion, forget, 0.01, **kwargs) == 100.0  # nothing pruned yet
    amount = smallest_forgetting_amount(model, criterion, forget, 10.0, 0.5, **kwargs)
    # one of 4 channels goes once round((1 - a) * 4) <= 3, i.e. a > 0.125; that one is the forget channel
    assert 0.125 < amount <= 0.25
    assert forget_accuracy_at(model, criterion, forget, amount, **kwargs) <= 10.0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


class Untouchable(Dataset):
    """A split no criterion may read: any access fails the test."""

    def __len__(self) -> int:
        raise AssertionError("a validation or test split was read")

    def __getitem__(self, index):
        raise AssertionError("a validation or test split was read")


@pytest.mark.parametrize("criterion", FORGET_AWARE)
@pytest.mark.parametrize("mode", ["mask", "physical"])
def test_no_criterion_reads_validation_or_test_data_and_pruned_channels_stay_dead(criterion, mode, class3_splits):
    splits = dataclasses.replace(class3_splits, val=Untouchable(), test_retain=Untouchable(),
                                 test_forget=Untouchable())
    torch.manual_seed(0)
    model = create_model("resnet8", 10, 1, 8)
    result = unlearn(model, splits, "prunelora", prune_criterion=criterion, prune_amount=0.2, prune_scope="global",
                     prune_forget_accuracy=50.0 if mode == "mask" else None, prune_mode=mode,
                     prune_retain_samples=200, lora_backend="weight", lora_dropout=0.0, lora_rank=2,
                     steps=2, progress=False)
    assert result.record.pruning.criterion == criterion
    assert 0 < result.record.pruning.amount <= 0.2
    outputs = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, o))
             for n, m in result.model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    result.model(inputs())
    for h in hooks:
        h.remove()
    if mode == "mask":  # every channel whose BatchNorm the masks zeroed outputs exactly 0 after the merge
        dead = {k.rsplit(".", 1)[0]: (m == 0).nonzero().flatten() for k, m in result.masks.items()
                if k.endswith(".bias") and k.rsplit(".", 1)[0] in outputs}
        assert dead and any(len(d) for d in dead.values())
        for name, channels in dead.items():
            assert torch.count_nonzero(outputs[name][:, channels]) == 0, name
    else:  # removed: the model is narrower than the original
        assert sum(p.numel() for p in result.model.parameters()) < sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("criterion", FORGET_AWARE)
def test_physical_removal_and_dead_masks_compute_the_same_function_with_every_criterion(criterion, class3_splits):
    torch.manual_seed(0)
    base = create_model("vit-tiny", 10, 1, 8, width=0.25, depth=2).eval()
    forget = subset(class3_splits.forget, range(40))
    retain = subset(class3_splits.retain, range(120))
    fitted = fit_criterion(criterion, base, forget, retain, num_classes=10)
    cut, masked = copy.deepcopy(base), base
    selection = {"types": ("mha", "linear"), "scope": "global"}
    # a criterion is fitted on the model it prunes: the copy gets its own (the same numbers)
    fitted_cut = fit_criterion(criterion, cut, forget, retain, num_classes=10)
    physical_prune(cut, 0.25, example_inputs=inputs(), importance=fitted_cut, **selection)
    params, masks, _ = dead_channel_masks(masked, 0.25, example_inputs=inputs(), importance=fitted, **selection)
    apply_masks(params, masks)
    assert sum(p.numel() for p in cut.parameters()) < sum(p.numel() for p in base.parameters())
    torch.testing.assert_close(cut(inputs()), masked(inputs()), atol=1e-5, rtol=1e-4)


def test_the_criterion_is_a_cli_option_and_a_bad_one_is_one_line(run_cli, checkpoint_dir, tmp_path):
    out = tmp_path / "bad"
    result = run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-class", "3", "--out", out,
                     "--prune-criterion", "loudest", "--no-progress")
    line = one_error_line(result, "unlearn")
    assert "'loudest'" in line and "activation-ratio" in line
    assert not out.exists()
    out = tmp_path / "ok"
    code, _, stderr = run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-class", "3", "--out", out,
                              "--preset", "prunelora-forget-aware-resnet", "--steps", "2", "--no-progress")
    assert code == 0, stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["method"]["config"]["prune_criterion"] == "activation-ratio"
    assert meta["method"]["config"]["prune_scope"] == "global"


def test_tfidf_scores_do_not_depend_on_a_layers_width():
    """Under global scope channels of layers of every width are ranked together: a layer whose
    channels all appear twice (twice as wide, the same pattern) scores each channel the same."""
    from prunelora.pruning.criteria import TfIdf

    narrow, wide = nn.Linear(2, 3), nn.Linear(2, 6)
    per_class = torch.tensor([[0.1, 1.0, 0.5], [0.1, 0.5, 1.0], [2.0, 0.1, 0.1]])  # 2 retain classes, then D_f
    criterion = TfIdf()
    criterion.stats = {narrow: per_class, wide: torch.cat([per_class, per_class], dim=1)}
    criterion.present = {narrow: torch.tensor([True, True]), wide: torch.tensor([True, True])}
    scores = criterion.channel_score(narrow)
    assert torch.allclose(criterion.channel_score(wide), torch.cat([scores, scores]))
    assert scores.argmax() == 0  # the channel that fires on D_f alone
