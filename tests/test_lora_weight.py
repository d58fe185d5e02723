"""The weight-form LoRA backend (W0 + s·B@A as a parametrization): same guarantees as peft's."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from helpers import stays_pruned, tiny_resnet, tiny_vit, zero_channels
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils import parametrize

from prunelora.adapters import AdapterSnapshot, LoraSettings, add_lora, merge_lora, save_adapter
from prunelora.errors import InvalidInputError
from prunelora.pruning import prune
from prunelora.training import TrainConfig, fit

VIT_LAST_ATTN = r"blocks\.{last}\.attn$"
STEPS = TrainConfig(steps=4, batch_size=64, optimizer="adam", lr=1e-2, seed=0)
EXAMPLE = torch.zeros(1, 1, 8, 8)  # one input, for the trace dead-channel pruning takes


def weight_settings(**kwargs) -> LoraSettings:
    return LoraSettings(rank=4, alpha=8, dropout=0.0, backend="weight", **kwargs)


def test_adapted_model_starts_as_the_original_and_only_adapters_and_head_train(small_train, batch):
    model = tiny_resnet().eval()
    with torch.no_grad():
        before_logits = model(batch)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    adapted = add_lora(model, weight_settings())
    assert adapted is model  # no wrapper: the weights themselves are parametrized
    with torch.no_grad():
        torch.testing.assert_close(adapted.eval()(batch), before_logits, rtol=0, atol=0)
    trainable = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    assert any(n.startswith("head.") for n in trainable)

    fit(adapted, small_train, STEPS, progress=False)

    for name, p in adapted.named_parameters():
        if name.endswith(".original"):  # the frozen base weight under the parametrization
            assert torch.equal(p, base[name.replace("parametrizations.", "").replace(".original", "")])
    lora_b = [p for n, p in adapted.named_parameters() if n.endswith("lora_B")]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)


@pytest.mark.parametrize("prune_first", [False, True])
def test_merge_is_exact_and_keeps_the_zeros(small_train, batch, prune_first):
    model = tiny_resnet()
    masks = prune(model, 0.5, bake=True, types=("conv",), example_inputs=EXAMPLE) if prune_first else None
    adapted = add_lora(model, weight_settings(), masks=masks)
    fit(adapted, small_train, STEPS, progress=False)
    adapted.eval()
    with torch.no_grad():
        expected = adapted(batch)
    merged = merge_lora(adapted, masks=masks).eval()
    assert not any(parametrize.is_parametrized(m) for m in merged.modules())
    assert set(merged.state_dict()) == set(tiny_resnet().state_dict())
    with torch.no_grad():
        assert (merged(batch) - expected).abs().max().item() <= 1e-5
    for key, mask in (masks or {}).items():
        module_name, param = key.rsplit(".", 1)
        weight = getattr(merged.get_submodule(module_name), param)
        assert stays_pruned(weight, mask), key  # weight rows, biases and norm weights of dead channels
        assert int((mask.flatten() == 0).sum()) == round(0.5 * mask.numel())
    assert all(p.requires_grad for p in merged.parameters())  # a plain model again


def test_without_keep_sparsity_the_update_refills_pruned_channels(small_train):
    model = tiny_resnet()
    # the reference's weights-only masks: a dead channel (zero BN) would get no gradient to refill it
    masks = prune(model, 0.5, bake=True, types=("conv",), targets="weights-only")
    adapted = add_lora(model, weight_settings(), masks=masks, keep_sparsity=False)
    fit(adapted, small_train, STEPS, progress=False)
    merged = merge_lora(adapted, masks=masks, keep_sparsity=False)
    refilled = [k for k, m in masks.items()
                if zero_channels(merged.get_submodule(k.rsplit(".", 1)[0]).weight) < zero_channels(m)]
    assert refilled


def test_attention_lora_adapts_both_projections_and_merges_exactly(small_train, batch):
    model = tiny_vit()
    original = copy.deepcopy(model).eval()
    adapted = add_lora(model, weight_settings(types=("mha",), pattern=VIT_LAST_ATTN))
    attn = adapted.blocks[-1].attn
    assert parametrize.is_parametrized(attn, "in_proj_weight")
    assert parametrize.is_parametrized(attn.out_proj, "weight")
    assert not parametrize.is_parametrized(adapted.blocks[0].attn)
    fit(adapted, small_train, STEPS, progress=False)
    adapted.eval()
    with torch.no_grad():
        expected = adapted(batch)
        assert not torch.allclose(expected, original(batch), atol=1e-4)  # the adapter really runs
    merged = merge_lora(adapted).eval()
    assert isinstance(merged.blocks[-1].attn, nn.MultiheadAttention)
    with torch.no_grad():
        torch.testing.assert_close(merged(batch), expected, rtol=0, atol=1e-5)


def test_weight_backend_refuses_dropout_and_unknown_backends():
    with pytest.raises(InvalidInputError, match=r"dropout 0.1 needs the peft backend"):
        LoraSettings(dropout=0.1, backend="weight")
    with pytest.raises(InvalidInputError, match=r"backend 'fast' is not one of peft, weight"):
        LoraSettings(backend="fast")


def test_adapter_export_of_the_weight_backend(small_train, tmp_path):
    model = tiny_resnet()
    masks = prune(model, 0.5, bake=True, types=("conv",), example_inputs=EXAMPLE)
    base = copy.deepcopy(model)
    adapted = add_lora(model, weight_settings(), masks=masks)
    fit(adapted, small_train, STEPS, progress=False)
    snapshot = AdapterSnapshot.of(adapted)
    merged = merge_lora(adapted, masks=masks)
    with pytest.warns(UserWarning, match="still contain the information"):
        out = save_adapter(snapshot, tmp_path / "adapter")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["backend"] == "weight" and config["rank"] == 4 and config["alpha"] == 8
    assert config["train_head"] is True
    tensors = load_file(str(out / "adapter_model.safetensors"))
    convs = [n for n, m in base.named_modules() if isinstance(m, nn.Conv2d)]
    assert config["targets"] == sorted(f"{n}.weight" for n in convs)
    # the file and the base weights give the merged weights (the head and BatchNorm statistics,
    # trained too, are not adapters)
    for target in config["targets"]:
        module_name, param = target.rsplit(".", 1)
        weight = getattr(base.get_submodule(module_name), param)
        delta = config["alpha"] / config["rank"] * tensors[f"{target}.lora_B"] @ tensors[f"{target}.lora_A"]
        assert delta.abs().sum() > 0
        torch.testing.assert_close(getattr(merged.get_submodule(module_name), param),
                                   weight + delta.view_as(weight), rtol=0, atol=1e-6)
    # the trained head travels with the adapters
    assert not torch.equal(tensors["head.weight"], base.head.weight)
    assert torch.equal(tensors["head.weight"], merged.head.weight.detach())
    assert torch.equal(tensors["head.bias"], merged.head.bias.detach())


def test_the_merge_restores_which_parameters_were_trainable(small_train):
    model = tiny_resnet()
    model.bn1.weight.requires_grad_(False)  # e.g. a user who froze something before adapting
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    assert not all(before.values())
    merged = merge_lora(add_lora(model, weight_settings()))
    assert {n: p.requires_grad for n, p in merged.named_parameters()} == before


def test_prunelora_method_with_the_weight_backend(trained, class3_splits):
    from prunelora.methods import unlearn

    result = unlearn(trained.model, class3_splits, "prunelora", steps=3, lora_backend="weight",
                     lora_dropout=0.0, progress=False)
    model = result.model
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    for key, mask in result.masks.items():
        module_name, param = key.rsplit(".", 1)
        assert stays_pruned(getattr(model.get_submodule(module_name), param), mask) and (mask == 0).any(), key
    state = result.adapter.state
    adapters = sum(t.numel() for k, t in state.items() if k.endswith(("lora_A", "lora_B")))
    assert {k for k in state if not k.endswith(("lora_A", "lora_B"))} == {"head.weight", "head.bias"}
    head = sum(p.numel() for p in model.head.parameters())
    assert result.cost.trainable_params == adapters + head


@pytest.mark.parametrize("make,types", [(tiny_resnet, ("conv",)), (tiny_vit, ("mha",))])
def test_unstructured_pruning_masks_the_update_weight_by_weight(make, types, small_train, batch):
    """Unstructured masks: the update is masked element-wise while training, so the pruned weights
    are zero in the model that trains, and the merged model is that same model (not a dense-trained
    model zeroed only at the merge)."""
    model = make()
    pattern = VIT_LAST_ATTN if types == ("mha",) else None
    masks = prune(model, 0.5, structured=False, types=types, pattern=pattern, bake=True)
    adapted = add_lora(model, weight_settings(types=types, pattern=pattern), masks=masks)
    fit(adapted, small_train, STEPS, progress=False)
    adapted.eval()
    for key, mask in masks.items():
        module_name, param = key.rsplit(".", 1)
        trained_weight = getattr(adapted.get_submodule(module_name), param).detach()
        assert torch.equal(trained_weight[mask == 0], torch.zeros(int((mask == 0).sum()))), key
    with torch.no_grad():
        expected = adapted(batch)
    merged = merge_lora(adapted, masks=masks).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(batch), expected, rtol=0, atol=1e-5)


def test_unstructured_pruning_with_peft_lora_is_refused():
    from prunelora.methods import get_method

    with pytest.raises(InvalidInputError, match="unstructured pruning .* with LoRA through peft"):
        get_method("prunelora").make_config(prune_structured=False)
    config = get_method("prunelora").make_config(prune_structured=False, lora_backend="weight", lora_dropout=0.0)
    assert not config.prune_structured
