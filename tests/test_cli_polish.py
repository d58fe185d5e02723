"""The command line's finish, run in-process: `--version`, `--json` listings, `prunelora presets`,
`eval` beside its reference (table, JSON, progress), "did you mean" for typos, `bench --dry-run`,
and a `prunelora methods` that does not import peft."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from helpers import one_error_line, subprocess_env, tiny_bench, write_yaml

import prunelora
from prunelora.bench import BenchConfig, run_bench
from prunelora.data import list_datasets
from prunelora.methods import list_methods
from prunelora.models import list_models
from prunelora.presets import CONFIG_DIR

# The shipped YAMLs by what they are: an unlearning recipe names a method, a benchmark has scenarios.
SHIPPED = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(CONFIG_DIR.glob("*.yaml"))}
UNLEARNING = sorted(name for name, data in SHIPPED.items() if "method" in data and "scenarios" not in data)
BENCHES = sorted(name for name, data in SHIPPED.items() if "scenarios" in data)
CHEAP_EVAL = ("--no-relearn", "--no-probe", "--attacks", "confidence-svc")


def _ok(result) -> str:
    code, stdout, stderr = result
    assert code == 0, stderr
    return stdout


# --------------------------------------------------------------------------- --version and listings


def test_version(run_cli):
    try:
        expected = metadata.version("prunelora")
    except metadata.PackageNotFoundError:
        expected = prunelora.__version__
    assert _ok(run_cli("--version")).strip() == f"prunelora {expected}"


@pytest.mark.parametrize("command,names", [
    ("methods", lambda: list(list_methods())),
    ("models", lambda: list(list_models())),
    ("datasets", lambda: list(list_datasets())),
    ("presets", lambda: UNLEARNING),
])
def test_listing_json(run_cli, command, names):
    rows = json.loads(_ok(run_cli(command, "--json")))
    assert isinstance(rows, list) and all(isinstance(row, dict) for row in rows)
    assert [row["name"] for row in rows] == names()
    text_key = {"methods": "summary", "presets": "summary"}.get(command, "description")
    assert all(isinstance(row[text_key], str) and row[text_key] for row in rows)


def test_methods_json_carries_what_each_method_declares(run_cli):
    rows = {row["name"]: row for row in json.loads(_ok(run_cli("methods", "--json")))}
    assert rows["prunelora"]["prunes"] and rows["prunelora"]["lora"]
    assert not rows["finetune"]["prunes"] and not rows["finetune"]["lora"]
    assert "class" in rows["finetune"]["forget_kinds"]


def test_presets_lists_unlearning_recipes_only(run_cli):
    assert UNLEARNING and BENCHES
    stdout = _ok(run_cli("presets"))
    listed = [line.split()[0] for line in stdout.splitlines()]
    assert listed == UNLEARNING
    assert not set(BENCHES) & set(listed)
    rows = {row["name"]: row for row in json.loads(_ok(run_cli("presets", "--json")))}
    for name in UNLEARNING:
        assert rows[name]["method"] == SHIPPED[name]["method"]
        assert rows[name]["epochs"] == SHIPPED[name].get("epochs")


# --------------------------------------------------------------------------- --preset of the wrong kind


def _unlearn(checkpoint: Path, out: Path, *extra: str) -> tuple:
    return ("unlearn", "--checkpoint", checkpoint, "--forget-class", "3", "--out", out, "--no-progress", *extra)


def test_unknown_preset_lists_unlearning_presets_only(run_cli, checkpoint_dir, tmp_path):
    line = one_error_line(run_cli(*_unlearn(checkpoint_dir, tmp_path / "out", "--preset", "nope")), "unlearn")
    assert "'nope'" in line
    assert all(name in line for name in UNLEARNING)
    assert not [name for name in BENCHES if name in line]
    assert not (tmp_path / "out").exists()


def test_a_bench_config_as_unlearn_preset_points_to_bench(run_cli, checkpoint_dir, tmp_path):
    line = one_error_line(run_cli(*_unlearn(checkpoint_dir, tmp_path / "out", "--preset", "demo-digits")), "unlearn")
    assert "benchmark config" in line and "prunelora bench --preset demo-digits" in line
    assert str(CONFIG_DIR) not in line and ".yaml" not in line  # no file the user never named
    assert not (tmp_path / "out").exists()


def test_an_unlearning_preset_given_to_bench_points_to_unlearn(run_cli, tmp_path):
    line = one_error_line(run_cli("bench", "--preset", "prunelora-resnet", "--out", tmp_path / "b"), "bench")
    assert "unlearning preset" in line and "prunelora unlearn --preset prunelora-resnet" in line
    assert not (tmp_path / "b").exists()


# --------------------------------------------------------------------------- did you mean


@pytest.fixture
def typo_config(tmp_path) -> Path:
    return write_yaml(tmp_path / "typo.yaml", {"method": "finetune", "epoch": 1})


@pytest.mark.parametrize("extra,hint", [
    (("--method", "finetune", "--epcohs", "1"), "did you mean '--epochs'?"),
    (("--method", "finetun"), "did you mean 'finetune'?"),
    (("--config", "TYPO"), "unknown key 'epoch' (did you mean 'epochs'?)"),
])
def test_unlearn_typos_get_a_suggestion(run_cli, checkpoint_dir, tmp_path, typo_config, extra, hint):
    extra = tuple(str(typo_config) if e == "TYPO" else e for e in extra)
    code, stdout, stderr = run_cli(*_unlearn(checkpoint_dir, tmp_path / "out", *extra))
    line = one_error_line((code, stdout, stderr))
    assert hint in line
    assert not (tmp_path / "out").exists()


def test_train_model_and_dataset_typos_get_a_suggestion(run_cli, tmp_path):
    for flags, hint in ((("--dataset", "digts", "--model", "resnet8"), "did you mean 'digits'?"),
                        (("--dataset", "digits", "--model", "resnet-8"), "did you mean 'resnet8'?")):
        line = one_error_line(run_cli("train", *flags, "--steps", "1", "--out", tmp_path / "o", "--no-progress"),
                              "train")
        assert hint in line
    assert not (tmp_path / "o").exists()


def test_bench_method_option_typo_gets_a_suggestion(run_cli, tmp_path):
    config = write_yaml(tmp_path / "b.yaml", tiny_bench(methods={"retrain": {}, "finetune": {"epoch": 1}}))
    line = one_error_line(run_cli("bench", "--config", config, "--out", tmp_path / "b", "--dry-run"), "bench")
    assert "does not take option 'epoch' (did you mean 'epochs'?)" in line


# --------------------------------------------------------------------------- eval beside its reference


@pytest.fixture(scope="module")
def reference(run_cli, checkpoint_dir, tmp_path_factory) -> Path:
    """A retrain of the session's original without class 3."""
    out = tmp_path_factory.mktemp("polish") / "R"
    _ok(run_cli("retrain", "--checkpoint", checkpoint_dir, "--forget-class", "3", "--out", out, "--no-progress"))
    return out


