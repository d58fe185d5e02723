"""`evaluate_checkpoint` (`prunelora eval`) and `prunelora bench` are one evaluation: the same
metrics for the same model and reference; and `prunelora eval` loads and digests its data once."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from helpers import write_yaml

import prunelora
from prunelora import api
from prunelora.bench import NOISE_FLOOR
from prunelora.data import datasets
from prunelora.evaluation import evaluate as evaluate_module

BENCH = {"name": "eval-vs-bench", "dataset": "digits", "model": "resnet8", "train": {"steps": 30, "seed": 0},
         "scenarios": [{"name": "class3", "forget_class": 3}], "seeds": [0], "methods": {"retrain": {}},
         "mia": {"attacks": ["confidence-svc"]}, "relearn": {"max_steps": 20}}
EVAL_FLAGS = ("--attacks", "confidence-svc", "--relearn-max-steps", "20")


@pytest.fixture(scope="module")
def bench_out(run_cli, tmp_path_factory) -> Path:
    """A bench of retrains only: seed 0 is the reference, seed 1 (the noise floor's) is compared with it."""
    folder = tmp_path_factory.mktemp("eval-vs-bench")
    out = folder / "out"
    code, _, stderr = run_cli("bench", "--config", write_yaml(folder / "bench.yaml", BENCH), "--out", out,
                              "--no-progress")
    assert code == 0, stderr
    return out


def _same(a, b) -> bool:
    """Equal, or both undefined (results.json writes NaN as null)."""
    missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in (a, b)]
    return all(missing) if any(missing) else a == b


def test_eval_reports_the_metrics_of_the_bench(run_cli, bench_out, tmp_path):
    cache = bench_out / "cache"
    report = tmp_path / "eval.json"
    code, _, stderr = run_cli("eval", cache / "class3-retrain-seed1", "--reference", cache / "class3-retrain-seed0",
                              "--json", report, *EVAL_FLAGS)
    assert code == 0, stderr
    found = json.loads(report.read_text())
    assert found["original"] == str(next(cache.glob("original-*")))  # recorded by the bench's retrain
    metrics = found["metrics"]
    row = next(r for r in json.loads((bench_out / "results.json").read_text()) if r["method"] == NOISE_FLOOR)
    assert (row["seed"], row["reference_seed"]) == (1, 0)
    compared = set(metrics) - {"throughput"}  # a timing, measured anew
    assert {"UA", "RA", "TA", "FA", "MIA", "Probe-FA", "relearn_steps", "Avg.Gap", "Probe.Gap", "relearn_ratio",
            "time_ratio", "wall_time_s"} <= compared <= set(row)
    differ = {key: (metrics[key], row[key]) for key in compared if not _same(metrics[key], row[key])}
    assert not differ
    assert metrics["Avg.Gap"] > 0  # two retrains of different seeds: a real comparison, not 0 against 0


def test_evaluate_checkpoint_is_the_eval_command(bench_out):
    cache = bench_out / "cache"
    found = prunelora.evaluate_checkpoint(cache / "class3-retrain-seed1", reference=cache / "class3-retrain-seed0",
                                          attacks=("confidence-svc",), probe=False, relearn=None)
    assert found.forget.classes == (3,)
    assert found.reference == str(cache / "class3-retrain-seed0") and found.original is None
    assert "Probe-FA" not in found.metrics and "relearn_steps" not in found.metrics
    reference_wall = json.loads((cache / "class3-retrain-seed0" / "meta.json").read_text())["cost"]["wall_time_s"]
    assert found.metrics["wall_time_s"] == found.meta["cost"]["wall_time_s"]
    assert found.metrics["time_ratio"] == pytest.approx(found.metrics["wall_time_s"] / reference_wall)
    assert "evaluate_checkpoint" in prunelora.__all__ and "Args:" in prunelora.evaluate_checkpoint.__doc__


def test_eval_loads_and_digests_the_data_once_and_reads_each_meta_once(run_cli, bench_out, tmp_path, monkeypatch):
    cache = bench_out / "cache"
    original = next(cache.glob("original-*"))
    loads, digests, metas = [], [], Counter()

    def counting(counter, fn):
        def wrapped(*args, **kwargs):
            counter.append(args[0] if args else None)
            return fn(*args, **kwargs)
        return wrapped

    def read_meta_counted(path):
        metas[Path(path).resolve()] += 1
        return real_read_meta(path)

    real_read_meta = api.read_meta
    monkeypatch.setattr(api, "load_dataset", counting(loads, api.load_dataset))
    monkeypatch.setattr(api, "data_digest", counting(digests, api.data_digest))
    monkeypatch.setattr(datasets, "data_digest", counting(digests, datasets.data_digest))
    monkeypatch.setattr(api, "read_meta", read_meta_counted)
    monkeypatch.setattr(evaluate_module, "read_meta", read_meta_counted)
    code, _, stderr = run_cli("eval", cache / "class3-retrain-seed1", "--reference", cache / "class3-retrain-seed0",
                              "--original", original, *EVAL_FLAGS)
    assert code == 0, stderr
    assert len(loads) == 1 and len(digests) == 1
    assert metas == {p.resolve(): 1 for p in (cache / "class3-retrain-seed1", cache / "class3-retrain-seed0", original)}
