"""Physical structured pruning: channels and heads removed through the dependency graph, a model
that still runs forward and backward, exact channel counts and parameter counts, the architecture
stored in meta.json and rebuilt without pruning again, PruneLoRA and Prune+FT on the smaller
model, and MACs. Small shapes throughout (8x8 inputs, quarter widths)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from prunelora.checkpoint import load_checkpoint, save_checkpoint
from prunelora.errors import CheckpointError, InvalidInputError
from prunelora.evaluation.evaluate import count_macs, evaluate
from prunelora.methods import unlearn
from prunelora.models import create_model
from prunelora.pruning import (
    PrunedAttention,
    kept_count,
    merge_architecture,
    physical_prune,
    prune,
    rebuild_pruned,
)

VIT_PRESET = {"types": ("mha", "linear"), "pattern": r"blocks\.{last}\.(attn|mlp)"}  # configs/prunelora-vit.yaml
RESNETS = {  # every registered CIFAR ResNet; the big ones at quarter width
    "resnet8": {}, "resnet20": {}, "resnet18": {"width": 0.25}, "resnet50": {"width": 0.25},
}
VITS = {"vit-tiny": {"width": 0.25, "depth": 2}, "vit-small": {"width": 0.125, "depth": 2}}


def make(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, 10, 1, 8, **{**RESNETS, **VITS}[name])


def example(batch: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_for(name: str, architecture: dict | None = None) -> dict:
    spec = {"name": name, "num_classes": 10, "in_channels": 1, "image_size": 8, "kwargs": {**RESNETS, **VITS}[name]}
    if architecture is not None:
        spec["pruned"] = architecture
    return {"model": spec}


def pruned(name: str, amount: float = 0.5, **options):
    model = make(name)
    options = options or ({"types": ("conv",)} if name in RESNETS else dict(VIT_PRESET))
    return model, physical_prune(model, amount, example_inputs=example(1), **options)


def forward_backward(model: nn.Module) -> torch.Tensor:
    model.train()
    logits = model(example())
    logits.logsumexp(dim=1).mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    return logits


# --------------------------------------------------------------------------- ResNets


@pytest.mark.parametrize("name", list(RESNETS))
def test_pruned_resnet_runs_forward_and_backward(name):
    model, result = pruned(name)
    assert forward_backward(model).shape == (4, 10)
    assert result.skipped == []


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("name", ["resnet20", "resnet50"])
def test_every_conv_keeps_round_one_minus_amount_channels(name, amount):
    before = make(name)
    model, _ = pruned(name, amount)
    old = dict(before.named_modules())
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            assert module.out_channels == round((1 - amount) * old[module_name].out_channels), module_name
            assert module.weight.shape[0] == module.out_channels
        if isinstance(module, nn.BatchNorm2d):
            assert module.num_features == round((1 - amount) * old[module_name].num_features), module_name
    assert model.head.out_features == 10  # never the classes
    assert model.head.in_features == round((1 - amount) * before.head.in_features)


@pytest.mark.parametrize("amount", [0.3, 0.7])
@pytest.mark.parametrize("name", ["resnet8", "resnet50"])
def test_parameter_count_drops_to_the_pruned_shapes(name, amount):
    """Every conv loses channels on both sides (but the stem's image input), every BN its share,
    the head its inputs: the count follows from the original shapes alone."""
    before = make(name)
    expected = 0
    for module_name, m in before.named_modules():
        if isinstance(m, nn.Conv2d):
            c_in = m.in_channels if module_name == "conv1" else kept_count(m.in_channels, amount)
            expected += m.kernel_size[0] * m.kernel_size[1] * c_in * kept_count(m.out_channels, amount)
        elif isinstance(m, nn.BatchNorm2d):
            expected += 2 * kept_count(m.num_features, amount)
        elif isinstance(m, nn.Linear):
            expected += kept_count(m.in_features, amount) * m.out_features + m.out_features
    model, _ = pruned(name, amount)
    assert n_params(model) == expected < n_params(before)


@pytest.mark.parametrize("name", ["resnet20", "resnet50"])
def test_residual_additions_stay_consistent(name):
    """Each block's last conv and its shortcut (or the block input) have the same channels."""
    model, _ = pruned(name, 0.5)
    for block in model.layers.modules():
        if not hasattr(block, "shortcut"):
            continue
        last = block.conv3 if hasattr(block, "conv3") else block.conv2
        skip = block.shortcut[0].out_channels if isinstance(block.shortcut, nn.Sequential) else block.conv1.in_channels
        assert last.out_channels == skip
    forward_backward(model)


def test_uncoupled_layers_keep_the_channels_mask_pruning_keeps():
    """Same Ln importance, same amount: a conv coupled to nothing keeps what even the per-layer
    (paper-literal) mask keeps."""
    masked = make("resnet20")
    masks = prune(masked, 0.5, types=("conv",), bake=True, targets="weights-only")  # per layer
    _, result = pruned("resnet20", 0.5)
    for name in ("layers.0.0.conv1", "layers.1.2.conv1", "layers.2.1.conv1"):
        mask_kept = masks[f"{name}.weight"].flatten(1).any(dim=1).nonzero().flatten().tolist()
        assert result.kept[name] == mask_kept


def test_pruned_weights_are_the_kept_slices_of_the_original():
    before = make("resnet8")
    model, result = pruned("resnet8", 0.5)
    rows = result.kept["layers.0.0.conv1"]
    cols = result.kept["conv1"]  # the stem's group feeds layers.0.0.conv1
    original = before.layers[0][0].conv1.weight.detach()[rows][:, cols]
    assert torch.equal(model.layers[0][0].conv1.weight.detach(), original)


# --------------------------------------------------------------------------- ViTs


@pytest.mark.parametrize("name", list(VITS))
@pytest.mark.parametrize("scope", ["last-block", "every-block"])
def test_pruned_vit_runs_forward_and_backward(name, scope):
    options = dict(VIT_PRESET) if scope == "last-block" else {"types": ("mha", "linear")}
    model, result = pruned(name, 0.5, **options)
    assert forward_backward(model).shape == (4, 10)
    assert any(isinstance(m, PrunedAttention) for m in model.modules())
    # the projections into the token stream cannot lose outputs alone: they are reported
    assert all(s.endswith(("attn.out_proj", "mlp.3")) for s in result.skipped)


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.7])
def test_vit_heads_and_mlp_units_follow_the_amount(amount):
    before = make("vit-tiny")
    model, result = pruned("vit-tiny", amount)
    old_attn, old_mlp = before.blocks[-1].attn, before.blocks[-1].mlp
    attn, mlp = model.blocks[-1].attn, model.blocks[-1].mlp
    heads = kept_count(old_attn.num_heads, amount)
    hidden = round((1 - amount) * old_mlp[0].out_features)
    assert isinstance(attn, PrunedAttention) and attn.num_heads == heads == len(result.kept["blocks.1.attn"])
    assert attn.q_proj.out_features == heads * old_attn.head_dim
    assert attn.embed_dim == old_attn.embed_dim  # the token width stays
    assert mlp[0].out_features == mlp[3].in_features == hidden
    assert isinstance(model.blocks[0].attn, nn.MultiheadAttention)  # earlier blocks untouched
    dim, head_dim = old_attn.embed_dim, old_attn.head_dim
    dropped = (old_attn.num_heads - heads) * head_dim * (4 * dim + 3) + (old_mlp[0].out_features - hidden) * (2 * dim + 1)
    assert n_params(before) - n_params(model) == dropped


