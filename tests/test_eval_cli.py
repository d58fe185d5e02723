"""`prunelora eval`, run in-process on an unlearned model, its retrain reference and the original."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
from helpers import meta_json, one_error_line

from prunelora.checkpoint import META
from prunelora.evaluation.attacks import default_attacks


def _ok(result) -> str:
    code, stdout, stderr = result
    assert code == 0, stderr
    return stdout


def _row(stdout: str, key: str) -> float | None:
    """The value in the eval table's row `key` (rich draws `│ key │ value │`)."""
    match = re.search(rf"│\s*{re.escape(key)}\s*│\s*([^│\s]+)\s*│", stdout)
    if match is None:
        return None
    text = match.group(1)
    return float("nan") if text == "–" else float(text.replace(",", ""))


@pytest.fixture(scope="module")
def runs(run_cli, checkpoint_dir, tmp_path_factory) -> dict[str, Path]:
    """C (the session's original), U (prunelora, 2 steps, class 3) and R (retrain, class 3)."""
    root = tmp_path_factory.mktemp("eval")
    unlearned, retrained = root / "U", root / "R"
    _ok(run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-class", "3", "--method", "prunelora",
                "--steps", "2", "--out", unlearned, "--no-progress"))
    _ok(run_cli("retrain", "--checkpoint", checkpoint_dir, "--forget-class", "3", "--out", retrained,
                "--no-progress"))
    return {"C": checkpoint_dir, "U": unlearned, "R": retrained, "root": root}


@pytest.fixture(scope="module")
def u_vs_r(run_cli, runs) -> tuple[str, dict]:
    report = runs["root"] / "u-vs-r.json"
    stdout = _ok(run_cli("eval", runs["U"], "--reference", runs["R"], "--json", report))
    return stdout, json.loads(report.read_text())


def test_eval_prints_the_metrics(u_vs_r):
    stdout, _ = u_vs_r
    for key in ("UA", "RA", "TA", "FA", "MIA", "Avg.Gap", "MIA-loss-lr-acc", "params", "throughput"):
        value = _row(stdout, key)
        assert value is not None, f"no {key} row in:\n{stdout}"
        assert math.isfinite(value), key
    assert "forget class 3" in stdout


def test_eval_json(u_vs_r, runs, class3_splits):
    _, payload = u_vs_r
    assert payload["checkpoint"] == str(runs["U"])
    assert payload["reference"] == str(runs["R"])
    assert payload["forget"] == meta_json(runs["U"])["forget"]
    metrics = payload["metrics"]
    for key in ("UA", "RA", "TA", "FA", "MIA", "Avg.Gap", "params", "throughput", "size_mb",
                "wall_time_s", "peak_memory_mb", "trainable_params", "time_ratio"):
        assert key in metrics, key
        assert isinstance(metrics[key], (int, float)) and math.isfinite(metrics[key]), key
    assert 0 <= metrics["Avg.Gap"] <= 100
    assert metrics["time_ratio"] == pytest.approx(
        meta_json(runs["U"])["cost"]["wall_time_s"] / meta_json(runs["R"])["cost"]["wall_time_s"])
    assert set(payload["mia"]) == set(default_attacks())
    for attack, res in payload["mia"].items():
        assert res["attack"] == attack
        assert 0 <= res["attack_accuracy"] <= 100
        assert res["efficacy"] == metrics[f"MIA-{attack}"]
        assert res["n_members"] == res["n_nonmembers"] > 0
        assert res["n_heldout"] > 0
        assert res["n_forget"] == len(class3_splits.forget)


def test_eval_agrees_with_the_metrics_saved_at_unlearning(u_vs_r, runs):
    """Two code paths (split_metrics when saving, evaluate() here) measure the same model alike."""
    _, payload = u_vs_r
    saved = meta_json(runs["U"])["metrics"]
    for key in ("UA", "RA", "TA", "FA", "val"):
        assert payload["metrics"][key] == pytest.approx(saved[key], abs=1e-3), key


def test_gap_against_a_reference_computed_by_hand(u_vs_r, run_cli, runs):
    _, payload = u_vs_r
    ref_file = runs["root"] / "r.json"
    _ok(run_cli("eval", runs["R"], "--json", ref_file))
    ref = json.loads(ref_file.read_text())["metrics"]
    ours = payload["metrics"]
    expected = sum(abs(ours[k] - ref[k]) for k in ("UA", "RA", "TA", "MIA")) / 4
    assert ours["Avg.Gap"] == pytest.approx(expected)


def test_retrain_against_itself_has_zero_gap(run_cli, runs):
    report = runs["root"] / "r-vs-r.json"
    stdout = _ok(run_cli("eval", runs["R"], "--reference", runs["R"], "--json", report))
    assert json.loads(report.read_text())["metrics"]["Avg.Gap"] == 0.0
    assert _row(stdout, "Avg.Gap") == 0.0


