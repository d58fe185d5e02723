"""The methods' shared machinery: the declared capabilities of the shipped methods, registration
checks, one typed record, one validator per option group, distinct option names, and a package
that registers every method module it holds. What every method must do is
tests/test_method_matrix.py."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import pytest
import torch
from helpers import one_error_line

import prunelora.methods as methods_pkg
from prunelora.adapters import LoraSettings, lora_targets
from prunelora.errors import InvalidInputError
from prunelora.methods import (
    Capabilities,
    MethodRecord,
    PruningChoice,
    TrainingOptions,
    get_method,
    list_methods,
    register_method,
    unlearn,
)
from prunelora.methods import base as methods_base
from prunelora.models import create_model
from prunelora.pruning import LnImportance, PruneSettings, physical_prune, plan_structured, prune
from prunelora.pruning.criteria import make_criterion

# --------------------------------------------------------------------------- capabilities


def test_the_declared_capabilities_of_the_methods():
    table = {name: dataclasses.astuple(get_method(name).capabilities) for name in list_methods()}
    every = ("class", "fraction", "indices")
    # (needs_forget_samples, trains, uses_pruning, uses_lora, from_scratch, forget_kinds)
    assert table == {
        "cf-k": (False, True, False, False, False, every),
        "cmf": (True, True, False, False, False, every),
        "damp": (True, False, False, False, False, ("class",)),
        "eu-k": (False, True, False, False, False, every),
        "finetune": (False, True, False, False, False, every),
        "ga": (True, True, False, False, False, every),
        "l1-sparse": (False, True, False, False, False, every),
        "lora": (False, True, False, True, False, every),
        "neggrad-plus": (True, True, False, False, False, every),
        "opc": (True, True, False, False, False, every),
        "prune-finetune": (False, True, True, False, False, every),
        "prunelora": (False, True, True, True, False, every),
        "prunelora-deep": (True, True, False, False, False, every),  # its subspace adapters are always merged
        "random-label": (True, True, False, False, False, every),
        "retrain": (False, True, False, False, True, every),
        "salun": (True, True, False, False, False, every),
        "scrub": (True, True, False, False, False, every),
        "ssd": (True, False, False, False, False, every),
    }


def test_a_method_must_declare_its_capabilities_and_they_must_fit_its_config():
    @dataclasses.dataclass
    class Options(TrainingOptions):
        pass

    def run(model, splits, config, ctx):
        raise AssertionError("never run")

    with pytest.raises(TypeError, match="capabilities"):
        register_method("undeclared", Options, "test")(run)
    wrong = Capabilities(needs_forget_samples=False, trains=False, uses_pruning=False, uses_lora=False,
                         from_scratch=False)
    with pytest.raises(TypeError, match="TrainingOptions"):
        register_method("inconsistent", Options, "test", capabilities=wrong)(run)
    assert "undeclared" not in list_methods() and "inconsistent" not in list_methods()


def test_the_package_imports_every_module_that_registers_a_method():
    registered = set(list_methods())
    for info in pkgutil.iter_modules(methods_pkg.__path__):
        importlib.import_module(f"prunelora.methods.{info.name}")
    assert set(list_methods()) == registered  # no method module was left out of the package's list


def test_save_adapter_follows_the_declared_capability(checkpoint_dir, tmp_path):
    from prunelora.api import unlearn_checkpoint
    from prunelora.data import ForgetSpec

    with pytest.raises(InvalidInputError, match="'finetune' trains no adapter"):
        unlearn_checkpoint(checkpoint_dir, ForgetSpec.from_classes(3), "finetune", save_adapter=tmp_path / "a")
    assert not (tmp_path / "a").exists()


# --------------------------------------------------------------------------- configs


def test_a_changed_default_keeps_the_shared_help():
    from prunelora.methods.finetune import FinetuneConfig
    from prunelora.methods.ga import GradientAscentConfig

    ga = {f.name: f for f in dataclasses.fields(GradientAscentConfig)}
    ft = {f.name: f for f in dataclasses.fields(FinetuneConfig)}
    assert ga["lr"].default == 1e-4 and ft["lr"].default == 1e-3
    assert ga["lr"].metadata["help"] == ft["lr"].metadata["help"]


# --------------------------------------------------------------------------- distinct names


def test_alpha_and_gamma_have_one_name_per_meaning():
    options = {name: {f.name for f in dataclasses.fields(get_method(name).config_cls)} for name in list_methods()}
    assert not any({"alpha", "gamma"} & fields for fields in options.values())
    assert "neggrad_alpha" in options["neggrad-plus"] and "neggrad_alpha" in options["prunelora"]
    assert {"scrub_alpha", "scrub_gamma"} <= options["scrub"] and "l1_gamma" in options["l1-sparse"]


# --------------------------------------------------------------------------- one validator each

BAD_PRUNING = {
    "amount": ({"amount": 1.5}, "prune_amount 1.5 is outside (0, 1)"),
    "norm": ({"norm": 3}, "prune_norm 3 is not 1 or 2"),
    "scope": ({"scope": "sideways"}, "prune_scope 'sideways' is not 'layer' or 'global'"),
    "types": ({"types": ("bogus",)}, "prune_types 'bogus' is not one of conv, linear, mha"),
}


def _model():
    torch.manual_seed(0)
    return create_model("resnet8", 10, 1, 8)


EXAMPLE = torch.zeros(1, 1, 8, 8)


def _prune_call(entry: str, bad: dict):
    s = {"amount": 0.5, "norm": 2, "scope": "layer", "types": ("conv",), **bad}
    if entry == "PruneSettings":
        return lambda: PruneSettings(**s)
    if entry == "prune":
        return lambda: prune(_model(), s["amount"], norm=s["norm"], scope=s["scope"], types=s["types"],
                             example_inputs=EXAMPLE)
    if entry == "prune weights-only":
        return lambda: prune(_model(), s["amount"], norm=s["norm"], scope=s["scope"], types=s["types"],
                             targets="weights-only")
    if entry == "physical_prune":
        return lambda: physical_prune(_model(), s["amount"], norm=s["norm"], scope=s["scope"], types=s["types"],
                                      example_inputs=EXAMPLE)
    if entry == "plan_structured":
        return lambda: plan_structured(_model(), s["amount"], norm=s["norm"], scope=s["scope"], types=s["types"],
                                       example_inputs=EXAMPLE)
    method = {"method prune-finetune": "prune-finetune", "method prunelora": "prunelora"}[entry]
    return lambda: get_method(method).make_config(prune_amount=s["amount"], prune_norm=s["norm"],
                                                  prune_scope=s["scope"], prune_types=",".join(s["types"]))


@pytest.mark.parametrize("setting", list(BAD_PRUNING))
@pytest.mark.parametrize("entry", ["PruneSettings", "prune", "prune weights-only", "physical_prune",
                                   "plan_structured", "method prune-finetune", "method prunelora"])
def test_a_bad_pruning_setting_gets_the_same_line_from_every_entry_point(entry, setting):
    bad, message = BAD_PRUNING[setting]
    if entry == "prune weights-only" and setting == "scope":  # weights-only is per layer: refused otherwise
        message = "prune_scope 'sideways'"
    with pytest.raises(InvalidInputError) as info:
        _prune_call(entry, bad)()
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_the_importances_check_their_norm_in_the_same_place():
    for make in (LnImportance, lambda n: make_criterion("l2", n)):
        with pytest.raises(InvalidInputError) as info:
            make(3)
        assert str(info.value) == BAD_PRUNING["norm"][1]


BAD_LORA = {
    "rank": ({"rank": 0}, "lora_rank 0 must be >= 1"),
    "alpha": ({"alpha": -1.0}, "lora_alpha -1.0 must be > 0"),
    "dropout": ({"dropout": 1.0}, "lora_dropout 1.0 is outside [0, 1)"),
    "types": ({"types": ("attention",)}, "lora_types 'attention' is not one of conv, linear, mha"),
    "backend": ({"backend": "fast"}, "lora_backend 'fast' is not one of peft, weight"),
}


@pytest.mark.parametrize("setting", list(BAD_LORA))
@pytest.mark.parametrize("entry", ["LoraSettings", "method lora", "method prunelora"])
def test_a_bad_lora_setting_gets_the_same_line_from_every_entry_point(entry, setting):
    bad, message = BAD_LORA[setting]
    with pytest.raises(InvalidInputError) as info:
        if entry == "LoraSettings":
            LoraSettings(**bad)
        else:
            options = {f"lora_{k}": (",".join(v) if k == "types" else v) for k, v in bad.items()}
            get_method(entry.split()[1]).make_config(**options)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_lora_targets_check_the_layer_types_like_the_settings():
    with pytest.raises(InvalidInputError) as info:
        lora_targets(_model(), ("attention",), None)
    assert str(info.value) == BAD_LORA["types"][1]


def test_the_cli_refuses_a_bad_pruning_norm_with_the_validators_line(run_cli, checkpoint_dir, tmp_path):
    line = one_error_line(run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-class", "3", "--method",
                                  "prunelora", "--prune-norm", "3", "--out", tmp_path / "out", "--no-progress"),
                          "unlearn")
    assert line.endswith(BAD_PRUNING["norm"][1])
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the record


def test_method_record_round_trips_through_its_json():
    record = MethodRecord(trainable_params=12, steps=3, history=[{"epoch": 1, "steps": 3, "loss": 0.5}],
                          pruning=PruningChoice("l2", "layer", 0.5),
                          details={"ssd": {"selected_params": 4}})
    data = record.to_dict()
    assert data == {"cost": {"trainable_params": 12, "steps": 3}, "history": [{"epoch": 1, "steps": 3, "loss": 0.5}],
                    "pruning": {"criterion": "l2", "scope": "layer", "amount": 0.5}, "ssd": {"selected_params": 4}}
    assert MethodRecord.from_dict(data) == record
    bare = MethodRecord(0, 0)
    assert bare.to_dict() == {"cost": {"trainable_params": 0, "steps": 0}, "history": []}
    assert MethodRecord.from_dict(bare.to_dict()) == bare
    with pytest.raises(ValueError, match="'cost'"):
        MethodRecord(0, 0, details={"cost": 1})


@pytest.mark.parametrize("method,own", [("ssd", {"ssd"}), ("prune-finetune", {"pruning"}), ("finetune", set())])
def test_the_run_record_is_the_method_record_plus_the_runs_cost(method, own, trained, class3_splits):
    result = unlearn(trained.model, class3_splits, method, progress=False,
                     **({} if method == "ssd" else {"steps": 1}))
    record = result.to_dict()
    assert set(record) == {"method", "cost", "sparsity", "history", "classifier"} | own
    assert set(record["cost"]) == {"wall_time_s", "peak_memory_mb", "trainable_params", "steps"}
    part = {k: v for k, v in record.items() if k not in ("method", "sparsity")}
    part["cost"] = {k: record["cost"][k] for k in ("trainable_params", "steps")}
    assert MethodRecord.from_dict(part).to_dict() == part


def test_a_method_that_returns_no_method_record_is_refused(trained, class3_splits, monkeypatch):
    def plain_dict(model, splits, config, ctx):
        return model, {"cost": {"trainable_params": 0, "steps": 0}, "history": []}

    ssd = get_method("ssd")
    monkeypatch.setitem(methods_base._METHODS, "plain", dataclasses.replace(ssd, name="plain", run=plain_dict))
    with pytest.raises(TypeError, match="'plain' returned a dict, not a MethodRecord"):
        unlearn(trained.model, class3_splits, "plain", progress=False)
