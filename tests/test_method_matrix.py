"""The method contract, once, over every registered method (as peft runs every tuner through one table).

Each test below takes the `method` fixture, so it runs for every name in `list_methods()` and for
every method a test module registers in tests/extra_methods/ (see its docstring): a new method gets
the whole contract without a line of test code. What a test expects of a method is derived from
what the method declares (its `Capabilities`, its config's fields); the few numbers particular to
one method (SCRUB's steps per budget, SalUn's trainable half) are in the tables just below.

The contract: a declared config and capabilities; a plain `nn.Module` returned (no peft wrapper,
no parametrization, no hook left), in eval mode, with changed weights and a full record; the
caller's model untouched; seeded (same seed, same weights, whatever the global RNG); class- and
sample-wise forgetting; an empty forget set refused in one line or handled, as declared; bad
options refused in one line; and `prunelora unlearn --method NAME` on the digits checkpoint.
Budget: a few optimizer steps each, on resnet8 and a 2-block ViT, on digits.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from dataclasses import dataclass

import extra_methods
import pytest
import torch
from helpers import empty_forget, meta_json, one_error_line, tiny_vit
from torch import nn
from torch.nn.utils import parametrize

from prunelora.checkpoint import META, WEIGHTS
from prunelora.errors import InvalidInputError
from prunelora.methods import (
    Capabilities,
    MethodConfig,
    TrainingOptions,
    get_method,
    list_methods,
    unlearn,
)
from prunelora.methods import base as methods_base
from prunelora.methods.common import LoraOptions, PruneOptions
from prunelora.training import TrainConfig

TEST_METHODS = extra_methods.load()
METHODS = [*list_methods(), *TEST_METHODS]

STEPS = 2  # the optimizer-step budget given to every method that takes one

# --------------------------------------------------------------------------- what is particular to one method

# Optimizer steps a method takes for `steps=STEPS`, where that is not STEPS: SCRUB's budget bounds
# each of its passes (3 rounds of min steps plus 2 of max steps).
STEPS_TAKEN = {"scrub": 5 * STEPS}
# Trainable parameters as a function of the model's total, where the method says exactly: every
# weight, or SalUn's default mask of half of them. Otherwise: some (a method that trains) or none.
TRAINABLE = {**{name: (lambda total: total) for name in (
    "finetune", "ga", "l1-sparse", "neggrad-plus", "prune-finetune", "random-label", "retrain", "scrub")},
    "salun": lambda total: round(0.5 * total)}
# Methods whose training history is not one `fit` (whose last entry counts every step).
OWN_HISTORY = {"scrub"}

# On the ViT, LoRA and pruning take the paper's ViT targets (the last block's attention and MLP);
# attention takes no LoRA dropout (it is adapted as W + (alpha/r)·B@A).
VIT_LORA = {"lora_types": ("mha",), "lora_pattern": r"blocks\.{last}\.attn$", "lora_dropout": 0.0}
VIT_PRUNE = {"prune_types": ("mha", "linear"), "prune_pattern": r"blocks\.{last}\.(attn|mlp)"}
VIT_KWARGS = {"width": 0.25, "depth": 2}


@dataclass
class Original:
    """A model to unlearn from and the meta.json-like record a retrain rebuilds it from."""

    arch: str
    model: nn.Module
    meta: dict


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(params=METHODS)
def method(request, monkeypatch) -> str:
    """Every registered method by name; a test module's method is registered for this test only."""
    name = request.param
    if name in TEST_METHODS:
        monkeypatch.setitem(methods_base._METHODS, name, TEST_METHODS[name])
    return name


@pytest.fixture(scope="module")
def resnet_original(trained) -> Original:
    # the checkpoint's meta with a few-step recipe, so that a retrain is as quick as the others
    meta = {**trained.meta, "recipe": {**trained.meta["recipe"], "steps": STEPS}}
    return Original("resnet8", trained.model, meta)


@pytest.fixture(scope="module")
def vit_original() -> Original:
    model = tiny_vit(0, depth=VIT_KWARGS["depth"]).eval()
    meta = {"model": {"name": "vit-tiny", "num_classes": 10, "in_channels": 1, "image_size": 8,
                      "kwargs": dict(VIT_KWARGS)},
            "recipe": TrainConfig(steps=STEPS, optimizer="adamw", lr=1e-3).to_dict()}
    return Original("vit", model, meta)


