"""The deep-forgetting peers (issue 25): eu-k, cf-k, damp, opc and cmf on digits and tiny models.

Each returns a plain model, leaves the caller's untouched, is seeded, forgets a class of the
trained resnet8 checkpoint and runs on the ViT; then what each one promises: cf-k and eu-k touch
the last k blocks alone (eu-k re-initialises them), damp takes no gradient step and shrinks each
edited weight's forget component, opc pulls D_f's features in, cmf's head is its class means.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from prunelora.checkpoint import META
from prunelora.errors import InvalidInputError
from prunelora.methods import get_method, unlearn
from prunelora.methods.damp import DampConfig
from prunelora.methods.eu_k import reinitialise
from prunelora.models import create_model
from prunelora.models.blocks import last_blocks, model_blocks
from prunelora.training.loop import accuracy_on

PEERS = ("eu-k", "cf-k", "damp", "opc", "cmf")
TRAINS = ("eu-k", "cf-k", "opc", "cmf")


def short(method: str, steps: int = 3) -> dict:
    """A few optimizer steps for the methods that train; damp has no budget to shorten."""
    return {"steps": steps, "batch_size": 32} if method in TRAINS else {"forget_samples": 64, "retain_samples": 128}


def tiny_vit(trained_like: bool = False) -> nn.Module:
    """A 2-block ViT; `trained_like` moves every parameter off its initial value (LayerNorm's ones and
    zeros included), as training would, so that a re-initialisation shows in every tensor."""
    torch.manual_seed(0)
    model = create_model("vit-tiny", 10, 1, 8, width=0.25, depth=2).eval()
    if trained_like:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return model


def example(splits) -> torch.Tensor:
    return splits.retain[0][0].unsqueeze(0)


def states(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("method", PEERS)
def test_each_peer_forgets_a_class_of_the_trained_checkpoint_at_its_defaults(method, trained, class3_splits):
    model = trained.model
    before = states(model)
    ua0, ra0 = 100 - accuracy_on(model, class3_splits.forget), accuracy_on(model, class3_splits.retain)
    result = unlearn(model, class3_splits, method, progress=False)
    out = result.model
    assert type(out) is type(model)  # a plain model of the same class, no wrapper
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in out.modules())  # no hook left behind
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the caller's model untouched
    ua, ra = 100 - accuracy_on(out, class3_splits.forget), accuracy_on(out, class3_splits.retain)
    assert ua >= 80 and ua > ua0 + 50, (ua0, ua)
    assert ra >= ra0 - 10, (ra0, ra)
    # a few seconds on digits: the defaults' budget counted in optimizer steps (a few dozen)
    assert result.cost.steps <= 100
    assert (result.cost.steps == 0) == (method == "damp")


@pytest.mark.parametrize("method", PEERS)
def test_each_peer_is_seeded(method, trained, class3_splits, state_dicts_equal):
    runs = [unlearn(trained.model, class3_splits, method, progress=False, seed=seed, **short(method)).model
            for seed in (1, 1, 2)]
    assert state_dicts_equal(runs[0].state_dict(), runs[1].state_dict())
    if method != "damp":  # damp draws only its samples, which are all of D_f at these sizes
        assert not state_dicts_equal(runs[0].state_dict(), runs[2].state_dict())


@pytest.mark.parametrize("method", PEERS)
def test_each_peer_runs_on_the_vit(method, class3_splits):
    model = tiny_vit()
    before = states(model)
    out = unlearn(model, class3_splits, method, progress=False, **short(method)).model
    assert type(out) is type(model)
    assert all(torch.isfinite(p).all() for p in out.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not all(torch.equal(v, out.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize(("method", "options", "match"), [
    ("eu-k", {"k": -1}, "k -1 must be >= 0"),
    ("cf-k", {"k": -2}, "k -2 must be >= 0"),
    ("damp", {"subspace_rank": 0}, "subspace_rank 0 must be >= 1"),
    ("damp", {"strength": 1.5}, r"strength 1.5 is outside \(0, 1\]"),
    ("damp", {"depth_scaling": "cubic"}, "depth_scaling 'cubic' is not one of separability, linear, uniform"),
    ("damp", {"forget_samples": 0}, "forget_samples 0 must be >= 1"),
    ("opc", {"contraction_weight": 0.0}, "contraction_weight 0.0 must be > 0"),
    ("cmf", {"cmf_scale": -1.0}, "cmf_scale -1.0 must be > 0"),
    ("damp", {"lr": 0.1}, "method 'damp' does not take option 'lr'"),
])
def test_bad_options_are_refused_in_one_line(method, options, match):
    with pytest.raises(InvalidInputError, match=match) as info:
        get_method(method).make_config(**options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("method", ["eu-k", "cf-k"])
def test_a_k_beyond_the_models_blocks_is_refused_naming_them(method, trained, class3_splits):
    with pytest.raises(InvalidInputError, match=r"k 4 is outside \[0, 3\]: CifarResNet has 3 blocks \(layers.0.0"):
        unlearn(trained.model, class3_splits, method, progress=False, k=4, steps=1)


def test_damp_refuses_a_random_forget_set_in_one_line(trained, fraction_splits):
    with pytest.raises(InvalidInputError) as info:
        unlearn(trained.model, fraction_splits, "damp", progress=False)
    message = str(info.value)
    assert message == ("method 'damp' does not support forgetting a random fraction (--forget-fraction); it "
                       "supports: class-wise (--forget-class)")


def test_damp_refuses_a_users_record_list_and_takes_a_users_classes(trained, class3_splits):
    retain, forget = class3_splits.retain, class3_splits.forget
    with pytest.raises(InvalidInputError, match="does not support forgetting an index list"):
        unlearn(trained.model, retain=retain, forget=forget, method="damp", progress=False)
    out = unlearn(trained.model, retain=retain, forget=forget, forget_classes=[3], method="damp", progress=False,
                  forget_samples=64, retain_samples=128).model
    assert accuracy_on(out, forget) < accuracy_on(trained.model, forget)


@pytest.mark.parametrize("method", TRAINS)
def test_the_others_take_a_random_forget_set(method, trained, fraction_splits):
    out = unlearn(trained.model, fraction_splits, method, progress=False, **short(method)).model
    assert all(torch.isfinite(p).all() for p in out.parameters())


# --------------------------------------------------------------------------- the last k blocks


def test_the_last_k_blocks_follow_each_architecture(class3_splits):
    x = example(class3_splits)
    resnet8, resnet20, vit = (create_model("resnet8", 10, 1, 8), create_model("resnet20", 10, 1, 8), tiny_vit())
    assert model_blocks(resnet8, x) == ["layers.0.0", "layers.1.0", "layers.2.0"]
    assert len(model_blocks(resnet20, x)) == 9 and model_blocks(resnet20, x)[-1] == "layers.2.2"
    assert model_blocks(vit, x) == ["blocks.0", "blocks.1"]

    part = last_blocks(vit, 1, x)
    assert part.blocks == ("blocks.1",)
    # the last block, the final norm after it and the head; the attention's out_proj (never called
    # on its own) belongs to its attention
    assert {"blocks.1.attn.out_proj.weight", "norm.weight", "head.weight"} <= set(part.parameters)
    assert not any(p.startswith("blocks.0.") for p in part.parameters)
    assert not {"cls_token", "pos_embed", "patch_embed.weight"} & set(part.parameters)
    assert last_blocks(resnet8, 0, x).parameters == ("head.weight", "head.bias")


def test_a_users_model_counts_its_weighted_layers_in_forward_order(class3_splits):
    # declared out of order on purpose: the forward pass, not the attribute order, decides
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 10)
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(16)
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)

        def forward(self, x):
            x = torch.relu(self.bn2(self.conv2(torch.relu(self.conv1(x)))))
            return self.fc(x.mean(dim=(2, 3)))

    net, x = Net(), example(class3_splits)
    assert model_blocks(net, x) == ["conv1", "conv2"]  # the classifier is not a block
    part = last_blocks(net, 1, x)
    assert set(part.parameters) == {"conv2.weight", "conv2.bias", "bn2.weight", "bn2.bias", "fc.weight", "fc.bias"}
    with pytest.raises(InvalidInputError, match=r"k 3 is outside \[0, 2\]: Net has 2 blocks \(conv1, conv2\)"):
        last_blocks(net, 3, x)


@pytest.mark.parametrize("arch", ["resnet8", "vit"])
def test_cf_k_changes_only_the_last_k_blocks(arch, trained, class3_splits):
    model = trained.model if arch == "resnet8" else tiny_vit()
    part = last_blocks(model, 1, example(class3_splits))
    before = states(model)
    out = unlearn(model, class3_splits, "cf-k", progress=False, k=1, steps=3, batch_size=32).model
    after = out.state_dict()
    owned = set(part.parameters) | {k for k in after if any(k.startswith(m + ".") for m in part.modules)}
    for name, value in before.items():
        if name not in owned:  # weights and BatchNorm statistics of the frozen part alike
            assert torch.equal(value, after[name]), name
    assert not torch.equal(before["head.weight"], after["head.weight"])
    changed = [n for n in part.parameters if not torch.equal(before[n], after[n])]
    assert any(not n.startswith("head.") for n in changed)  # the block trained too, not only the head


@pytest.mark.parametrize("arch", ["resnet8", "vit"])
def test_eu_k_reinitialises_the_last_k_blocks_and_keeps_the_rest(arch, trained, class3_splits):
    model = trained.model if arch == "resnet8" else tiny_vit(trained_like=True)
    part = last_blocks(model, 1, example(class3_splits))
    before = states(model)
    reset_model = copy.deepcopy(model)
    assert reinitialise(reset_model, part) > 0
    reset = reset_model.state_dict()
    for name in part.parameters:  # every tensor of the part, the attention's out_proj included
        assert not torch.equal(reset[name], before[name]), f"{name} was not re-initialised"
    out = unlearn(model, class3_splits, "eu-k", progress=False, k=1, steps=3, batch_size=32).model
    after = out.state_dict()
    owned = set(part.parameters) | {k for k in after if any(k.startswith(m + ".") for m in part.modules)}
    for name, value in before.items():
        if name not in owned:
            assert torch.equal(value, after[name]), name
    # three steps from a fresh start: far from the trained weights, not a fine-tune of them
    head_drift = (after["head.weight"] - before["head.weight"]).norm() / before["head.weight"].norm()
    assert head_drift > 0.5


# --------------------------------------------------------------------------- damp


@pytest.mark.parametrize("arch", ["resnet8", "vit"])
def test_damp_takes_no_gradient_step_and_shrinks_each_forget_component(arch, trained, class3_splits):
    model = trained.model if arch == "resnet8" else tiny_vit()
    before = states(model)
    result = unlearn(model, class3_splits, "damp", progress=False, forget_samples=64, retain_samples=256)
    out, details = result.model, result.record.details["damp"]
    assert result.cost.steps == 0 and result.cost.trainable_params == 0
    assert all(p.grad is None for p in out.parameters())
    edited = {layer["layer"] for layer in details["layers"]}
    weights = {f"{n}.in_proj_weight" if isinstance(out.get_submodule(n), nn.MultiheadAttention) else f"{n}.weight"
               for n in edited}
    assert "head" in edited and details["skipped_first"][0] not in edited  # the stem / patch embedding is kept
    after = out.state_dict()
    for name, value in before.items():
        statistics = name.endswith(("running_mean", "running_var", "num_batches_tracked"))
        if name not in weights and not statistics:  # biases, norms' affine parameters, embeddings: untouched
            assert torch.equal(value, after[name]), name
    scaled = [layer for layer in details["layers"] if layer["scale"] > 0 and layer["rank"] > 0]
    assert scaled and scaled[-1]["layer"] == "head"
    for layer in scaled:
        assert layer["component_after"] < layer["component_before"], layer
        assert layer["component_after"] == pytest.approx((1 - layer["scale"]) * layer["component_before"],
                                                         rel=1e-3, abs=1e-5)


def test_damp_edits_more_where_the_class_separates_better(trained, class3_splits):
    layers = unlearn(trained.model, class3_splits, "damp", progress=False).record.details["damp"]["layers"]
    scales = [layer["scale"] for layer in layers]
    assert scales[-1] > scales[0]  # the head more than the first block
    linear = unlearn(trained.model, class3_splits, "damp", progress=False, depth_scaling="linear").record.details["damp"]
    assert [layer["scale"] for layer in linear["layers"]] == pytest.approx(
        [i / len(layers) for i in range(1, len(layers) + 1)])


def test_damp_config_defaults_are_the_documented_ones():
    config = DampConfig()
    assert (config.subspace_rank, config.strength, config.depth_scaling, config.bn_recalibrate) == (2, 1.0, "separability", True)


# --------------------------------------------------------------------------- opc


def _feature_ratio(model: nn.Module, splits) -> float:
    """Mean squared norm of D_f's features at the head's input over D_r's."""
    store: list[torch.Tensor] = []
    handle = model.head.register_forward_pre_hook(lambda _m, args: store.append(args[0]))
    model.eval()
    with torch.no_grad():
        norms = []
        for dataset in (splits.forget, splits.retain):
            store.clear()
            model(torch.stack([dataset[i][0] for i in range(min(len(dataset), 256))]))
            norms.append(float(store[-1].pow(2).sum(1).mean()))
    handle.remove()
    return norms[0] / norms[1]