def test_reference_that_is_not_a_retrain_is_refused(run_cli, runs):
    report = runs["root"] / "refused.json"
    line = one_error_line(run_cli("eval", runs["U"], "--reference", runs["C"], "--json", report), "eval")
    assert "not a retrain" in line
    assert not report.exists()
    line = one_error_line(run_cli("eval", runs["R"], "--reference", runs["U"]), "eval")
    assert "not a retrain" in line


def test_reference_for_another_forget_set_is_refused(run_cli, runs):
    line = one_error_line(run_cli("eval", runs["U"], "--reference", runs["R"], "--forget-class", "5"), "eval")
    assert "different set" in line


def test_original_needs_a_forget_set(run_cli, runs):
    line = one_error_line(run_cli("eval", runs["C"]), "eval")
    assert "--forget-class" in line and "forgot nothing" in line


def test_original_with_a_forget_class(run_cli, runs):
    report = runs["root"] / "c.json"
    stdout = _ok(run_cli("eval", runs["C"], "--forget-class", "3", "--json", report))
    payload = json.loads(report.read_text())
    assert payload["reference"] is None
    assert "Avg.Gap" not in payload["metrics"]
    assert payload["forget"]["classes"] == [3]
    for key in ("UA", "RA", "TA", "MIA"):
        assert math.isfinite(_row(stdout, key)), key


def test_original_against_its_retrain(run_cli, runs):
    """The original judged on class 3 against the retrain: the usual 'before' row of a table."""
    report = runs["root"] / "c-vs-r.json"
    _ok(run_cli("eval", runs["C"], "--forget-class", "3", "--reference", runs["R"], "--json", report))
    assert math.isfinite(json.loads(report.read_text())["metrics"]["Avg.Gap"])


def test_missing_checkpoint_is_one_line(run_cli, runs):
    line = one_error_line(run_cli("eval", runs["root"] / "absent"), "eval")
    assert "absent" in line
    line = one_error_line(run_cli("eval", runs["U"], "--reference", runs["root"] / "absent"), "eval")
    assert "absent" in line


def test_same_indices_from_another_file_are_the_same_forget_set(run_cli, runs, class3_splits):
    indices = "\n".join(str(int(i)) for i in class3_splits.forget_indices[:20]) + "\n"
    first, second = runs["root"] / "a-idx.txt", runs["root"] / "b-idx.txt"
    first.write_text(indices)
    second.write_text(indices)
    unlearned, retrained = runs["root"] / "U-idx", runs["root"] / "R-idx"
    _ok(run_cli("unlearn", "--checkpoint", runs["C"], "--forget-indices", first, "--method", "finetune",
                "--steps", "2", "--out", unlearned, "--no-progress"))
    _ok(run_cli("retrain", "--checkpoint", runs["C"], "--forget-indices", second, "--out", retrained,
                "--no-progress"))
    _ok(run_cli("eval", unlearned, "--reference", retrained))


# --------------------------------------------------------------------------- probe and relearning


def test_eval_measures_probe_and_relearning_against_the_reference(u_vs_r, run_cli, runs):
    """Defaults: the probe on the classifier's input, relearning with the original found through
    meta.json; both as gaps/ratios to the reference, computed as evaluating R alone gives them."""
    stdout, payload = u_vs_r
    ours = payload["metrics"]
    assert payload["original"] == str(runs["C"])  # the path U's meta.json records
    ref_file = runs["root"] / "r-alone.json"
    _ok(run_cli("eval", runs["R"], "--json", ref_file))
    ref = json.loads(ref_file.read_text())["metrics"]
    assert ours["Probe.Gap"] == pytest.approx(abs(ours["Probe-FA"] - ref["Probe-FA"]))
    assert ours["relearn_ratio"] == pytest.approx(ours["relearn_steps"] / ref["relearn_steps"])
    assert ref["relearn_steps"] > 0 and ref["relearn_capped"] == 0
    for key in ("Probe-FA", "Probe-TA", "Probe.Gap", "relearn_steps", "relearn_ratio"):
        assert _row(stdout, key) == pytest.approx(ours[key], abs=0.01), key
    assert payload["probe"]["classifier"]["layer"] == "input of head"
    assert payload["relearn"]["config"]["max_steps"] == 100
    assert len(payload["relearn"]["curve"]) == ours["relearn_steps"] + 1


def test_the_original_relearns_in_zero_steps(run_cli, runs):
    report = runs["root"] / "c-relearn.json"
    _ok(run_cli("eval", runs["C"], "--forget-class", "3", "--json", report, "--no-probe"))
    payload = json.loads(report.read_text())
    assert payload["original"] == str(runs["C"])
    assert payload["metrics"]["relearn_steps"] == 0
    assert "Probe-FA" not in payload["metrics"]