def _cells(stdout: str, key: str) -> list[str]:
    """The cells of the eval table's row `key` (rich draws `│ key │ a │ b │ ...`)."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if cells and cells[0] == key:
            return cells[1:]
    raise AssertionError(f"no {key} row in:\n{stdout}")


def test_eval_shows_and_writes_the_reference_and_the_deltas(run_cli, checkpoint_dir, reference, tmp_path):
    report, alone = tmp_path / "c-vs-r.json", tmp_path / "r.json"
    stdout = _ok(run_cli("eval", checkpoint_dir, "--forget-class", "3", "--reference", reference, *CHEAP_EVAL,
                         "--no-progress", "--json", report))
    _ok(run_cli("eval", reference, *CHEAP_EVAL, "--no-progress", "--json", alone))
    found, own = json.loads(report.read_text()), json.loads(alone.read_text())["metrics"]
    assert found["reference"] == str(reference)
    # the reference's metrics are its own evaluation's, and every delta is the model's minus them
    for key in ("UA", "RA", "TA", "MIA"):
        assert found["reference_metrics"][key] == pytest.approx(own[key])
        assert found["deltas"][key] == pytest.approx(found["metrics"][key] - own[key])
    assert found["deltas"]["UA"] < 0  # the original still knows class 3; its retrain does not
    assert "Avg.Gap" not in found["deltas"]  # a comparison has no reference value
    assert re.search(r"[│┃]\s*metric\s*[│┃]\s*value\s*[│┃]\s*reference\s*[│┃]\s*Δ\s*[│┃]", stdout)
    value, ref, delta = _cells(stdout, "UA")[:3]  # a note column may follow (attacks at chance)
    assert float(value) == pytest.approx(found["metrics"]["UA"], abs=0.006)
    assert float(ref) == pytest.approx(own["UA"], abs=0.006)
    assert float(delta) == pytest.approx(found["deltas"]["UA"], abs=0.006) and delta.startswith("-")


def test_eval_without_reference_has_no_reference_column(run_cli, checkpoint_dir, tmp_path):
    report = tmp_path / "c.json"
    stdout = _ok(run_cli("eval", checkpoint_dir, "--forget-class", "3", *CHEAP_EVAL, "--no-progress",
                         "--json", report))
    assert "reference" not in stdout and "Δ" not in stdout
    found = json.loads(report.read_text())
    assert found["reference_metrics"] is None and found["deltas"] is None


def test_eval_progress_on_stderr_and_no_progress(run_cli, checkpoint_dir):
    code, _, stderr = run_cli("eval", checkpoint_dir, "--forget-class", "3", *CHEAP_EVAL)
    assert code == 0, stderr
    assert "evaluated" in stderr
    code, _, stderr = run_cli("eval", checkpoint_dir, "--forget-class", "3", *CHEAP_EVAL, "--no-progress")
    assert code == 0 and stderr == ""


def test_eval_refusal_after_progress_started_is_still_one_line(run_cli, checkpoint_dir):
    """The original is no retrain: refused inside the evaluation, while the progress line is up."""
    line = one_error_line(run_cli("eval", checkpoint_dir, "--forget-class", "3", "--reference", checkpoint_dir,
                                  *CHEAP_EVAL), "eval")
    assert "not a retrain" in line


# --------------------------------------------------------------------------- bench --dry-run


@pytest.fixture(scope="module")
def bench_setup(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny bench (seed 0: its retrain, the noise floor's retrain seed 1, one finetune) run in
    `out`, and its config file."""
    root = tmp_path_factory.mktemp("dry")
    data = tiny_bench(probe={"enabled": False}, relearn={"enabled": False})
    config = write_yaml(root / "tiny.yaml", data)
    out = root / "out"
    run_bench(BenchConfig.from_dict(data), out, progress=False, log=lambda *a, **k: None)
    return config, out


