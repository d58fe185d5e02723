"""benchmarks/eval_cost.py (smoke mode) times every phase of a bench cell and counts the images
each sends through the network; its seconds are not checked (timings on a shared machine mean
nothing), its structure and counts are."""

from __future__ import annotations

import json

import pytest
from helpers import load_script

from prunelora.bench import runner
from prunelora.evaluation.cache import EvaluationCache


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-cost") / "cost.md"
    with pytest.MonkeyPatch.context() as patch:  # a fresh process's cache, whatever ran before
        patch.setattr(runner, "EVALUATION_CACHE", EvaluationCache())
        result = load_script("eval_cost").main(["--smoke", "--cells", "2", "--out", str(out)])
    return result, out


def phases(cell: dict) -> dict[str, dict]:
    return {row["phase"]: row for row in cell["phases"]}


def test_every_phase_of_the_cell_is_in_the_table(run):
    result, out = run
    first, later = result["cells"]
    found = phases(first)
    for phase in ("method", "evaluation", "evaluation / membership attacks / attack confidence-svc",
                  "evaluation / membership attacks / attack m-entropy-svc", "evaluation / MACs",
                  "evaluation / throughput", "evaluation / probe (classifier input, probe layer)",
                  "evaluation / representation (stage probes, CKA)", "evaluation / relearning / one repeat"):
        assert phase in found, phase
        assert found[phase]["seconds"] >= 0 and found[phase]["calls"] >= 1
    assert found["evaluation / relearning / one repeat"]["calls"] == 3  # the smoke config's repeats
    assert 0 < first["evaluation_percent"] < 100 and 0 < first["method_percent"] < 100
    text = out.read_text()
    assert "| phase | seconds | % of cell | calls | images forwarded |" in text
    assert "seed 1: a later cell" in text


def test_images_are_counted_per_phase(run):
    first, later = run[0]["cells"]
    rows = phases(first)
    sizes = first["metrics"]
    assert rows["evaluation"]["images"] > rows["evaluation / one pass per split: logits and features"]["images"] > 0
    assert rows["method"]["images"] > 0
    # a later cell reuses the references' features and the throughput of the architecture
    assert phases(later)["evaluation"]["images"] < rows["evaluation"]["images"]
    assert "evaluation / throughput / throughput" in rows and "evaluation / throughput / throughput" not in phases(later)
    assert sizes["UA"] == sizes["UA"]  # the cell's metrics are kept beside the timings


def test_the_json_holds_the_metrics_to_compare_another_run_with(run):
    result, out = run
    saved = json.loads(out.with_suffix(".json").read_text())
    assert [c["seed"] for c in saved["cells"]] == [0, 1]
    script = load_script("eval_cost")
    assert script.compare_metrics(result["cells"], out.with_suffix(".json")) == []
    changed = json.loads(out.with_suffix(".json").read_text())
    changed["cells"][0]["metrics"]["UA"] += 1.0
    other = out.with_name("other.json")
    other.write_text(json.dumps(changed))
    assert [line.split(":")[0] for line in script.compare_metrics(result["cells"], other)] == ["seed 0 UA"]