def test_probe_layer_and_switches(run_cli, runs):
    report = runs["root"] / "u-layer.json"
    stdout = _ok(run_cli("eval", runs["U"], "--probe-layer", "layers.1", "--no-relearn", "--json", report))
    metrics = json.loads(report.read_text())["metrics"]
    assert 0 <= metrics["Probe-FA@layers.1"] <= 100 and _row(stdout, "Probe-FA@layers.1") is not None
    assert "relearn_steps" not in metrics and "relearning skipped" not in stdout
    off = runs["root"] / "u-off.json"
    _ok(run_cli("eval", runs["U"], "--no-probe", "--no-relearn", "--json", off))
    assert not [k for k in json.loads(off.read_text())["metrics"] if k.startswith(("Probe", "relearn"))]


def test_a_capped_relearning_is_marked(run_cli, runs):
    report = runs["root"] / "r-capped.json"
    stdout = _ok(run_cli("eval", runs["R"], "--relearn-max-steps", "1", "--no-probe", "--json", report))
    metrics = json.loads(report.read_text())["metrics"]
    assert metrics["relearn_steps"] == 1 and metrics["relearn_capped"] == 1
    assert re.search(r"│\s*relearn_steps\s*│\s*≥1\s*│", stdout)


def test_without_the_original_relearning_is_skipped_in_one_line(run_cli, runs, tmp_path):
    moved = tmp_path / "U"
    shutil.copytree(runs["U"], moved)
    meta = meta_json(moved)
    meta["original"]["path"] = str(tmp_path / "gone")
    (moved / META).write_text(json.dumps(meta))
    report = tmp_path / "u.json"
    stdout = _ok(run_cli("eval", moved, "--no-probe", "--json", report))
    assert "relearning skipped: the original model is not at" in stdout and "--original" in stdout
    payload = json.loads(report.read_text())
    assert "relearn_steps" not in payload["metrics"] and "--original" in payload["relearn"]["skipped"]
    _ok(run_cli("eval", moved, "--no-probe", "--original", runs["C"], "--json", report))
    assert json.loads(report.read_text())["metrics"]["relearn_steps"] >= 0


def test_bad_probe_and_relearn_options_are_one_line(run_cli, runs, tmp_path, snapshot):
    before = snapshot(runs["U"])
    report = tmp_path / "x.json"
    line = one_error_line(run_cli("eval", runs["U"], "--probe-layer", "layer9", "--json", report), "eval")
    assert "'layer9'" in line and "layers" in line
    line = one_error_line(run_cli("eval", runs["U"], "--original", runs["R"], "--json", report), "eval")
    assert "--original" in line and "not the original" in line
    line = one_error_line(run_cli("eval", runs["U"], "--relearn-max-steps", "0", "--json", report), "eval")
    assert "max_steps 0" in line
    assert not report.exists()
    assert snapshot(runs["U"]) == before


def test_attacks_flag_runs_only_the_named_attacks(run_cli, runs, tmp_path):
    report = tmp_path / "two.json"
    _ok(run_cli("eval", runs["U"], "--attacks", "loss-lr, entropy-svc", "--no-probe", "--no-relearn",
                "--json", report))
    payload = json.loads(report.read_text())
    assert set(payload["mia"]) == {"loss-lr", "entropy-svc"}
    assert "MIA-entropy-svc" in payload["metrics"] and "MIA-confidence-svc" not in payload["metrics"]
    assert len(default_attacks()) > 2  # the default runs more than these two


def test_bad_attacks_are_one_line(run_cli, runs, tmp_path, snapshot):
    before = snapshot(runs["U"])
    report = tmp_path / "x.json"
    line = one_error_line(run_cli("eval", runs["U"], "--attacks", "loss-lr,lira9", "--json", report), "eval")
    assert "'lira9'" in line and "loss-lr" in line
    line = one_error_line(run_cli("eval", runs["U"], "--attacks", " , ", "--json", report), "eval")
    assert "names no attack" in line
    assert not report.exists()
    assert snapshot(runs["U"]) == before


def test_attacks_that_need_shadow_models_are_refused(run_cli, runs, tmp_path, monkeypatch):
    from prunelora.evaluation import attacks as registry

    monkeypatch.setattr(registry, "_ATTACKS", dict(registry._ATTACKS))
    registry.register_attack("toy-shadow", features=("confidence",), run=lambda inputs: None, needs_shadow=True,
                             summary="a stand-in that needs shadow models")
    line = one_error_line(run_cli("eval", runs["U"], "--attacks", "toy-shadow", "--json", tmp_path / "x.json"), "eval")
    assert "'toy-shadow'" in line and "shadow" in line
