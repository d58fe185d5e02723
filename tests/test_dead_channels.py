"""A structurally pruned channel is dead: it outputs exactly 0 in training and evaluation, after
prune-finetune's training, after PruneLoRA's merge and in the saved checkpoint; masked and physical
pruning choose the same channels and compute the same function; the paper's literal weights-only
masks stay available for the ablation (and leave the channel outputting a constant)."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import one_error_line
from torch import nn

from prunelora.checkpoint import load_checkpoint
from prunelora.errors import InvalidInputError
from prunelora.methods import unlearn
from prunelora.models import create_model
from prunelora.pruning import physical_prune, prune

VIT_PRESET = {"types": ("mha", "linear"), "pattern": r"blocks\.{last}\.(attn|mlp)"}  # configs/prunelora-vit.yaml
CASES = {  # name -> (model kwargs, pruning selection)
    "resnet8": ({}, {"types": ("conv",)}),
    "resnet20": ({"width": 0.5}, {"types": ("conv",)}),
    "vit-tiny": ({"width": 0.25, "depth": 2}, {"types": ("mha", "linear")}),
    "vit-tiny-preset": ({"width": 0.25, "depth": 2}, VIT_PRESET),
}


def make(case: str, seed: int = 0) -> nn.Module:
    """A registry model whose biases, BatchNorm affine parameters and statistics are all nonzero
    (freshly initialised ones are 0 and 1, which would hide a surviving bias)."""
    kwargs, _ = CASES[case]
    torch.manual_seed(seed)
    model = create_model(case.removesuffix("-preset"), 10, 1, 8, **kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-1.0, 1.0)
                m.running_mean.uniform_(-1.0, 1.0)
                m.running_var.uniform_(0.5, 2.0)
            elif isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.uniform_(-1.0, 1.0)
            elif isinstance(m, nn.MultiheadAttention):
                m.in_proj_bias.uniform_(-1.0, 1.0)
    return model


def inputs(batch: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def dead_rows(mask: torch.Tensor) -> torch.Tensor:
    """Output channels a weight mask zeroes whole."""
    return (mask.reshape(len(mask), -1) == 0).all(dim=1).nonzero().flatten()


def bn_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The output of every BatchNorm, by name, for input `x`."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out.detach()))
             for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def assert_dead(model: nn.Module, masks: dict[str, torch.Tensor], x: torch.Tensor) -> int:
    """Every BatchNorm channel whose weight is masked outputs exactly 0, in train and eval mode.
    Returns the number of dead channels checked."""
    checked = 0
    for mode in ("train", "eval"):
        getattr(model, mode)()
        outputs = bn_outputs(model, x)
        for key, mask in masks.items():
            module_name, param = key.rsplit(".", 1)
            if module_name not in outputs or param != "weight":
                continue
            dead = (mask == 0).nonzero().flatten()
            assert len(dead) > 0
            assert torch.equal(outputs[module_name][:, dead], torch.zeros_like(outputs[module_name][:, dead])), \
                f"{module_name} ({mode}): a pruned channel is not 0"
            checked += len(dead)
    return checked


# --------------------------------------------------------------------------- dead after pruning


def test_a_pruned_resnet_channel_outputs_zero_in_train_and_eval_mode():
    model = make("resnet8")
    x = inputs()
    masks = prune(model, 0.5, types=("conv",), example_inputs=x[:1])
    # the following BatchNorm of every pruned conv is masked too, on the same channels
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            bn = name.replace("conv", "bn") if "conv" in name else name[:-1] + "1"  # shortcut.0 -> shortcut.1
            rows = dead_rows(masks[f"{name}.weight"])
            assert torch.equal((masks[f"{bn}.weight"] == 0).nonzero().flatten(), rows), name
            assert torch.equal((masks[f"{bn}.bias"] == 0).nonzero().flatten(), rows), name
    assert assert_dead(model, masks, x) > 0
    # coupled residual channels die together: a whole block output channel is 0 after the sum
    block = model.layers[2][0]
    seen = {}
    block.register_forward_hook(lambda _m, _i, out: seen.setdefault("out", out.detach()))
    model.train()
    with torch.no_grad():
        model(x)
    dead = dead_rows(masks["layers.2.0.conv2.weight"])
    assert torch.equal(dead, dead_rows(masks["layers.2.0.shortcut.0.weight"]))
    assert torch.equal(seen["out"][:, dead], torch.zeros_like(seen["out"][:, dead]))


def test_a_pruned_vit_hidden_unit_outputs_zero():
    model = make("vit-tiny")
    x = inputs()
    masks = prune(model, 0.5, **VIT_PRESET, example_inputs=x[:1])
    assert set(masks) == {"blocks.1.attn.in_proj_weight", "blocks.1.attn.in_proj_bias",
                          "blocks.1.mlp.0.weight", "blocks.1.mlp.0.bias"}
    seen = {}
    model.blocks[1].mlp[1].register_forward_hook(lambda _m, _i, out: seen.setdefault("gelu", out.detach()))
    with torch.no_grad():
        model.train()(x)
    dead = dead_rows(masks["blocks.1.mlp.0.weight"])
    assert len(dead) == model.blocks[1].mlp[0].out_features // 2
    assert torch.equal(seen["gelu"][..., dead], torch.zeros_like(seen["gelu"][..., dead]))
    # a pruned head: its q, k and v rows and biases are all masked
    in_proj = masks["blocks.1.attn.in_proj_weight"]
    assert torch.equal(dead_rows(in_proj), (masks["blocks.1.attn.in_proj_bias"] == 0).nonzero().flatten())
    head_dim, dim = model.blocks[1].attn.head_dim, model.blocks[1].attn.embed_dim
    q, k, v = dead_rows(in_proj).split(len(dead_rows(in_proj)) // 3)
    assert torch.equal(k - dim, q) and torch.equal(v - 2 * dim, q) and len(q) % head_dim == 0


# --------------------------------------------------------------------------- masked = physical


@pytest.mark.parametrize("case", list(CASES))
def test_masked_and_physical_pruning_compute_the_same_function(case):
    model = make(case)
    x = inputs(8)
    masked, cut = copy.deepcopy(model), copy.deepcopy(model)
    _, selection = CASES[case]
    prune(masked, 0.5, **selection, example_inputs=x[:1])
    physical_prune(cut, 0.5, **selection, example_inputs=x[:1])
    assert sum(p.numel() for p in cut.parameters()) < sum(p.numel() for p in model.parameters())
    for mode in ("eval", "train"):
        with torch.no_grad():
            torch.testing.assert_close(getattr(masked, mode)()(x), getattr(cut, mode)()(x), rtol=0, atol=1e-5)
    # and the paper's per-layer weight masks are a different model
    literal = copy.deepcopy(model)
    prune(literal, 0.5, **selection, targets="weights-only")
    with torch.no_grad():
        assert (literal.eval()(x) - cut.eval()(x)).abs().max() > 1e-3


# --------------------------------------------------------------------------- the ablation


def test_weights_only_masks_leave_bias_and_batchnorm_so_the_channel_outputs_a_constant():
    model = make("resnet8")
    before = copy.deepcopy(model)
    x = inputs()
    masks = prune(model, 0.5, types=("conv",), targets="weights-only")
    assert all(key.endswith(".weight") and mask.ndim == 4 for key, mask in masks.items())
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            original = before.get_submodule(name)
            assert torch.equal(m.weight, original.weight) and torch.equal(m.bias, original.bias), name
    out = bn_outputs(model.eval(), x)["layers.0.0.bn1"]
    dead = dead_rows(masks["layers.0.0.conv1.weight"])
    pruned = out[:, dead]
    assert torch.equal(pruned, pruned[:1, :, :1, :1].expand_as(pruned))  # the same value whatever the input
    assert (pruned != 0).any()  # ... and not zero: the channel is still alive


# --------------------------------------------------------------------------- through the methods


def _masks_after(result) -> dict[str, torch.Tensor]:
    masks = result.masks
    assert any(k.endswith(".bias") for k in masks)  # biases and norms are masked, not weights alone
    return masks


@pytest.mark.parametrize("recipe", [dict(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4),
                                    dict(optimizer="adamw", lr=1e-2, weight_decay=0.05)])
def test_prune_finetune_never_trains_a_dead_channel(recipe, trained, class3_splits):
    result = unlearn(trained.model, class3_splits, "prune-finetune", progress=False, steps=3, **recipe)
    masks = _masks_after(result)
    for key, mask in masks.items():
        module_name, param = key.rsplit(".", 1)
        tensor = getattr(result.model.get_submodule(module_name), param).detach()
        assert torch.equal(tensor[mask == 0], torch.zeros_like(tensor[mask == 0])), key
    x = class3_splits.retain[list(range(16))][0]
    assert assert_dead(result.model, masks, x) > 0


def test_prune_finetune_on_a_vit_keeps_pruned_biases_zero(class3_splits):
    model = make("vit-tiny")
    result = unlearn(model, class3_splits, "prune-finetune", progress=False, steps=3, optimizer="adamw", lr=1e-2,
                     prune_types=VIT_PRESET["types"], prune_pattern=VIT_PRESET["pattern"])
    masks = _masks_after(result)
    for key in ("blocks.1.mlp.0.bias", "blocks.1.attn.in_proj_bias"):
        module_name, param = key.rsplit(".", 1)
        tensor = getattr(result.model.get_submodule(module_name), param).detach()
        kept = masks[key] != 0
        assert (tensor[~kept] == 0).all() and not torch.equal(tensor[kept], getattr(
            model.get_submodule(module_name), param).detach()[kept]), key  # kept ones trained


@pytest.mark.parametrize("backend", ["peft", "weight"])
def test_prunelora_merge_keeps_the_channels_dead(backend, trained, class3_splits):
    options = {"lora_backend": backend, "lora_dropout": 0.0} if backend == "weight" else {}
    result = unlearn(trained.model, class3_splits, "prunelora", progress=False, steps=3, **options)
    masks = _masks_after(result)
    x = class3_splits.retain[list(range(16))][0]
    assert assert_dead(result.model, masks, x) > 0


def test_saved_model_keeps_the_channels_dead_and_the_cli_offers_the_ablation(run_cli, checkpoint_dir, tmp_path):
    alive = {}
    for targets in ("dead", "weights-only"):
        out = tmp_path / targets
        code, _, stderr = run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-class", "3", "--out", out,
                                  "--no-progress", "--method", "prune-finetune", "--steps", "2",
                                  "--prune-targets", targets)
        assert code == 0, stderr
        model, meta = load_checkpoint(out)
        assert meta["method"]["config"]["prune_targets"] == targets
        # pruned channels: the convs' all-zero weight rows; their BatchNorm's output on real data
        x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        outputs = bn_outputs(model.eval(), x)
        conv, bn = model.layers[0][0].conv1, "layers.0.0.bn1"
        dead = (conv.weight.detach().flatten(1) == 0).all(dim=1)
        assert int(dead.sum()) == conv.out_channels // 2
        alive[targets] = (outputs[bn][:, dead] != 0).any().item()
    assert alive == {"dead": False, "weights-only": True}


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("options", "match"), [
    ({"prune_targets": "bias"}, "prune_targets 'bias' is not one of dead, weights-only"),
    ({"prune_targets": "weights-only", "prune_mode": "physical"}, "needs prune_mode 'mask'"),
    ({"prune_head": True}, "prune_head .* needs prune_targets 'weights-only'"),
])
def test_prune_targets_are_validated(options, match, trained, class3_splits):
    with pytest.raises(InvalidInputError, match=match):
        unlearn(trained.model, class3_splits, "prune-finetune", progress=False, **options)


def test_dead_pruning_needs_an_example_input_and_never_the_head():
    with pytest.raises(InvalidInputError, match="example_inputs"):
        prune(make("resnet8"), 0.5)
    with pytest.raises(InvalidInputError, match="head"):
        prune(make("resnet8"), 0.5, types=("linear",), include_head=True, example_inputs=inputs(1))
    with pytest.raises(InvalidInputError, match="'all'"):
        prune(make("resnet8"), 0.5, targets="all", example_inputs=inputs(1))


def test_cli_refuses_an_unknown_target_and_documents_the_flag(run_cli, checkpoint_dir, tmp_path):
    line = one_error_line(run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-class", "3", "--out",
                                  tmp_path / "x", "--no-progress", "--prune-targets", "bias"), "unlearn")
    assert "prune_targets 'bias'" in line
    assert not (tmp_path / "x").exists()
    code, help_text, _ = run_cli("unlearn", "--help")
    flat = " ".join(help_text.split())  # argparse wraps the text
    assert code == 0 and "--prune-targets" in flat and "the paper's literal" in flat