@pytest.fixture(params=["resnet8", "vit"])
def original(request, resnet_original, vit_original) -> Original:
    """The trained resnet8 checkpoint, then a tiny randomly initialised ViT."""
    return resnet_original if request.param == "resnet8" else vit_original


# --------------------------------------------------------------------------- derived expectations


def config_fields(name: str) -> set[str]:
    return {f.name for f in dataclasses.fields(get_method(name).config_cls)}


def fast_options(name: str, arch: str = "resnet8") -> dict:
    """Options that make `name` take a few optimizer steps on `arch`."""
    caps = get_method(name).capabilities
    options: dict = {"steps": STEPS} if "steps" in config_fields(name) else {}
    if arch == "vit":
        options |= (VIT_LORA if caps.uses_lora else {}) | (VIT_PRUNE if caps.uses_pruning else {})
    return options


def steps_taken(name: str, recipe_steps: int = STEPS) -> int:
    caps = get_method(name).capabilities
    if caps.from_scratch:
        return recipe_steps
    return STEPS_TAKEN.get(name, STEPS) if caps.trains else 0


def seed_matters(name: str) -> bool:
    """A method that trains draws its data order (and more) from its seed; one that does not (SSD)
    draws nothing at random."""
    return get_method(name).capabilities.trains


def run(name: str, original: Original, splits, **options):
    return unlearn(original.model, splits, name, progress=False, original_meta=original.meta,
                   **{**fast_options(name, original.arch), **options})


def has_hooks(model: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
               for m in model.modules())


