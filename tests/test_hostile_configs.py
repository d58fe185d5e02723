"""Hostile configuration files: YAML aliases, bench fields of the wrong type or range, unsafe names,
presets outside configs/, and files that name code to run.

Every refusal is one line (exit 2 from the CLI) naming the field, bounded in length, with nothing
written; nothing a file says makes prunelora import code or write outside --out.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from helpers import one_error_line, tiny_bench, write_yaml

from prunelora.bench import BenchConfig
from prunelora.errors import InvalidInputError, PruneLoRAError
from prunelora.presets import CONFIG_DIR, load_yaml_text, read_yaml_mapping, shipped_presets

# A "billion laughs": 9 levels of 9 aliases, under 500 bytes, 9^9 (387 million) items once expanded.
BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 9))
# The same shape, small: harmless even where aliases are expanded (to tell refusal from acceptance).
SMALL_ALIAS = "x: &a [1, 2]\ny: *a\n"


# --------------------------------------------------------------------------- YAML aliases


def test_a_300_byte_alias_bomb_is_refused_at_once_by_the_reader(tmp_path):
    assert len(BOMB) < 500
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    start = time.perf_counter()
    with pytest.raises(InvalidInputError, match="alias") as info:
        read_yaml_mapping(path, "--config")
    # (a bound far above the microseconds it takes: expanding would take minutes and gigabytes)
    assert time.perf_counter() - start < 1.0
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_a_bomb_in_a_bench_config_never_reaches_the_identity(tmp_path):
    """The bomb under `note` (a field nothing expanded on 03ec8ab but the report) and under `model_kwargs`
    (expanded by `run_id`'s json.dumps): refused while the text is read."""
    for key in ("note", "model_kwargs"):
        text = yaml.safe_dump(tiny_bench()) + BOMB.replace("a8: &a8", f"{key}: &a8")
        path = tmp_path / f"bomb-{key}.yaml"
        path.write_text(text)
        with pytest.raises(InvalidInputError, match="alias"):
            BenchConfig.from_file(path)


def _alias_config(tmp: Path) -> Path:
    return Path(write_text(tmp / "alias.yaml", "epochs: &e 1\nlr: *e\n"))


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# Every place a YAML text enters prunelora, each with an alias: (argv builder, where).
ALIAS_SURFACES = {
    "bench-config": lambda tmp: ["bench", "--config", write_text(tmp / "b.yaml", yaml.safe_dump(tiny_bench())
                                                                  + "note: &n hello\nbogus: *n\n"),
                                 "--out", tmp / "out"],
    "options-config": lambda tmp: ["train", "--model", "resnet8", "--config", _alias_config(tmp), "--out", tmp / "out"],
    "model-arg": lambda tmp: ["train", "--model", "resnet8", "--model-arg", "width=[&w 1, *w]", "--out", tmp / "out"],
}


@pytest.mark.parametrize("surface", list(ALIAS_SURFACES))
def test_yaml_aliases_are_refused_in_every_reader(surface, tmp_path, run_cli):
    argv = ALIAS_SURFACES[surface](tmp_path)
    line = one_error_line(run_cli(*argv))
    assert "alias" in line
    assert not (tmp_path / "out").exists()


def test_the_loader_refuses_aliases_in_plain_text_and_keeps_everything_else():
    with pytest.raises(InvalidInputError, match=r"aliases \(\*a\) are not accepted"):
        load_yaml_text(SMALL_ALIAS, "x")
    assert load_yaml_text("a: &anchor [1, 2]\nb: 3\n", "x") == {"a": [1, 2], "b": 3}  # an anchor alone is harmless


def test_an_integer_too_long_for_python_is_one_line(tmp_path):
    path = write_text(tmp_path / "huge.yaml", "seeds: [" + "9" * 5000 + "]\n")
    with pytest.raises(PruneLoRAError) as info:
        BenchConfig.from_file(path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


# --------------------------------------------------------------------------- bench config fields


def _with(**changes):
    def build():
        data = tiny_bench()
        data.update(changes)
        return data
    return build


def _scenario(**fields):
    return _with(scenarios=[{"name": "class3", "forget_class": 3, **fields}])


# case -> (config builder, words the one line must hold)
FIELD_CASES = {
    "dataset-a-number": (_with(dataset=123), ["dataset", "123"]),
    "model-a-number": (_with(model=123), ["model", "123"]),
    "val-fraction-a-string": (_with(val_fraction="0.1"), ["val_fraction", "'0.1'"]),
    "val-fraction-nan": (_with(val_fraction=float("nan")), ["val_fraction", "nan"]),
    "note-a-number": (_with(note=123), ["note", "123"]),
    "name-a-list": (_with(name=[1]), ["name", "[1]"]),
    "scenario-named-3": (_scenario(name=3), ["scenarios[0].name", "3", "quote"]),
    "scenario-named-dotdot": (_scenario(name="../../x"), ["'../../x'", "safe name"]),
    "scenario-named-absolute": (_scenario(name="/tmp/x"), ["'/tmp/x'", "safe name"]),
    "scenario-named-dots": (_scenario(name=".."), ["'..'", "safe name"]),
    "scenario-with-separator": (_scenario(name="a/b"), ["'a/b'", "safe name"]),
    "scenario-forget-seed-huge": (_with(scenarios=[{"name": "r", "forget_fraction": 0.1, "forget_seed": 2**63}]),
                                  ["forget_seed", "2^63"]),
    "scenarios-empty": (_with(scenarios=[]), ["scenarios", "non-empty"]),
    "seeds-true": (_with(seeds=[True]), ["seeds[0]", "True"]),
    "seeds-2-63": (_with(seeds=[2**63]), ["seeds[0]", "2^63"]),
    "seeds-negative": (_with(seeds=[-1]), ["seeds[0]", "-1"]),
    "seeds-1001": (_with(seeds=list(range(1001))), ["seeds", "1,001", "1,000"]),
    "retrain-seeds-true": (_with(retrain_seeds=[True]), ["retrain_seeds[0]"]),
    "train-seed-2-64": (_with(train={"steps": 2, "seed": 2**64}), ["train.seed", "2^63"]),
    "train-subset-seed-huge": (_with(train_subset={"size": 100, "seed": 2**63}), ["train_subset.seed"]),
    "probe-seed-2-32": (_with(probe={"seed": 2**32}), ["probe.seed", "2^32"]),
    "mia-seed-negative": (_with(mia={"attacks": ["confidence-svc"], "seed": -1}), ["mia.seed"]),
    "mia-max-samples-true": (_with(mia={"attacks": ["confidence-svc"], "max_samples": True}), ["max_samples"]),
    "huge-value-shown-bounded": (_with(val_fraction="x" * 100_000), ["val_fraction", "..."]),
}


@pytest.mark.parametrize("case", list(FIELD_CASES))
def test_a_bench_field_of_the_wrong_type_or_range_is_one_line_naming_it(case):
    build, words = FIELD_CASES[case]
    with pytest.raises(InvalidInputError) as info:
        BenchConfig.from_dict(build(), "b.yaml")
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    for word in words:
        assert word in message, message


def test_the_shipped_bench_configs_still_pass_the_schema():
    for name in ("demo-digits", "fashion-mnist-resnet20"):
        BenchConfig.from_file(CONFIG_DIR / f"{name}.yaml").plan()


@pytest.mark.parametrize("case", ["scenario-named-dotdot", "scenario-named-absolute", "scenario-named-3",
                                  "seeds-true", "scenarios-empty", "val-fraction-a-string"])
def test_the_bench_command_refuses_them_before_writing_anything(case, tmp_path, run_cli, snapshot):
    build, words = FIELD_CASES[case]
    config = write_yaml(tmp_path / "b.yaml", build())
    before = snapshot(tmp_path)
    # (--out two levels down: `../../x` from its cells/ or cache/ would still land under tmp_path)
    line = one_error_line(run_cli("bench", "--config", config, "--out", tmp_path / "a" / "b" / "out"), "bench")
    assert words[0] in line
    assert snapshot(tmp_path) == before  # nothing under --out, nor beside or above it
    assert not (tmp_path / "a").exists()


def test_seeds_on_the_command_line_are_ascii_integers_in_range(tmp_path, run_cli):
    config = write_yaml(tmp_path / "b.yaml", tiny_bench())
    for seeds in ("1_0", "٣", "9223372036854775808", "-1"):
        line = one_error_line(run_cli("bench", "--config", config, "--out", tmp_path / "out", "--seeds", seeds),
                              "bench")
        assert "--seeds" in line or "seeds[0]" in line, line
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- presets and factories


def _outside_preset(tmp_path: Path) -> tuple[str, str]:
    """A YAML outside configs/ and two names reaching it from there: relative and absolute."""
    evil = write_text(tmp_path / "evil.yaml", "bogus-key-read: 1\n")
    return os.path.relpath(evil.with_suffix(""), CONFIG_DIR), str(evil.with_suffix(""))


@pytest.mark.parametrize("form", ["relative", "absolute"])
def test_preset_names_only_a_shipped_preset(form, tmp_path, run_cli, checkpoint_dir):
    name = _outside_preset(tmp_path)[form == "absolute"]
    line = one_error_line(run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-class", "3", "--preset",
                                  name, "--out", tmp_path / "out"), "unlearn")
    assert "unknown preset" in line and "bogus-key-read" not in line
    assert "prunelora-digits-resnet" in line  # the shipped ones are listed
    assert not (tmp_path / "out").exists()


def test_a_bench_method_preset_names_only_a_shipped_preset(tmp_path):
    evil = write_text(tmp_path / "evil.yaml", "method: prunelora\nbogus_option_read: 1\n")
    for name in (os.path.relpath(evil.with_suffix(""), CONFIG_DIR), str(evil.with_suffix(""))):
        data = tiny_bench(methods={"retrain": {}, "prunelora": {"preset": name}})
        with pytest.raises(InvalidInputError, match="unknown preset") as info:
            BenchConfig.from_dict(data, "b.yaml")
        assert "bogus_option_read" not in str(info.value) and "prunelora-digits-resnet" in str(info.value)


def test_every_shipped_preset_is_accepted_by_name():
    assert "prunelora-digits-resnet" in shipped_presets()
    for name in shipped_presets():
        assert read_yaml_mapping(CONFIG_DIR / f"{name}.yaml", "preset") is not None


FACTORY = "import pathlib\npathlib.Path({marker!r}).write_text('imported')\ndef make(n, c, s):\n    raise SystemExit\n"


@pytest.mark.parametrize("key", ["model-factory", "dataset_factory"])
def test_a_config_file_naming_a_factory_is_refused_and_the_factory_never_imported(key, tmp_path, run_cli):
    marker = tmp_path / "imported.txt"
    code = write_text(tmp_path / "evil_factory.py", FACTORY.format(marker=str(marker)))
    config = write_text(tmp_path / "c.yaml", f"{key}: {code}:make\nsteps: 1\n")
    line = one_error_line(run_cli("train", "--model", "resnet8", "--config", config, "--out", tmp_path / "out"),
                          "train")
    assert f"{key} is refused" in line and "runs code" in line
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_a_factory_in_a_config_file_yields_to_the_command_lines(tmp_path, run_cli):
    """Named on the command line too, the command line's factory is the one loaded; the file's never is
    (the run then stops at its missing checkpoint, after the factories are loaded)."""
    marker = tmp_path / "imported.txt"
    evil = write_text(tmp_path / "evil_factory.py", FACTORY.format(marker=str(marker)))
    mine = write_text(tmp_path / "my_factory.py", "from prunelora.models import create_model\n"
                      "def make(n, c, s):\n    return create_model('resnet8', n, c, s)\n")
    config = write_text(tmp_path / "c.yaml", f"model-factory: {evil}:make\n")
    line = one_error_line(run_cli("unlearn", "--checkpoint", tmp_path / "missing", "--forget-class", "3",
                                  "--config", config, "--model-factory", f"{mine}:make", "--out", tmp_path / "out"),
                          "unlearn")
    assert "missing" in line and "is refused" not in line
    assert not marker.exists()


# --------------------------------------------------------------------------- bounded messages


def test_a_huge_value_in_an_options_config_is_shown_bounded(tmp_path, run_cli):
    config = write_text(tmp_path / "c.yaml", "epochs: [" + ", ".join(["1"] * 20_000) + "]\n")
    line = one_error_line(run_cli("train", "--model", "resnet8", "--config", config, "--out", tmp_path / "out"),
                          "train")
    assert "epochs" in line and len(line) < 500


def test_the_noise_floor_seed_stays_in_range():
    from prunelora.bench.config import BenchPlan

    def floor(seeds):
        return BenchPlan.floor_seeds.fget(SimpleNamespace(retrain_seeds=tuple(seeds), noise_floor=True))

    assert floor([4]) == (4, 5)
    assert floor([2**63 - 1]) == (2**63 - 1, 2**63 - 2)
    assert floor([1, 2]) == (1, 2)
