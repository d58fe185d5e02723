"""benchmarks/eval_probe_cost.py runs (quick mode) and reports every ratio; its numbers are not checked
(timings on a shared machine mean nothing) beyond being positive and finite."""

from __future__ import annotations

import math

import pytest
from helpers import load_script

# slow: a benchmark script: two runs and six evaluations; evaluate() with and
# without probe and relearning is covered by tests/test_probe_relearn.py and tests/test_evaluate.py
pytestmark = pytest.mark.slow


def test_eval_probe_cost_script_runs(capsys):
    module = load_script("eval_probe_cost")
    results = module.main(["--quick", "--repeats", "1", "--methods", "finetune"])
    assert list(results) == ["retrain", "finetune"]
    for ratios in results.values():
        assert set(ratios) == {"eval probe / without", "eval relearn / without", "eval both / without",
                               "cell both / without"}
        assert all(math.isfinite(v) and v > 0 for v in ratios.values())
    out = capsys.readouterr().out
    assert "idle machine" in out and "cell both / without" in out
