"""LoRA through peft: what trains, the exact sparsity-preserving merge, attention adapters that
really run, target selection and adapter export. Table-driven over a tiny ResNet (conv LoRA) and a
tiny ViT (LoRA on the MultiheadAttention module)."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import stays_pruned, tiny_resnet, tiny_vit, weight_of, zero_channels
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils import parametrize

from prunelora.adapters import (
    AdapterSnapshot,
    LoraSettings,
    add_lora,
    lora_targets,
    merge_lora,
    save_adapter,
)
from prunelora.errors import InvalidInputError
from prunelora.pruning import prune
from prunelora.training import TrainConfig, fit

VIT_LAST_ATTN = r"blocks\.{last}\.attn$"
VIT_PRESET_PRUNE = r"blocks\.{last}\.(attn|mlp)"  # configs/prunelora-vit.yaml


# (model factory, LoRA settings, pruning kwargs) per case; prune=None is plain LoRA. Attention is
# adapted in the weight form whatever the backend, and takes no dropout.
CASES = {
    "resnet-lora": (tiny_resnet, dict(types=("conv",), dropout=0.1), None),
    "resnet-prunelora": (tiny_resnet, dict(types=("conv",), dropout=0.1), dict(types=("conv",))),
    "vit-lora": (tiny_vit, dict(types=("mha",), pattern=VIT_LAST_ATTN, dropout=0.0), None),
    "vit-prunelora": (tiny_vit, dict(types=("mha",), pattern=VIT_LAST_ATTN, dropout=0.0),
                      dict(types=("mha",), pattern=VIT_LAST_ATTN)),
}

STEPS = TrainConfig(steps=4, batch_size=64, optimizer="adam", lr=1e-2, seed=0)
EXAMPLE = torch.zeros(1, 1, 8, 8)  # one input, for the trace dead-channel pruning takes


def adapted(case: str, small_train, keep_sparsity: bool = True, prune_kwargs=None, steps=STEPS):
    """(peft model after a few training steps, masks or None)."""
    make, lora_kwargs, default_prune = CASES[case]
    prune_kwargs = default_prune if prune_kwargs is None else prune_kwargs
    model = make()
    masks = prune(model, 0.5, bake=True, example_inputs=EXAMPLE, **prune_kwargs) if prune_kwargs else None
    peft_model = add_lora(model, LoraSettings(rank=4, alpha=8, **lora_kwargs), masks=masks,
                          keep_sparsity=keep_sparsity)
    fit(peft_model, small_train, steps, progress=False)
    return peft_model, masks


def is_adapter_or_head(name: str) -> bool:
    # peft: adapters and the head's trainable copy (modules_to_save); weight form: lora_A/B and head.*
    return "lora_" in name or ".modules_to_save." in name or name.startswith("head.")


# --------------------------------------------------------------------------- (a) what trains


@pytest.mark.parametrize("case", list(CASES))
def test_only_adapters_and_head_change_during_training(case, small_train):
    make, lora_kwargs, prune_kwargs = CASES[case]
    model = make()
    masks = prune(model, 0.5, bake=True, example_inputs=EXAMPLE, **prune_kwargs) if prune_kwargs else None
    peft_model = add_lora(model, LoraSettings(rank=4, alpha=8, **lora_kwargs), masks=masks)
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters()}
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all(is_adapter_or_head(n) for n in trainable)
    assert any("lora_" not in n for n in trainable)  # the head trains

    fit(peft_model, small_train, STEPS, progress=False)

    after = {n: p.detach() for n, p in peft_model.named_parameters()}
    assert after.keys() == before.keys()
    for name, old in before.items():
        new = after[name]
        if is_adapter_or_head(name):
            if "original_module" not in name:  # the head's frozen copy stays put
                assert not torch.equal(new, old), f"{name} did not train"
        elif name.endswith(("in_proj_weight", "out_proj.base_layer.weight")):
            # peft runs an MHA adapter by adding B·A to these weights before the forward and
            # subtracting it after: (w + d) - d is w up to float rounding, never trained.
            torch.testing.assert_close(new, old, rtol=0, atol=1e-6)
        else:
            assert torch.equal(new, old), f"base weight {name} changed"
    for name, p in peft_model.named_parameters():
        if "original_module" in name:
            assert torch.equal(p, before[name])


# --------------------------------------------------------------------------- (b) exact merge


def _merge_matches(peft_model, masks, batch, keep_sparsity=True) -> tuple[float, nn.Module]:
    peft_model.eval()
    with torch.no_grad():
        expected = peft_model(batch)
    merged = merge_lora(peft_model, masks=masks, keep_sparsity=keep_sparsity).eval()
    with torch.no_grad():
        got = merged(batch)
    return (got - expected).abs().max().item(), merged


def _assert_plain(model: nn.Module) -> None:
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert not any(type(m).__module__.startswith("peft") for m in model.modules())


@pytest.mark.parametrize("case", list(CASES))
def test_merge_is_exact_and_keeps_the_zeros(case, small_train, batch):
    reference = CASES[case][0]()
    peft_model, masks = adapted(case, small_train)
    diff, merged = _merge_matches(peft_model, masks, batch)
    assert diff <= 1e-5
    _assert_plain(merged)
    assert type(merged) is type(reference)
    assert set(merged.state_dict()) == set(reference.state_dict())
    for key, mask in (masks or {}).items():  # weight rows, biases and norm weights of dead channels
        assert stays_pruned(weight_of(merged, key), mask), key
        assert int((mask.flatten() == 0).sum()) == round(0.5 * mask.numel())


def test_merge_is_exact_with_the_vit_preset_pruning(small_train, batch):
    # The paper's ViT preset: prune the last block's attention and MLP (dead: whole heads and
    # hidden units), LoRA on that block's MultiheadAttention (which adapts both projections).
    peft_model, masks = adapted("vit-prunelora", small_train,
                                prune_kwargs=dict(types=("mha", "linear"), pattern=VIT_PRESET_PRUNE))
    diff, merged = _merge_matches(peft_model, masks, batch)
    for key, mask in masks.items():
        assert stays_pruned(weight_of(merged, key), mask), key
    assert diff <= 1e-5


@pytest.mark.parametrize("case", ["resnet-prunelora", "vit-prunelora"])
def test_dense_merge_is_exact_but_refills_the_pruned_channels(case, small_train, batch):
    # keep_sparsity=False is the reference code's merge: the same function, but B·A is dense.
    # With the reference's weights-only masks: a dead channel (zero BN) would get no gradient.
    prune_kwargs = {**CASES[case][2], "targets": "weights-only"}
    peft_model, masks = adapted(case, small_train, keep_sparsity=False, prune_kwargs=prune_kwargs)
    diff, merged = _merge_matches(peft_model, masks, batch, keep_sparsity=False)
    assert diff <= 1e-5
    refilled = [k for k, mask in masks.items() if zero_channels(weight_of(merged, k)) < zero_channels(mask)]
    # Not necessarily every layer: in an untrained ResNet a pruned channel feeding BN (beta = 0)
    # then ReLU gets no gradient, so its B rows stay zero. test_methods checks a trained model.
    assert refilled


# --------------------------------------------------------------------------- (d) attention LoRA


def _attention_outputs(trained_attn: nn.Module, original_attn: nn.Module, dim: int):
    torch.manual_seed(1)
    h = torch.randn(4, 17, dim)
    with torch.no_grad():
        return trained_attn(h, h, h, need_weights=False)[0], original_attn(h, h, h, need_weights=False)[0]


def test_lora_on_the_attention_module_changes_its_output(small_train):
    model = tiny_vit()
    original = copy.deepcopy(model.blocks[-1].attn).eval()
    dim = model.blocks[-1].norm1.normalized_shape[0]
    adapted_model = add_lora(model, LoraSettings(rank=4, alpha=8, dropout=0.0, types=("mha",), pattern=VIT_LAST_ATTN))
    fit(adapted_model, small_train, STEPS, progress=False)
    adapted_model.eval()
    attn = adapted_model.blocks[-1].attn
    # both projections carry the update: the packed q/k/v and the out projection MHA reads directly
    assert parametrize.is_parametrized(attn, "in_proj_weight") and parametrize.is_parametrized(attn.out_proj)
    trained, reference = _attention_outputs(attn, original, dim)
    assert not torch.allclose(trained, reference, atol=1e-4)
    # and the merged plain MultiheadAttention computes what the adapted one did
    merged_attn = merge_lora(adapted_model).blocks[-1].attn.eval()
    assert isinstance(merged_attn, nn.MultiheadAttention)
    torch.testing.assert_close(_attention_outputs(merged_attn, original, dim)[0], trained, rtol=0, atol=1e-5)


@pytest.mark.parametrize("prune_first", [False, True])
def test_attention_lora_is_the_same_function_in_both_backends(prune_first, batch):
    """Both backends compute W + (alpha/r)·B@A on attention (peft 0.21 itself would add the out_proj
    update twice and ignore dropout), and the merged model is exactly W + (alpha/r)·B@A."""
    def build(backend: str):
        model = tiny_vit()
        masks = prune(model, 0.5, bake=True, types=("mha",), pattern=VIT_LAST_ATTN, example_inputs=EXAMPLE) if prune_first else None
        return add_lora(model, LoraSettings(rank=4, alpha=8, dropout=0.0, types=("mha",), pattern=VIT_LAST_ATTN,
                                            backend=backend), masks=masks), masks

    (via_peft, masks), (via_weight, _) = build("peft"), build("weight")
    torch.manual_seed(3)
    for model in (via_peft, via_weight):  # the same nonzero update in both
        for name, p in model.named_parameters():
            if "lora_" in name:
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))))
    via_peft.eval(), via_weight.eval()
    with torch.no_grad():
        torch.testing.assert_close(via_peft(batch), via_weight(batch), rtol=0, atol=1e-5)
        expected = via_peft(batch)
    attn = via_peft.blocks[-1].attn
    deltas = {}
    for param, owner in (("in_proj_weight", attn), ("weight", attn.out_proj)):
        lora = owner.parametrizations[param][-1]
        deltas[param] = 2.0 * (lora.masked_B() @ lora.lora_A).detach()  # alpha / r = 8 / 4
        base = owner.parametrizations[param].original.detach()
        if masks:
            base = base * masks.get("blocks.1.attn.in_proj_weight" if param == "in_proj_weight"
                                    else "blocks.1.attn.out_proj.weight", torch.ones_like(base))
        deltas[param] = base + deltas[param]
    merged = merge_lora(via_peft, masks=masks).eval()
    torch.testing.assert_close(merged.blocks[-1].attn.in_proj_weight.detach(), deltas["in_proj_weight"], rtol=0,
                               atol=1e-6)
    torch.testing.assert_close(merged.blocks[-1].attn.out_proj.weight.detach(), deltas["weight"], rtol=0, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(merged(batch), expected, rtol=0, atol=1e-5)


def test_reference_defect_lora_on_out_proj_alone_never_runs(small_train):
    # The reference code put LoRA on `attn.out_proj`. nn.MultiheadAttention's forward reads
    # `out_proj.weight` directly and never calls out_proj's forward, so that adapter receives no
    # gradient, stays at B = 0 and the attention output is unchanged: its ViT "LoRA" trained only
    # the head. prunelora targets the MultiheadAttention module instead (test above).
    model = tiny_vit()
    original = copy.deepcopy(model.blocks[-1].attn).eval()
    dim = model.blocks[-1].norm1.normalized_shape[0]
    peft_model = add_lora(model, LoraSettings(rank=4, alpha=8, dropout=0.0, types=("linear",),
                                              pattern=r"blocks\.{last}\.attn\.out_proj"))
    fit(peft_model, small_train, STEPS, progress=False)
    peft_model.eval()
    attn = peft_model.get_base_model().blocks[-1].attn
    b = [p for n, p in attn.named_parameters() if "lora_B" in n]
    assert b and all(torch.equal(p, torch.zeros_like(p)) for p in b)
    trained, reference = _attention_outputs(attn, original, dim)
    assert torch.equal(trained, reference)


# --------------------------------------------------------------------------- targets and settings


def test_lora_targets():
    resnet = tiny_resnet()
    assert lora_targets(resnet, ("conv",), None) == [n for n, m in resnet.named_modules() if isinstance(m, nn.Conv2d)]
    vit = tiny_vit(depth=3)
    assert lora_targets(vit, ("mha",), None) == ["blocks.0.attn", "blocks.1.attn", "blocks.2.attn"]
    assert lora_targets(vit, ("mha",), VIT_LAST_ATTN) == ["blocks.2.attn"]
    # inside a targeted MultiheadAttention, its out_proj is not targeted again
    both = lora_targets(vit, ("mha", "linear"), r"blocks\.{last}\.")
    assert both == ["blocks.2.attn", "blocks.2.mlp.0", "blocks.2.mlp.3"]
    assert "head" not in lora_targets(vit, ("linear",), None)


@pytest.mark.parametrize("types,pattern", [(("conv",), "nomatch"), (("linear",), None), (("mha",), None)])
def test_lora_targets_matching_nothing_is_refused(types, pattern):
    with pytest.raises(InvalidInputError, match="matches LoRA pattern"):
        lora_targets(tiny_resnet(), types, pattern)  # resnet: no linear but the head, no attention


@pytest.mark.parametrize("kwargs,match", [
    (dict(rank=0), "rank 0"), (dict(rank=-2), "rank -2"), (dict(dropout=1.0), "dropout 1.0"),
    (dict(dropout=-0.1), "dropout -0.1"), (dict(types=("attention",)), "'attention'"),
    (dict(types=("mha",), dropout=0.1), "dropout 0.1 cannot apply to attention"),
    (dict(types=("mha", "conv"), dropout=0.0), "mha.* cannot be combined"),
])
def test_lora_settings_validation(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        LoraSettings(**kwargs)


# --------------------------------------------------------------------------- adapter export


def test_save_adapter_warns_and_writes_the_adapter(small_train, tmp_path):
    peft_model, _ = adapted("resnet-lora", small_train)
    with pytest.warns(UserWarning, match="still contain the information"):
        out = save_adapter(AdapterSnapshot.of(peft_model), tmp_path / "adapter")
    assert (out / "adapter_config.json").is_file()
    tensors = load_file(str(out / "adapter_model.safetensors"))
    assert any("lora_A" in k for k in tensors) and any("lora_B" in k for k in tensors)


def test_adapter_exported_after_unlearn_holds_the_trained_weights(trained, class3_splits, tmp_path):
    from prunelora.methods import unlearn

    result = unlearn(trained.model, class3_splits, "lora", steps=2, progress=False)
    with pytest.warns(UserWarning):
        out = save_adapter(result.adapter, tmp_path / "adapter")
    tensors = load_file(str(out / "adapter_model.safetensors"))
    assert any("lora_B" in k for k in tensors)
