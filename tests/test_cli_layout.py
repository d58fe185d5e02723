"""The command line's structure: a static table, light start-up, flags generated from the configs.

`prunelora --help` and `prunelora info` run in fresh interpreters, which then report what they
imported: neither may load peft or the methods (the table imports a command's module only when
that command is parsed).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from helpers import SRC, subprocess_env

from prunelora.cli import COMMANDS, build_parser
from prunelora.cli.app import command_functions
from prunelora.training import TrainConfig

REPO = SRC.parent

# Run `prunelora ARGS` in-process in a fresh interpreter, then print the exit status and the
# modules it imported (top-level names, and prunelora's own).
PROBE = """
import json, sys
from prunelora.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def imported_by(*args: str | Path) -> tuple[int, set[str]]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True,
                          env=subprocess_env(), timeout=300)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


def _heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in ("peft", "transformers") or m.startswith("prunelora.methods")}


def test_help_imports_no_command_and_not_even_torch():
    code, modules = imported_by("--help")
    assert code == 0
    assert _heavy(modules) == set()
    assert "torch" not in modules
    assert not {m for m in modules if m.startswith("prunelora.cli.")} - {"prunelora.cli.app", "prunelora.cli.safe_text"}


def test_info_imports_neither_peft_nor_the_methods(checkpoint_dir):
    code, modules = imported_by("info", checkpoint_dir)
    assert code == 0
    assert "prunelora.cli.info" in modules and "prunelora.checkpoint" in modules  # it did run
    assert _heavy(modules) == set()


def test_unlearn_builds_the_method_flags_when_parsed():
    code, modules = imported_by("unlearn", "--help")
    assert code == 0
    assert "prunelora.methods" in modules


def test_python_dash_m_prunelora_runs_the_command():
    proc = subprocess.run([sys.executable, "-m", "prunelora", "--help"], capture_output=True, text=True, env=subprocess_env(),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: prunelora" in proc.stdout and "unlearn" in proc.stdout


def test_the_table_lists_every_command_with_the_help_of_its_run_function():
    """The table's line (what `prunelora --help` shows) is the command's own docstring."""
    for name, text in COMMANDS.items():
        _, run = command_functions(name)
        assert (run.__doc__ or "").strip() == text, name


def test_every_command_module_is_in_the_table():
    modules = {p.stem for p in (SRC / "prunelora" / "cli").glob("*.py")} - {"__init__", "app", "options", "safe_text"}
    assert modules == set(COMMANDS)


def test_train_flags_are_the_train_config_fields():
    """`prunelora train`'s recipe flags and `TrainConfig` cannot drift: same names, same defaults."""
    _, subparsers = build_parser(["train"])
    defaults = {a.dest: a.default for a in subparsers["train"]._actions}
    for f in dataclasses.fields(TrainConfig):
        assert f.name in defaults, f"--{f.name.replace('_', '-')} is missing"
        assert defaults[f.name] == f.default, f.name
    assert TrainConfig().epochs == 30  # the budget `prunelora train` has always trained


def test_train_flag_types_and_choices_come_from_the_config(run_cli, tmp_path):
    code, _, stderr = run_cli("train", "--optimizer", "lbfgs", "--out", tmp_path / "x")
    assert code == 2 and "invalid choice: 'lbfgs'" in stderr and "sgd" in stderr
    code, _, stderr = run_cli("train", "--steps", "1.5", "--out", tmp_path / "x")
    assert code == 2 and "invalid int value: '1.5'" in stderr
    assert not (tmp_path / "x").exists()


def test_startup_time_script_runs_quickly(checkpoint_dir, tmp_path):
    """benchmarks/startup_time.py in its --quick mode (one run each, nothing timed here): it writes
    one row per command, and a second label keeps the first one's rows."""
    out = tmp_path / "startup.txt"
    script = [sys.executable, str(REPO / "benchmarks" / "startup_time.py"), "--quick", "--src", str(SRC),
              "--out", str(out), "--checkpoint", str(checkpoint_dir)]
    for label in ("before", "after"):
        proc = subprocess.run([*script, "--label", label], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    rows = [line for line in out.read_text().splitlines() if line.startswith(("| before |", "| after |"))]
    assert [row.split(" | ")[:2] for row in rows] == [["| before", "prunelora --help"], ["| before", "prunelora info"],
                                                      ["| after", "prunelora --help"], ["| after", "prunelora info"]]