def one_line_refusal(call) -> str:
    with pytest.raises(InvalidInputError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


# --------------------------------------------------------------------------- the declaration


def test_declares_capabilities_that_match_its_config(method):
    entry = get_method(method)
    caps = entry.capabilities
    assert isinstance(caps, Capabilities)
    assert issubclass(entry.config_cls, MethodConfig)
    assert isinstance(entry.summary, str) and entry.summary
    # names are command-line values and folder names: lower case, digits and dashes
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", method), method
    # what the capabilities say is what the method is built from, never read off field names
    assert caps.uses_pruning == issubclass(entry.config_cls, PruneOptions)
    assert caps.uses_lora == issubclass(entry.config_cls, LoraOptions)
    assert (caps.trains and not caps.from_scratch) == issubclass(entry.config_cls, TrainingOptions)


def test_every_config_field_has_help_and_a_seed(method):
    config_cls = get_method(method).config_cls
    names = [f.name for f in dataclasses.fields(config_cls)]
    assert "seed" in names
    for f in dataclasses.fields(config_cls):
        assert isinstance(f.metadata.get("help"), str) and len(f.metadata["help"]) > 10, f.name
    config = get_method(method).make_config()
    assert config.to_dict() == {n: (list(v) if isinstance(v, tuple) else v)
                                for n, v in dataclasses.asdict(config).items()}


# --------------------------------------------------------------------------- one interface


def check_run(method: str, original: Original, result, caller_state: dict, options: dict, state_dicts_equal):
    model, out, record = original.model, result.model, result.to_dict()
    caps = get_method(method).capabilities

    # a plain model of the same architecture: no peft wrapper or layer, no mask parametrization, no hook
    assert type(out) is type(model)
    assert not any(type(m).__module__.startswith("peft") for m in out.modules())
    assert not any(parametrize.is_parametrized(m) for m in out.modules())
    assert not has_hooks(out)
    assert set(out.state_dict()) == set(model.state_dict())
    assert not out.training
    assert not state_dicts_equal(out.state_dict(), caller_state)  # it changed the weights
    # the caller's model is untouched
    assert state_dicts_equal(model.state_dict(), caller_state)
    assert not model.training
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert not has_hooks(model)

    config = get_method(method).make_config(**options)
    assert record["method"] == {"name": method, "config": config.to_dict()}
    cost = record["cost"]
    assert cost["wall_time_s"] > 0
    assert cost["peak_memory_mb"] > 0
    assert cost["steps"] == steps_taken(method)
    total = sum(p.numel() for p in model.parameters())
    trainable = cost["trainable_params"]
    assert isinstance(trainable, int) and 0 <= trainable <= total
    assert (trainable > 0) == caps.trains
    if caps.uses_lora:
        assert trainable < total / 2  # adapters and the head only
    if method in TRAINABLE:
        assert trainable == TRAINABLE[method](total)

    history = record["history"]
    assert isinstance(history, list)
    if caps.trains:
        assert history and all("loss" in h for h in history)
        if method not in OWN_HISTORY:
            assert history[-1]["steps"] == cost["steps"]

    sparsity = record["sparsity"]
    assert {"layers", "pruned_layers", "overall"} <= set(sparsity)
    if caps.uses_pruning:
        assert sparsity["layers"] and sparsity["overall"] > 0
        assert all(v["zero_channels"] == pytest.approx(config.prune_amount) for v in sparsity["layers"].values())
        assert record["pruning"]
    else:
        assert sparsity["layers"] == {} and sparsity["pruned_layers"] == 0.0
        assert "pruning" not in record


def batch_options(name: str) -> dict:
    # small batches, so that the seed's batch order matters even on the 137-sample forget set
    return {"batch_size": 32} if seed_matters(name) and "batch_size" in config_fields(name) else {}


# LoRA's A matrices and a retrain's initial weights are drawn after `unlearn` seeds everything, so
# the global RNG state before the call must not matter. One test, so that the first run is both
# the contract's run and the seed's reference (a third fewer runs).
def test_returns_a_plain_changed_model_and_is_seeded(method, original, class3_splits, state_dicts_equal):
    assert not original.model.training
    caller_state = copy.deepcopy(original.model.state_dict())
    options = batch_options(method)
    a = run(method, original, class3_splits, **options)
    check_run(method, original, a, caller_state, {**fast_options(method, original.arch), **options},
              state_dicts_equal)

    torch.manual_seed(123)  # the global RNG state must not matter
    b = run(method, original, class3_splits, **options)
    assert state_dicts_equal(a.model.state_dict(), b.model.state_dict())
    assert a.record.history == b.record.history
    assert a.sparsity == b.sparsity
    if seed_matters(method):
        c = run(method, original, class3_splits, **options, seed=1)
        assert not state_dicts_equal(a.model.state_dict(), c.model.state_dict())


def test_forgets_records_as_well_as_a_class(method, resnet_original, fraction_splits, state_dicts_equal):
    caller_state = copy.deepcopy(resnet_original.model.state_dict())
    result = run(method, resnet_original, fraction_splits)
    check_run(method, resnet_original, result, caller_state, fast_options(method), state_dicts_equal)


# --------------------------------------------------------------------------- validation


def test_an_empty_forget_set_is_refused_or_handled_as_declared(method, resnet_original, class3_splits):
    empty = empty_forget(class3_splits)
    if get_method(method).capabilities.needs_forget_samples:
        line = one_line_refusal(lambda: run(method, resnet_original, empty))
        assert f"{method!r} needs forget samples" in line
    else:
        assert run(method, resnet_original, empty).cost.steps == steps_taken(method)


def bad_options(name: str) -> list[tuple[dict, str]]:
    """(options, what the refusal must say) that every method of this kind refuses."""
    fields = config_fields(name)
    others = sorted(set().union(*(config_fields(m) for m in list_methods())) - fields)
    cases = [({"no_such_option": 1}, "'no_such_option'"), ({"seed": "zero"}, "seed")]
    if others:  # an option of another method is named, not ignored
        cases.append(({others[0]: 1}, f"'{others[0]}'"))
    caps = get_method(name).capabilities
    if caps.trains and not caps.from_scratch:
        cases += [({"steps": 0}, "steps 0"), ({"lr": 0.0}, "learning rate 0.0"), ({"bn_mode": "off"}, "bn_mode 'off'")]
    if caps.uses_pruning:
        cases += [({"prune_amount": a}, f"prune_amount {a}") for a in (0.0, 1.0, -0.5, 1.5)]
    if caps.uses_lora:
        cases += [({"lora_rank": r}, f"rank {r}") for r in (0, -1)]
    return cases


def test_bad_options_are_refused_in_one_line_naming_them(method, trained, class3_splits):
    for options, named in bad_options(method):
        line = one_line_refusal(lambda o=options: unlearn(trained.model, class3_splits, method, progress=False, **o))
        assert named in line, (options, line)
        line = one_line_refusal(lambda o=options: get_method(method).make_config(**o))
        assert named in line, (options, line)


def test_a_config_of_another_class_is_refused(method, trained, class3_splits):
    @dataclasses.dataclass
    class SomeOtherConfig(MethodConfig):
        pass

    line = one_line_refusal(lambda: unlearn(trained.model, class3_splits, method, SomeOtherConfig()))
    assert "SomeOtherConfig" in line and get_method(method).config_cls.__name__ in line


# --------------------------------------------------------------------------- the command line


def test_the_unlearn_command_runs_it_and_info_reads_its_checkpoint(method, run_cli, checkpoint_dir, tmp_path,
                                                                   snapshot):
    entry = get_method(method)
    takes_steps = "steps" in config_fields(method)
    unlearn_args = ("unlearn", "--checkpoint", checkpoint_dir, "--method", method, "--forget-class", "3",
                    "--no-progress")
    before = snapshot(checkpoint_dir)
    if not takes_steps:  # a budget the method does not take is refused, not ignored
        line = one_error_line(run_cli(*unlearn_args, "--steps", str(STEPS), "--out", tmp_path / "refused"), "unlearn")
        assert "--steps" in line and f"{method!r}" in line
        assert not (tmp_path / "refused").exists()

    out = tmp_path / method
    budget = ("--steps", str(STEPS)) if takes_steps else ()
    code, stdout, stderr = run_cli(*unlearn_args, *budget, "--out", out)
    assert code == 0, stderr
    assert stderr == ""
    kind = "retrain" if entry.capabilities.from_scratch else "unlearned"
    assert stdout.startswith(f"{kind}:") and str(out) in stdout
    assert {WEIGHTS, META} <= {p.name for p in out.iterdir()}
    assert snapshot(checkpoint_dir) == before  # the original is untouched

    code, info_json, stderr = run_cli("info", out, "--json")
    assert code == 0, stderr
    meta = json.loads(info_json)
    assert meta == meta_json(out)
    assert meta["kind"] == kind
    assert meta["method"]["name"] == method
    config = meta["method"]["config"]
    assert config["seed"] == 0
    if takes_steps:
        assert config["steps"] == STEPS
    assert meta["forget"]["kind"] == "class" and meta["forget"]["classes"] == [3]
    assert meta["original"]["run_id"] == meta_json(checkpoint_dir)["run_id"]
    cost = meta["cost"]
    assert cost["wall_time_s"] > 0 and cost["peak_memory_mb"] > 0
    assert (cost["trainable_params"] > 0) == entry.capabilities.trains
    if entry.capabilities.from_scratch:  # the checkpoint's own recipe
        assert cost["steps"] > 0
    else:
        assert cost["steps"] == steps_taken(method)
    assert {"layers", "pruned_layers", "overall"} <= set(meta["sparsity"])
    if entry.capabilities.uses_pruning:
        assert meta["sparsity"]["pruned_layers"] == pytest.approx(config["prune_amount"])
    assert {"RA", "UA", "TA", "FA", "val"} <= set(meta["metrics"])

    code, table, stderr = run_cli("info", out)
    assert code == 0, stderr
    assert method in table and "sparsity" in table


# --------------------------------------------------------------------------- the matrix itself


def test_test_methods_stay_out_of_the_registry(run_cli):
    assert TEST_METHODS  # tests/extra_methods/ registers at least one
    assert not set(TEST_METHODS) & set(list_methods())
    code, stdout, stderr = run_cli("methods")
    assert code == 0, stderr
    listed = {line.split()[0] for line in stdout.splitlines() if line.strip()}
    assert set(list_methods()) <= listed and not set(TEST_METHODS) & listed


class _Collected:
    """A pytest plugin that keeps the items a session collected."""

    def __init__(self) -> None:
        self.items: list[pytest.Item] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = list(session.items)


def test_a_method_registered_by_a_test_module_gets_the_whole_matrix():
    """tests/extra_methods/noisy_finetune.py registers a method and writes no test: this file,
    collected in a session of its own, runs every matrix test on it (and this session runs them)."""
    from extra_methods.noisy_finetune import NAME

    plugin = _Collected()
    code = pytest.main([__file__, "--collect-only", "-q", "-m", "", "-p", "no:cacheprovider"], plugins=[plugin])
    assert code == 0
    # every test of this file that takes `method`
    matrix = {name for name, fn in globals().items() if name.startswith("test_") and callable(fn)
              and "method" in fn.__code__.co_varnames[:fn.__code__.co_argcount]}
    assert len(matrix) >= 8
    on_it = {item.originalname for item in plugin.items
             if getattr(item, "callspec", None) and item.callspec.params.get("method") == NAME}
    assert on_it == matrix
    # ... as on a shipped method
    assert {item.originalname for item in plugin.items
            if getattr(item, "callspec", None) and item.callspec.params.get("method") == "finetune"} == matrix
