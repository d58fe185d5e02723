"""benchmarks/eval_probe_cost.py runs (quick mode) and reports every ratio; its numbers are not checked
(timings on a shared machine mean nothing) beyond being positive and finite."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

# slow: a benchmark script: two runs and six evaluations; evaluate() with and
# without probe and relearning is covered by tests/test_probe_relearn.py and tests/test_evaluate.py
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "eval_probe_cost.py"


def test_eval_probe_cost_script_runs(capsys):
    spec = importlib.util.spec_from_file_location("eval_probe_cost", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(["--quick", "--repeats", "1", "--methods", "finetune"])
    assert list(results) == ["retrain", "finetune"]
    for ratios in results.values():
        assert set(ratios) == {"eval probe / without", "eval relearn / without", "eval both / without",
                               "cell both / without"}
        assert all(math.isfinite(v) and v > 0 for v in ratios.values())
    out = capsys.readouterr().out
    assert "idle machine" in out and "cell both / without" in out
