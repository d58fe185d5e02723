"""A property-based fuzzer over benchmark configurations.

Starting from a valid tiny digits bench, hypothesis changes values (types, names, seeds, nesting),
drops and adds keys, and damages the YAML text (duplicate keys, aliases, truncation). Whatever comes
out, reading it is either a success, whose parsed plan is safe to run (names that stay under --out,
seeds in range), or a refusal in one bounded line; `prunelora bench` then exits 2 with that line and
writes nothing. No example trains anything: accepted configurations are only parsed.

Bounded and deterministic in `make test` (60 examples, derandomized); set PRUNELORA_FUZZ_EXAMPLES=N
for a longer search.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import tempfile
from pathlib import Path

import yaml
from helpers import tiny_bench
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prunelora.bench import BenchConfig
from prunelora.bench.fields import MAX_SEED, MAX_SEEDS, SAFE_NAME
from prunelora.errors import PruneLoRAError

EXAMPLES = int(os.environ.get("PRUNELORA_FUZZ_EXAMPLES", "60"))
# Refusals also run through `prunelora bench` (cheap, but not free): every one in a long search,
# the first few in `make test`.
COMMAND_CHECKS = EXAMPLES if "PRUNELORA_FUZZ_EXAMPLES" in os.environ else 8
_checked: list[int] = []

BASE = tiny_bench(probe={"enabled": False}, relearn={"enabled": False})

# Where a mutation lands: a key path into BASE (the last element may be a new key or index).
PATHS = [
    ("name",), ("dataset",), ("model",), ("val_fraction",), ("note",), ("data_dir",), ("model_kwargs",),
    ("train",), ("train", "steps"), ("train", "seed"), ("train", "lr"), ("train_subset",),
    ("train_subset", "size"), ("train_subset", "seed"),
    ("scenarios",), ("scenarios", 0), ("scenarios", 0, "name"), ("scenarios", 0, "forget_class"),
    ("scenarios", 0, "forget_seed"), ("scenarios", 0, "forget_fraction"), ("scenarios", 1),
    ("seeds",), ("seeds", 0), ("seeds", 1), ("retrain_seeds",), ("methods",), ("methods", "finetune"),
    ("methods", "finetune", "steps"), ("methods", "finetune", "scenarios"), ("methods", "finetune", "preset"),
    ("methods", "finetune@x"), ("mia",), ("mia", "attacks"), ("mia", "max_samples"), ("mia", "seed"),
    ("probe",), ("probe", "seed"), ("probe", "enabled"), ("relearn",), ("relearn", "enabled"),
    ("executor",), ("unknown_key",),
]

NAMES = ["../x", "../../x", "/abs", "..", ".", "a/b", "a\\b", "class3", "digits", "resnet8", "3", "", " ",
         "\x1b[2J", "[/]", "retrain", "finetune", "prunelora-digits-resnet", "-x", "x" * 80, "imagefolder:/tmp"]

SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, 3, -1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 0.1, 0.5, 1.0, 1e300, -0.0]),
    st.sampled_from(NAMES), st.text(max_size=12),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(max_size=6)), inner,
                                                 max_size=3)), max_leaves=8)

# Text damage: a duplicate key, an alias, a tab where YAML forbids one, a cut.
TEXT_DAMAGE = st.sampled_from(["none", "duplicate", "alias", "tab", "truncate", "deep"])


def _set(data: dict, path: tuple, value, delete: bool) -> None:
    """Put `value` at `path` in `data` (or delete what is there), making the containers it needs."""
    node = data
    for key in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return  # an earlier mutation changed the shape: nothing to reach
    last = path[-1]
    if isinstance(node, dict):
        if delete:
            node.pop(last, None)
        else:
            node[last] = value
    elif isinstance(node, list) and isinstance(last, int):
        if last < len(node):
            if delete:
                del node[last]
            else:
                node[last] = value
        elif not delete:
            node.append(value)


def _damage(text: str, how: str, cut: int) -> str:
    if how == "duplicate":
        return text + "seeds: [0]\n"
    if how == "alias":
        return text + "extra: &a [1, 2]\nmore: *a\n"
    if how == "tab":
        return text.replace("  ", "\t", 1)
    if how == "truncate":
        return text[: cut % max(len(text), 1)]
    if how == "deep":
        return text + "note: " + "[" * 600 + "]" * 600 + "\n"
    return text


def _check_accepted(config: BenchConfig) -> None:
    """A configuration that reads must parse whole into a plan that is safe to run."""
    plan = config.plan()
    config.identity()
    for scenario in plan.scenarios:
        assert isinstance(scenario.name, str) and SAFE_NAME.fullmatch(scenario.name), scenario.name
    for seeds in (plan.seeds, plan.retrain_seeds):
        assert 0 < len(seeds) <= MAX_SEEDS
        assert all(type(s) is int and 0 <= s < MAX_SEED for s in seeds)
    for method in plan.methods:
        assert "/" not in method.key and "\\" not in method.key and not method.key.startswith(".")


def _check_refused(message: str) -> None:
    assert message and "\n" not in message, repr(message)
    assert len(message) < 1000, len(message)


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(mutations=st.lists(st.tuples(st.sampled_from(PATHS), VALUES, st.booleans()), min_size=1, max_size=3),
       damage=TEXT_DAMAGE, cut=st.integers(min_value=0, max_value=10_000))
def test_a_mutated_bench_config_reads_or_is_refused_in_one_line(mutations, damage, cut):
    from prunelora.cli import main

    data = copy.deepcopy(BASE)
    for path, value, delete in mutations:
        _set(data, path, value, delete)
    try:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=False)
    except yaml.YAMLError:
        return  # (PyYAML cannot write it: not a file anyone can hand over)
    text = _damage(text, damage, cut)
    with tempfile.TemporaryDirectory(prefix="prunelora-fuzz-") as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(text)
        try:
            config = BenchConfig.from_file(path)
        except PruneLoRAError as exc:
            _check_refused(str(exc))
            if len(_checked) >= COMMAND_CHECKS:
                return
            _checked.append(1)
            # the command refuses it the same way, before writing anything
            out, stderr = Path(folder) / "out", io.StringIO()
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                code = main(["bench", "--config", str(path), "--out", str(out), "--no-progress"])
            assert code == 2, stderr.getvalue()
            assert len(stderr.getvalue().splitlines()) == 1, stderr.getvalue()
            assert sorted(p.name for p in Path(folder).iterdir()) == ["bench.yaml"]
            return
        _check_accepted(config)
        assert sorted(p.name for p in Path(folder).iterdir()) == ["bench.yaml"]
