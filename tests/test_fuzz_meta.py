"""A property-based fuzzer over meta.json: whatever a checkpoint's meta.json holds, `prunelora info`
and `load_checkpoint` either succeed or refuse it in one line (exit 2), and write nothing.

Each example mutates the meta.json of a valid tiny checkpoint 1-3 times: a value replaced by one of
another type (null, bools, huge or negative integers, NaN, ±inf, 1e300, strings with control
characters, lists, mappings), a key removed, or an unknown key added. Deterministic and bounded in
`make test` (`derandomize=True`, 60 examples); `PRUNELORA_FUZZ_EXAMPLES=N` runs N examples instead
(e.g. 5000 before a release).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
from helpers import meta_json, one_error_line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prunelora.checkpoint import META, WEIGHTS, load_checkpoint
from prunelora.errors import PruneLoRAError

EXAMPLES = int(os.environ.get("PRUNELORA_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

CONTROL = st.characters(min_codepoint=0, max_codepoint=0x9F)
SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 1, 2, 2**31, 2**63 - 1, 2**63, 10**12]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e300, -1e300, 1e-320, math.nan, math.inf]),
    st.text(max_size=12), st.text(alphabet=CONTROL, max_size=12),
    st.sampled_from(["", "resnet8", "vit-tiny", "timm:resnet18", "torchvision:resnet18", "original", "retrain",
                     "class", "../..", "/dev/zero", "x" * 5000, "[/]", "\x1b[2J", "NaN"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4), st.dictionaries(st.text(max_size=6), SCALARS, max_size=3))


def _paths(node, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and list positions) into `node`; long lists contribute their first items."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node[:3]):
            out += _paths(value, (*prefix, i))
    return out


def _mutate(meta: dict, path: tuple, op: str, value) -> None:
    parent = meta
    for step in path[:-1]:
        parent = parent[step]
    leaf = path[-1]
    if op == "delete" and isinstance(parent, dict):
        del parent[leaf]
    elif op == "add" and isinstance(parent, dict):
        parent[f"fuzz_{len(parent)}"] = value
    else:
        parent[leaf] = value


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, checkpoint_dir) -> tuple[Path, dict, bytes]:
    """A private copy of the session checkpoint (its meta.json is rewritten by every example), its
    valid meta.json and its weights."""
    folder = Path(shutil.copytree(checkpoint_dir, tmp_path_factory.mktemp("fuzz") / "ckpt"))
    return folder, meta_json(folder), (folder / WEIGHTS).read_bytes()


OUTCOMES: dict[str, int] = {"accepted": 0, "refused": 0}


@FUZZ
@given(data=st.data())
def test_any_meta_json_is_accepted_or_refused_in_one_line(data, fuzzed, run_cli):
    folder, valid, weights = fuzzed
    meta = json.loads(json.dumps(valid))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = _paths(meta)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        _mutate(meta, path, data.draw(st.sampled_from(["replace", "replace", "delete", "add"]), label="op"),
                data.draw(VALUES, label="value"))
    text = json.dumps(meta)
    (folder / META).write_text(text)

    code, stdout, stderr = run_cli("info", "--json", folder)
    assert code in (0, 2), f"exit {code}:\n{stderr[-2000:]}"
    if code == 2:
        line = one_error_line((code, stdout, stderr), "info")
        assert len(line) < 1000, f"an unbounded message of {len(line)} characters"
        assert stdout == ""
    else:
        assert stderr == "" or "Traceback" not in stderr
        assert json.loads(stdout)["model"] == meta["model"]
    try:
        load_checkpoint(folder)
        loaded = True
    except PruneLoRAError as exc:
        loaded = False
        assert "\n" not in str(exc)
    assert loaded == (code == 0), "info and load_checkpoint disagree"
    OUTCOMES["accepted" if loaded else "refused"] += 1
    # nothing written: the folder holds what the example wrote and nothing else
    assert sorted(p.name for p in folder.iterdir()) == sorted([META, WEIGHTS])
    assert (folder / META).read_text() == text and (folder / WEIGHTS).read_bytes() == weights


def test_the_fuzzer_saw_both_outcomes():
    """The mutations are not all refused (nor all accepted): both sides of the property ran.
    Runs after the fuzzer in this file (pytest keeps file order)."""
    if OUTCOMES["accepted"] + OUTCOMES["refused"] == 0:
        pytest.skip("the fuzzer did not run in this process")
    assert OUTCOMES["accepted"] > 0 and OUTCOMES["refused"] > 0, OUTCOMES
