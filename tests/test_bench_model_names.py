"""A bench config's model name is judged by the model registry, as `prunelora train --model` is."""

from __future__ import annotations

import pytest
from helpers import one_error_line, write_yaml

from prunelora.bench import BenchConfig
from prunelora.errors import InvalidInputError


@pytest.mark.parametrize("name", ["resnet8", "vit-tiny", "torchvision:resnet18", "timm:resnet18"])
def test_every_name_the_registry_builds_is_accepted(name):
    if name.startswith("timm:"):
        pytest.importorskip("timm")
    assert BenchConfig.from_dict({"model": name}).model == name


@pytest.mark.parametrize("name", ["resnet-nine", "torchvision:not_a_net", "timm:not_a_net"])
def test_a_refused_name_gets_the_message_of_train(run_cli, tmp_path, name):
    if name.startswith("timm:"):
        pytest.importorskip("timm")
    config = write_yaml(tmp_path / "bench.yaml", {"model": name})
    bench = one_error_line(run_cli("bench", "--config", config, "--out", tmp_path / "out"), "bench")
    train = one_error_line(run_cli("train", "--dataset", "digits", "--model", name, "--out", tmp_path / "t"),
                           "train")
    assert bench.removeprefix("prunelora bench: ") == train.removeprefix("prunelora train: ")
    assert repr(name.split(":")[-1]) in bench
    assert not (tmp_path / "out").exists() and not (tmp_path / "t").exists()


def test_a_name_that_is_not_text_is_refused():
    with pytest.raises(InvalidInputError, match="must be a non-empty string"):
        BenchConfig.from_dict({"model": 8})