def test_dry_run_on_an_empty_out_lists_every_cell_and_writes_nothing(run_cli, bench_setup, tmp_path):
    config, _ = bench_setup
    out = tmp_path / "fresh"
    stdout = _ok(run_cli("bench", "--config", config, "--out", out, "--dry-run"))
    assert not out.exists()
    lines = stdout.splitlines()
    for label in ("original", "class3 retrain seed 0", "class3 retrain seed 1 [noise floor only]",
                  "class3 finetune seed 0"):
        assert any(line.strip().startswith(f"{label}: to run, ~") and "(modelled)" in line for line in lines), label
    assert "4 cells: 0 done, 4 to run" in stdout
    assert re.search(r"modelled: .* / [\d,]+ images/s", stdout)


def test_dry_run_reuses_done_cells_and_measures_from_them(run_cli, bench_setup, snapshot):
    config, out = bench_setup
    before = snapshot(out)
    stdout = _ok(run_cli("bench", "--config", config, "--out", out, "--seeds", "0,1", "--dry-run"))
    assert snapshot(out) == before
    lines = {line.strip().split(":")[0]: line for line in stdout.splitlines() if line.startswith("  ")}
    for label in ("original", "class3 retrain seed 0", "class3 retrain seed 1", "class3 finetune seed 0"):
        assert "done, reused" in lines[label], label
    assert "to run, ~" in lines["class3 finetune seed 1"]
    assert f"(measured in {out})" in lines["class3 finetune seed 1"]  # seed 0's recorded time
    assert "5 cells: 4 done, 1 to run" in stdout


def test_bench_preset_dry_run(run_cli, tmp_path):
    stdout = _ok(run_cli("bench", "--preset", "demo-digits", "--out", tmp_path / "demo", "--dry-run"))
    assert stdout.startswith("bench demo-digits")
    assert not (tmp_path / "demo").exists()


# --------------------------------------------------------------------------- prunelora methods is light


def test_methods_imports_neither_peft_nor_transformers():
    probe = ("import json, sys\nfrom prunelora.cli import main\ncode = main(['methods', '--json'])\n"
             "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=subprocess_env(),
                          timeout=300)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["code"] == 0
    assert [row["name"] for row in json.loads(proc.stdout)] == list(list_methods())
    heavy = {m for m in report["modules"] if m.split(".")[0] in ("peft", "transformers")}
    assert heavy == set()
