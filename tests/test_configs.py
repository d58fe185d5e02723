"""Every shipped YAML in src/prunelora/configs validates against the code that reads it, and bench
configurations with an unknown key anywhere are refused with the key's name."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from prunelora.bench import BenchConfig
from prunelora.cli.app import apply_config_file, build_parser
from prunelora.errors import InvalidInputError, MissingFileError
from prunelora.evaluation.attacks import default_attacks, list_attacks
from prunelora.methods import get_method, list_methods
from prunelora.presets import CONFIG_DIR, preset_path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))
BENCH_KEYS = {"scenarios"}  # what makes a YAML a bench configuration
PRESET_KEYS = {"method"}  # what makes a YAML a method preset


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name} is not a mapping"
    return data


def _kind(data: dict) -> str | None:
    is_bench, is_preset = bool(BENCH_KEYS & set(data)), bool(PRESET_KEYS & set(data))
    if is_bench == is_preset:  # neither, or both: nothing reads such a file
        return None
    return "bench" if is_bench else "preset"


BENCHES = [p for p in SHIPPED if _kind(_load(p)) == "bench"]
PRESETS = [p for p in SHIPPED if _kind(_load(p)) == "preset"]


def test_there_are_shipped_configs_of_both_kinds():
    assert SHIPPED, f"no YAML found in {CONFIG_DIR}"
    assert any(p.stem == "demo-digits" for p in BENCHES)
    assert len(BENCHES) >= 2 and len(PRESETS) >= 2


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_yaml_is_a_bench_config_or_a_method_preset(path):
    """A new YAML that is neither (or both) has nothing that validates it: add its kind here."""
    data = _load(path)
    assert _kind(data) is not None, (
        f"{path.name} is neither a bench config (has {sorted(BENCH_KEYS)}) nor a method preset "
        f"(has {sorted(PRESET_KEYS)}), or is both; teach tests/test_configs.py its kind"
    )


@pytest.mark.parametrize("path", BENCHES, ids=lambda p: p.name)
def test_bench_config_validates(path):
    config = BenchConfig.from_file(path)
    assert config.seeds and config.scenarios and config.methods
    names = [s["name"] for s in config.scenarios]
    assert len(names) == len(set(names))
    for scenario in config.scenarios:
        spec = BenchConfig.scenario(scenario, str(path)).spec()
        assert spec.kind in ("class", "fraction", "indices")
    for method in config.methods:
        name = method.partition("@")[0]  # NAME@LABEL is a variant of NAME
        assert name in list_methods(), f"{path.name}: unknown method {method!r}"
        options = config.method_options(method)
        assert "preset" not in options and "scenarios" not in options  # resolved / bench-only
        assert set(config.method_scenarios(method)) <= set(names)
        built = get_method(name).make_config(**options)
        built_options = built.to_dict()
        for key, value in options.items():  # every option reached the method's config
            assert built_options[key] == value, (path.name, method, key)
    for attack in config.mia.get("attacks", default_attacks()):
        assert attack in list_attacks()


@pytest.mark.parametrize("path", BENCHES, ids=lambda p: p.name)
def test_bench_config_presets_exist_and_match_the_method(path):
    for method, options in BenchConfig.from_file(path).methods.items():
        preset = (options or {}).get("preset")
        if preset is None:
            continue
        data = _load(preset_path(preset))
        assert _kind(data) == "preset", f"{path.name}: {method} uses {preset!r}, which is not a method preset"
        assert data["method"] == method.partition("@")[0]


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_method_preset_validates(path):
    data = _load(path)
    rest = {k: v for k, v in data.items() if k != "method"}
    config = get_method(data["method"]).make_config(**rest)
    assert type(config) is get_method(data["method"]).config_cls
    assert preset_path(path.stem) == path


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_method_preset_keys_are_unlearn_options(path):
    """`prunelora unlearn --preset NAME` reads the preset as option defaults: every key must be one."""
    _, subparsers = build_parser()
    parser = subparsers["unlearn"]
    apply_config_file(parser, str(path))  # raises on a key that is not an option
    data = _load(path)
    assert parser.get_default("method") == data["method"]


def test_repo_configs_symlink_lists_the_shipped_files():
    top = REPO_ROOT / "configs"
    assert top.exists(), "the repository's top-level configs/ is missing"
    assert top.resolve() == CONFIG_DIR.resolve()
    assert sorted(p.name for p in top.glob("*.yaml")) == [p.name for p in SHIPPED]


def test_preset_path_refuses_an_unknown_name():
    with pytest.raises(InvalidInputError, match="nosuchpreset"):
        preset_path("nosuchpreset")


# --------------------------------------------------------------------------- unknown keys


@pytest.fixture
def demo() -> dict:
    return _load(CONFIG_DIR / "demo-digits.yaml")


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _with(data: dict, edit) -> dict:
    data = copy.deepcopy(data)
    edit(data)
    return data


UNKNOWN_KEYS = {
    "top-level": ("bogus_top", lambda d: d.__setitem__("bogus_top", 1)),
    "train": ("bogus_train", lambda d: d["train"].__setitem__("bogus_train", 1)),
    "scenario": ("bogus_scenario", lambda d: d["scenarios"][0].__setitem__("bogus_scenario", 1)),
    "mia": ("bogus_mia", lambda d: d["mia"].__setitem__("bogus_mia", 1)),
    "method option": ("bogus_option", lambda d: d["methods"]["finetune"].__setitem__("bogus_option", 1)),
    "option beside a preset": ("bogus_option",
                               lambda d: d["methods"]["prunelora"].__setitem__("bogus_option", 1)),
}


@pytest.mark.parametrize("where", list(UNKNOWN_KEYS))
def test_unknown_key_is_refused_naming_it(where, demo, tmp_path):
    key, edit = UNKNOWN_KEYS[where]
    path = _write(tmp_path, _with(demo, edit))
    with pytest.raises(InvalidInputError, match=key):
        BenchConfig.from_file(path)
    with pytest.raises(InvalidInputError, match=key):  # the same through from_dict
        BenchConfig.from_dict(_with(demo, edit))


def test_the_unedited_demo_passes(demo, tmp_path):
    config = BenchConfig.from_file(_write(tmp_path, demo))
    assert config.to_dict() == BenchConfig.from_file(CONFIG_DIR / "demo-digits.yaml").to_dict()


@pytest.mark.parametrize("edit, needle", [
    (lambda d: d["methods"].__setitem__("nosuchmethod", {}), "nosuchmethod"),
    (lambda d: d.__setitem__("model", "nosuchmodel"), "nosuchmodel"),
    (lambda d: d["mia"].__setitem__("attacks", ["nosuchattack"]), "nosuchattack"),
    (lambda d: d["methods"]["finetune"].__setitem__("optimizer", "nosuchopt"), "nosuchopt"),
    (lambda d: d["methods"]["prunelora"].__setitem__("preset", "nosuchpreset"), "nosuchpreset"),
    (lambda d: d["methods"]["finetune"].__setitem__("preset", "prunelora-digits-resnet"), "prunelora"),
    (lambda d: d["train"].__setitem__("optimizer", "nosuchopt"), "nosuchopt"),
    (lambda d: d["scenarios"].append(dict(d["scenarios"][0])), "twice"),
    (lambda d: d["scenarios"][0].pop("name"), "name"),
    (lambda d: d["scenarios"][0].__setitem__("forget_fraction", 0.1), "exactly one"),
    (lambda d: d.__setitem__("seeds", []), "seeds"),
], ids=["method", "model", "attack", "method-value", "preset", "preset-of-another-method",
        "train-value", "duplicate-scenario", "nameless-scenario", "two-forget-kinds", "no-seeds"])
def test_bad_values_are_refused(edit, needle, demo):
    with pytest.raises(InvalidInputError, match=needle):
        BenchConfig.from_dict(_with(demo, edit))


def test_missing_and_non_mapping_files_are_refused(tmp_path):
    with pytest.raises(MissingFileError, match="does not exist"):
        BenchConfig.from_file(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(InvalidInputError, match="mapping"):
        BenchConfig.from_file(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(InvalidInputError, match="YAML"):
        BenchConfig.from_file(tmp_path / "broken.yaml")


@pytest.mark.parametrize("edit", [
    lambda d: d.__setitem__("train", 5),
    lambda d: d.__setitem__("scenarios", [3]),
    lambda d: d.__setitem__("methods", ["finetune"]),
    lambda d: d["train"].__setitem__("epochs", "many"),
], ids=["train-int", "scenario-int", "methods-list", "epochs-str"])
def test_wrongly_typed_sections_are_refused_as_bad_input(edit, demo):
    with pytest.raises(InvalidInputError):
        BenchConfig.from_dict(_with(demo, edit))
