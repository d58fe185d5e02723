"""Each option is declared once: a method's `prune_*`, `lora_*` and recipe options are generated
from the fields of `PruneSettings`, `LoraSettings` and `TrainConfig` (type, default, help), and
turn back into them unchanged."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from prunelora.adapters import LoraSettings
from prunelora.methods import get_method
from prunelora.methods.base import RECIPE_OPTIONS, TrainingOptions
from prunelora.methods.common import LoraOptions, PruneOptions
from prunelora.pruning import PruneSettings
from prunelora.training import TrainConfig

SOURCES = [(PruneOptions, PruneSettings, PruneSettings.OPTION_NAMES, {}),
           (LoraOptions, LoraSettings, LoraSettings.OPTION_NAMES, {}),
           (TrainingOptions, TrainConfig, RECIPE_OPTIONS, {"epochs", "lr", "steps"})]  # their own help


@pytest.mark.parametrize("options,source,names,own_help", SOURCES)
def test_option_fields_are_the_sources_fields(options, source, names, own_help):
    mine = {f.name: f for f in dataclasses.fields(options)}
    hints, source_hints = typing.get_type_hints(options), typing.get_type_hints(source)
    for f in dataclasses.fields(source):
        if f.name not in names:
            continue
        option = mine[names[f.name]]
        assert hints[option.name] == source_hints[f.name]
        if f.name not in own_help:
            assert option.metadata["help"] == f.metadata["help"]
        if source is not TrainConfig:  # a method's recipe has the paper's defaults, not `train`'s
            assert option.default == f.default
    assert set(names) <= {f.name for f in dataclasses.fields(source)}


def test_the_settings_are_built_from_the_options_as_set():
    config = get_method("prunelora").make_config(
        prune_amount=0.3, prune_norm=1, prune_types="conv,linear", prune_pattern="layers", prune_criterion="tfidf",
        prune_retain_samples=64, prune_forget_accuracy=20.0, prune_mode="physical", bn_recalibrate=False,
        lora_rank=4, lora_alpha=8.0, lora_dropout=0.0, lora_types="conv", lora_pattern="layers",
        lora_backend="weight", train_head=False, epochs=2, lr=0.01, optimizer="sgd", seed=7)
    assert config.prune_settings() == PruneSettings(
        amount=0.3, norm=1, types=("conv", "linear"), pattern="layers", criterion="tfidf", retain_samples=64,
        forget_accuracy=20.0, mode="physical")
    assert config.lora_settings() == LoraSettings(rank=4, alpha=8.0, dropout=0.0, types=("conv",), pattern="layers",
                                                  backend="weight", train_head=False)
    assert config.train_config() == TrainConfig(epochs=2, lr=0.01, optimizer="sgd", momentum=0.9, weight_decay=0.0,
                                                schedule="constant", seed=7)


def test_the_flags_carry_the_settings_help(run_cli):
    code, out, _ = run_cli("unlearn", "--method", "prunelora", "--help")
    assert code == 0
    words = " ".join(out.split())
    for f in dataclasses.fields(PruneSettings):
        flag = "--" + PruneSettings.OPTION_NAMES[f.name].replace("_", "-")
        assert flag in words
    assert "order of the Ln norm that scores channels: 1 or 2" in words
    assert " ".join(dict((f.name, f) for f in dataclasses.fields(LoraSettings))["rank"].metadata["help"].split()) in words


def test_a_flag_that_methods_mean_differently_shows_each_meaning_with_its_methods(run_cli):
    # damp and prunelora-deep both take --depth-scaling, with different choices: the help says both
    code, out, _ = run_cli("unlearn", "--help")
    assert code == 0
    words = " ".join(out.split())
    damp = " ".join(dict((f.name, f) for f in dataclasses.fields(get_method("damp").config_cls))
                    ["depth_scaling"].metadata["help"].split())
    deep = " ".join(dict((f.name, f) for f in dataclasses.fields(get_method("prunelora-deep").config_cls))
                    ["depth_scaling"].metadata["help"].split())
    assert f"damp: {damp}" in words
    assert f"prunelora-deep: {deep}" in words
