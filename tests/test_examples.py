"""The examples in examples/ run as shipped (the README shows them)."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_unlearn_your_model_example_runs_and_reports_against_its_retrain(capsys):
    namespace = runpy.run_path(str(EXAMPLES / "unlearn_your_model.py"), run_name="example")
    results = namespace["main"]()
    assert set(results) == {"retrain", "prunelora", "random-label"}
    assert results["retrain"]["UA"] == 100.0  # the retrain never saw the forgotten class
    for method in ("prunelora", "random-label"):
        m = results[method]
        assert all(math.isfinite(m[k]) for k in ("UA", "RA", "TA", "Avg.Gap", "Probe-FA")), method
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ["method", "UA", "RA", "TA", "Avg.Gap", "Probe-FA"]