def test_opc_contracts_the_forget_sets_features(trained, class3_splits):
    out = unlearn(trained.model, class3_splits, "opc", progress=False, steps=20, batch_size=32).model
    assert _feature_ratio(out, class3_splits) < 0.5 * _feature_ratio(trained.model, class3_splits)


# --------------------------------------------------------------------------- cmf


def test_cmf_sets_the_head_to_the_retained_class_means(trained, class3_splits):
    result = unlearn(trained.model, class3_splits, "cmf", progress=False, steps=10, batch_size=32)
    out = result.model.eval()
    assert result.record.details["cmf"]["classes"] == [c for c in range(10) if c != 3]
    store: list[torch.Tensor] = []
    handle = out.head.register_forward_pre_hook(lambda _m, args: store.append(args[0]))
    images = torch.stack([class3_splits.retain[i][0] for i in range(256)])
    labels = torch.tensor([class3_splits.retain[i][1] for i in range(256)])
    with torch.no_grad():
        logits = out(images)
    handle.remove()
    features = store[-1]
    weight = out.head.weight
    assert bool((weight[3] != 0).any())  # the forgotten class keeps a live row (not a pruned one)
    kept = [c for c in range(10) if c != 3]
    # every retained row has one norm, the head is a cosine classifier: rows are directions only
    norms = weight[kept].norm(dim=1)
    assert torch.allclose(norms, norms[0].expand_as(norms), rtol=1e-4)
    # each retained row points at its class's mean feature far more than at any other class's
    means = torch.stack([features[labels == c].mean(0) for c in kept])
    cosine = torch.nn.functional.normalize(weight[kept], dim=1) @ torch.nn.functional.normalize(means, dim=1).T
    assert bool((cosine.argmax(dim=1) == torch.arange(len(kept))).all())
    assert bool((logits.argmax(dim=1) != 3).all())  # never predicted on retained data


# --------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("method", PEERS)
def test_the_cli_runs_each_peer(method, run_cli, checkpoint_dir, tmp_path):
    out = tmp_path / method
    options = ("--steps", "3") if method in TRAINS else ("--forget-samples", "64")
    code, stdout, stderr = run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-class", "3", "--out", out,
                                   "--no-progress", "--method", method, *options)
    assert code == 0, stderr
    meta = json.loads((out / META).read_text())
    assert meta["method"]["name"] == method and meta["forget"]["classes"] == [3]


def test_the_cli_refuses_damp_on_a_random_fraction_in_one_line(run_cli, checkpoint_dir, tmp_path):
    code, _, stderr = run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-fraction", "0.1", "--out",
                              tmp_path / "out", "--no-progress", "--method", "damp")
    assert code == 2
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr
    assert "does not support forgetting a random fraction" in lines[0] and "class-wise" in lines[0]
    assert not (tmp_path / "out").exists()