def test_pruned_attention_matches_multihead_attention():
    """All heads kept, a PrunedAttention computes what the MultiheadAttention it came from does."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    attn = PrunedAttention.from_multihead(mha).eval()
    x = torch.randn(3, 5, 32)
    torch.testing.assert_close(attn(x, x, x, need_weights=False)[0], mha(x, x, x, need_weights=False)[0])
    out, weights = attn(x, x, x)
    ref_out, ref_weights = mha(x, x, x)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(weights, ref_weights)


def test_heads_with_lowest_ln_norm_go():
    torch.manual_seed(0)
    attn = PrunedAttention.from_multihead(nn.MultiheadAttention(16, 4, batch_first=True))
    with torch.no_grad():
        for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
            proj.weight[4:8] *= 0.01  # head 1
            proj.weight[12:16] *= 0.1  # head 3
    model = nn.Module()
    model.attn = attn
    result = physical_prune(model, 0.5, types=("mha",), example_inputs=torch.zeros(1))
    assert result.kept["attn"] == [0, 2]


# --------------------------------------------------------------------------- checkpoint round trip


@pytest.mark.parametrize("name", ["resnet20", "resnet50", "vit-tiny"])
def test_checkpoint_round_trip_gives_identical_logits(name, tmp_path, monkeypatch):
    model, result = pruned(name, 0.5)
    model.eval()
    save_checkpoint(model, tmp_path / "ckpt", meta_for(name, result.architecture))
    # Loading re-creates the stored shapes; it never traces or prunes again.
    import torch_pruning

    monkeypatch.setattr(torch_pruning.DependencyGraph, "build_dependency", None)
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta["model"]["pruned"]["modules"]
    assert json.loads(json.dumps(meta["model"]["pruned"])) == meta["model"]["pruned"]  # plain JSON
    x = example(8)
    assert torch.equal(loaded(x), model(x))


def test_pruning_twice_merges_the_descriptions(tmp_path):
    model, first = pruned("vit-tiny", 0.5, types=("mha", "linear"))
    second = physical_prune(model, 0.5, **VIT_PRESET, example_inputs=example(1))
    assert model.blocks[-1].attn.num_heads == 1 and model.blocks[0].attn.num_heads == 2
    architecture = merge_architecture(first.architecture, second.architecture)
    rebuilt = rebuild_pruned(make("vit-tiny"), architecture)
    rebuilt.load_state_dict(model.state_dict())
    x = example()
    assert torch.equal(rebuilt.eval()(x), model.eval()(x))


def test_unknown_module_type_in_meta_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match="Bogus"):
        rebuild_pruned(make("resnet8"), {"modules": {"conv1": {"type": "Bogus"}}})
    with pytest.raises(CheckpointError, match="lacks"):
        rebuild_pruned(make("resnet8"), {"modules": {"nowhere.conv": {"type": "Linear", "in_features": 1,
                                                                       "out_features": 1, "bias": True}}})


# --------------------------------------------------------------------------- validation


def test_physical_refuses_the_head_and_width_only_selections():
    with pytest.raises(InvalidInputError, match="head"):
        physical_prune(make("resnet8"), 0.5, include_head=True, example_inputs=example(1))
    with pytest.raises(InvalidInputError, match="token width"):
        physical_prune(make("vit-tiny"), 0.5, types=("linear",), pattern=r"mlp\.3", example_inputs=example(1))
    with pytest.raises(InvalidInputError, match="outside"):
        physical_prune(make("resnet8"), 1.0, example_inputs=example(1))


@pytest.mark.parametrize("options", [{"prune_mode": "bogus"}, {"prune_mode": "physical", "prune_structured": False},
                                     {"prune_mode": "physical", "prune_head": True}])
def test_prune_mode_options_are_validated(options, trained, class3_splits):
    with pytest.raises(InvalidInputError, match="prune_mode"):
        unlearn(trained.model, class3_splits, "prunelora", progress=False, **options)


# --------------------------------------------------------------------------- methods


@pytest.mark.parametrize("method", ["prunelora", "prune-finetune"])
def test_methods_train_the_smaller_model(method, trained, class3_splits):
    result = unlearn(trained.model, class3_splits, method, progress=False, steps=2, prune_mode="physical")
    mask = unlearn(trained.model, class3_splits, method, progress=False, steps=2)
    assert result.masks is None and result.architecture["modules"]
    assert n_params(result.model) < n_params(mask.model)
    assert result.cost.trainable_params < mask.cost.trainable_params
    assert result.sparsity["layers"] == {}  # nothing masked, nothing to report per layer
    assert not any(hasattr(m, "parametrizations") for m in result.model.modules())


def test_prunelora_physical_vit_preset_adapts_the_pruned_attention(class3_splits):
    """LoRA on `mha` reaches an attention that lost heads through its q/k/v/out linears."""
    model = make("vit-tiny").eval()
    options = {"prune_types": VIT_PRESET["types"], "prune_pattern": VIT_PRESET["pattern"],
               "lora_types": ("mha",), "lora_pattern": r"blocks\.{last}\.attn$", "lora_dropout": 0.0, "steps": 2}
    result = unlearn(model, class3_splits, "prunelora", progress=False, prune_mode="physical", **options)
    base = copy.deepcopy(model)
    physical_prune(base, 0.5, **VIT_PRESET, example_inputs=example(1))
    changed = [n for n, p in result.model.named_parameters() if not torch.equal(p, base.get_parameter(n))]
    assert any(n.startswith("blocks.1.attn.q_proj") for n in changed)
    assert result.model.blocks[1].attn.num_heads == 2
    # the recorded config is the one that ran (the pruned attention's linears, weight form); the
    # caller's is kept beside it
    assert result.requested.lora_types == ("mha",)
    assert result.config.lora_types == ("linear",) and "blocks\\.1\\.attn\\.q_proj" in result.config.lora_pattern
    assert result.to_dict()["method"]["requested"]["lora_types"] == ["mha"]


def test_cli_physical_trains_fewer_parameters_and_info_loads_it(run_cli, checkpoint_dir, tmp_path):
    costs = {}
    for mode in ("mask", "physical"):
        out = tmp_path / mode
        code, _, stderr = run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-class", "3", "--out", out,
                                  "--no-progress", "--method", "prunelora", "--steps", "2", "--prune-mode", mode)
        assert code == 0, stderr
        code, info_json, stderr = run_cli("info", out, "--json")
        assert code == 0, stderr
        meta = json.loads(info_json)
        assert meta["method"]["config"]["prune_mode"] == mode
        assert ("pruned" in meta["model"]) == (mode == "physical")
        costs[mode] = meta["cost"]["trainable_params"]
        code, table, stderr = run_cli("info", out)
        assert code == 0 and "prunelora" in table, stderr
    assert costs["physical"] < costs["mask"]
    model, _ = load_checkpoint(tmp_path / "physical")
    assert model.head.in_features == 32  # resnet8's 64 features, halved


def test_cli_refuses_an_unknown_prune_mode(run_cli, checkpoint_dir, tmp_path):
    code, _, stderr = run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-class", "3", "--out",
                              tmp_path / "x", "--no-progress", "--prune-mode", "cut")
    assert code == 2 and "prune_mode 'cut'" in stderr
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- MACs


@pytest.mark.parametrize("name", ["resnet20", "vit-tiny"])
def test_macs_drop_after_physical_pruning_only(name):
    sample = example(1)
    original = count_macs(make(name), sample)
    masked = make(name)
    prune(masked, 0.5, types=("conv",) if name in RESNETS else VIT_PRESET["types"],
          pattern=None if name in RESNETS else VIT_PRESET["pattern"], bake=True, example_inputs=sample)
    model, _ = pruned(name, 0.5)
    assert count_macs(masked, sample) == original  # zeros still multiply
    assert 0 < count_macs(model, sample) < original
    if name in RESNETS:  # both sides of every conv halved: about a quarter of the work
        assert count_macs(model, sample) < 0.3 * original


def test_attention_macs_are_counted_like_multihead_attention():
    torch.manual_seed(0)
    model = make("vit-tiny")
    converted = copy.deepcopy(model)
    converted.blocks[1].attn = PrunedAttention.from_multihead(model.blocks[1].attn)
    assert count_macs(converted, example(1)) == count_macs(model, example(1))


def test_evaluate_reports_macs(trained, class3_splits):
    metrics = evaluate(trained.model, class3_splits, attacks=(), throughput=False, device="cpu").metrics
    assert metrics["macs"] == count_macs(trained.model, class3_splits.retain[0][0].unsqueeze(0)) > 0
    assert "macs" not in evaluate(trained.model, class3_splits, attacks=(), throughput=False, macs=False,
                                  device="cpu").metrics
