"""Numbers a user can trust: attacks at chance are flagged, Out.Gap beside Avg.Gap, relearning from the
original in the Python API (or why not), `val` over the retained classes, and an honest bench report
(seeds, n=1, the noise-floor retrain announced and optional)."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from helpers import meta_json, one_error_line, tiny_bench, tiny_resnet, write_yaml
from torch import nn

from prunelora.bench import NOISE_FLOOR
from prunelora.checkpoint import load_checkpoint, save_checkpoint
from prunelora.errors import InvalidInputError
from prunelora.evaluation.chance import attack_at_chance, chance_standard_error
from prunelora.evaluation.compare import compare
from prunelora.evaluation.evaluate import evaluate
from prunelora.evaluation.metrics import split_accuracies
from prunelora.evaluation.relearn import RelearnConfig, heldout_accuracy
from prunelora.training.loop import predict

QUICK = {"probe": False, "relearn": None, "throughput": False, "macs": False, "device": "cpu",
         "mia_max_samples": 200}


# --------------------------------------------------------------------------- attacks at chance


@pytest.mark.parametrize(("accuracy", "n_heldout", "expected"), [
    (50.0, 100, True),     # exactly chance
    (60.0, 100, True),     # SE 5: 60 − 2·5 = 50, still within the noise
    (60.5, 100, False),
    (45.0, 10_000, True),  # below chance: the attack learned the inverted direction
    (52.0, 10_000, False),  # SE 0.5: two points above chance is clear on 10,000 samples
    (float("nan"), 100, True),
])
def test_an_attack_is_at_chance_within_two_standard_errors_of_50(accuracy, n_heldout, expected):
    assert chance_standard_error(100) == pytest.approx(5.0)
    assert attack_at_chance(accuracy, n_heldout) is expected


class Blind(nn.Module):
    """The same logits for every image: no attack can tell members from non-members."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(64, 10)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.flatten(1))


class Memoriser(nn.Module):
    """Confidently right on the images it memorised (members), uniform on any other: every attack
    separates members from non-members."""

    def __init__(self, dataset) -> None:
        super().__init__()
        x, y = dataset[list(range(len(dataset)))]
        self.register_buffer("images", x.flatten(1))
        self.register_buffer("labels", y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        match = (x.flatten(1)[:, None, :] == self.images[None]).all(-1)  # (batch, memorised)
        found, which = match.any(1), match.float().argmax(1)
        logits = torch.zeros(len(x), 10)
        logits[found, self.labels[which[found]]] = 12.0
        return logits


def test_evaluate_flags_attacks_that_cannot_tell_members(class3_splits):
    blind = evaluate(Blind(), class3_splits, **QUICK)
    attacks = list(blind.mia)
    assert attacks and blind.attacks_at_chance == attacks
    for name, details in blind.mia.items():
        assert details["attack_accuracy"] == pytest.approx(50.0)
        assert details["at_chance"] is True
        assert details["standard_error"] == pytest.approx(50.0 / math.sqrt(details["n_heldout"]))
        assert blind.metrics[f"MIA-{name}-at-chance"] == 1.0
    assert blind.to_dict()["attacks_at_chance"] == attacks

    sharp = evaluate(Memoriser(class3_splits.retain), class3_splits, **QUICK)
    assert sharp.attacks_at_chance == []
    assert all(sharp.metrics[f"MIA-{name}-acc"] > 90 and sharp.metrics[f"MIA-{name}-at-chance"] == 0.0
               for name in sharp.mia)


@pytest.fixture(scope="module")
def blind_checkpoint(checkpoint_dir: Path, tmp_path_factory) -> Path:
    """The shared checkpoint with every weight zeroed: constant outputs, attacks at chance."""
    model, meta = load_checkpoint(checkpoint_dir)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    return save_checkpoint(model, tmp_path_factory.mktemp("blind") / "ckpt", meta)


def test_eval_flags_attacks_at_chance_in_the_table_and_the_json(run_cli, blind_checkpoint, tmp_path):
    report = tmp_path / "eval.json"
    code, stdout, stderr = run_cli("eval", blind_checkpoint, "--forget-class", "3", "--no-probe", "--no-relearn",
                                   "--attacks", "loss-lr,confidence-svc", "--json", report)
    assert code == 0, stderr
    for row in ("MIA-loss-lr-acc", "MIA-confidence-svc-acc", "MIA-loss-lr", "MIA"):
        shown = re.search(rf"│\s*{re.escape(row)}\s*│\s*([0-9.]+)\s*│\s*at chance\s*│", stdout)
        assert shown is not None, row
        assert row != "MIA-loss-lr-acc" or float(shown.group(1)) == 50.0
    assert "attacks at chance" in stdout and "loss-lr, confidence-svc" in stdout and "Out.Gap" in stdout
    assert re.search(r"│\s*val\s*│\s*[0-9.]+\s*│\s*retained classes only\s*│", stdout)
    payload = json.loads(report.read_text())
    assert payload["attacks_at_chance"] == ["loss-lr", "confidence-svc"]
    assert payload["mia"]["loss-lr"]["at_chance"] is True
    assert payload["metrics"]["MIA-confidence-svc-at-chance"] == 1.0


# --------------------------------------------------------------------------- Out.Gap


def test_out_gap_is_the_gap_over_ua_ra_ta_beside_avg_gap(class3_splits):
    method = {"UA": 90.0, "RA": 95.0, "TA": 93.0, "MIA": 0.0}
    reference = {"UA": 100.0, "RA": 99.0, "TA": 97.0, "MIA": 100.0}
    out = compare(method, reference)
    assert out["Out.Gap"] == pytest.approx((10 + 4 + 4) / 3)
    assert out["Avg.Gap"] == pytest.approx((10 + 4 + 4 + 100) / 4)  # a blind attack's 100 points dominate
    ev = evaluate(Blind(), class3_splits, reference=reference, **QUICK)
    by_hand = sum(abs(ev.metrics[k] - reference[k]) for k in ("UA", "RA", "TA")) / 3
    assert ev.metrics["Out.Gap"] == pytest.approx(by_hand)


# --------------------------------------------------------------------------- relearning from the original


RELEARN = RelearnConfig(max_steps=3, repeats=1, budgets=(2,))


def test_evaluate_relearns_when_given_the_original(class3_splits):
    original, model = tiny_resnet(0), tiny_resnet(1)
    ev = evaluate(model, class3_splits, original=original, **(QUICK | {"relearn": RELEARN}))
    assert 0 <= ev.metrics["relearn_steps"] <= RELEARN.max_steps and "skipped" not in ev.relearn
    expected = RELEARN.target_fraction * heldout_accuracy(original, class3_splits, RELEARN, device="cpu")
    assert ev.relearn["target"] == pytest.approx(expected)
    with pytest.raises(InvalidInputError, match="original="):
        evaluate(model, class3_splits, original=original, original_model=model, **QUICK)


def test_evaluate_without_the_original_says_how_to_give_it(class3_splits):
    ev = evaluate(tiny_resnet(1), class3_splits, **(QUICK | {"relearn": RELEARN}))
    assert "relearn_steps" not in ev.metrics
    assert "original=" in ev.relearn["skipped"] and "--original" in ev.relearn["skipped"]


def test_eval_prints_why_relearning_was_skipped(run_cli, checkpoint_dir, tmp_path):
    val = set(meta_json(checkpoint_dir)["dataset"]["val_indices"])
    index = next(i for i in range(100) if i not in val)
    request = tmp_path / "one.txt"
    request.write_text(f"{index}\n")
    report = tmp_path / "eval.json"
    code, stdout, stderr = run_cli("eval", checkpoint_dir, "--forget-indices", request, "--no-probe",
                                   "--attacks", "loss-lr", "--json", report)
    assert code == 0, stderr
    assert "relearning skipped: D_f has 1 image(s); relearning needs at least 2" in stdout
    assert "at least 2" in json.loads(report.read_text())["relearn"]["skipped"]


# --------------------------------------------------------------------------- val after class-wise forgetting


def test_val_counts_the_retained_classes_after_classwise_forgetting():
    logits = torch.tensor([[0.0, 0.0, 0.0, 5.0], [5.0, 0.0, 0.0, 0.0], [0.0, 5.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.0]])
    targets = torch.tensor([3, 3, 1, 2])  # the forgotten class 3 is now wrong once, the others right
    assert split_accuracies({"val": (logits, targets)})["val"] == 75.0
    assert split_accuracies({"val": (logits, targets)}, forget_classes=(3,))["val"] == 100.0


def test_unlearn_reports_val_of_the_retained_classes(run_cli, checkpoint_dir, class3_splits, tmp_path):
    out = tmp_path / "finetuned"
    code, stdout, stderr = run_cli("unlearn", "--checkpoint", checkpoint_dir, "--method", "finetune", "--steps", "1",
                                   "--forget-class", "3", "--out", out, "--no-progress")
    assert code == 0, stderr
    model, _ = load_checkpoint(out)
    logits, targets = predict(model, class3_splits.val, device="cpu")
    kept = targets != 3
    by_hand = 100.0 * float((logits[kept].argmax(1) == targets[kept]).double().mean())
    shown = re.search(r"val \(retained classes\) ([0-9.]+)", stdout)
    assert shown is not None, stdout
    assert float(shown.group(1)) == pytest.approx(by_hand, abs=0.01)
    assert meta_json(out)["metrics"]["val"] == pytest.approx(by_hand)


# --------------------------------------------------------------------------- the bench report


ATTACKS = ["loss-lr", "confidence-svc"]


def trust_bench(**extra) -> dict:
    return tiny_bench("trust", probe={"enabled": False}, relearn={"enabled": False},
                      mia={"attacks": ATTACKS, "max_samples": 100}, **extra)


@pytest.fixture(scope="module")
def bench_run(run_cli, tmp_path_factory) -> tuple[Path, str]:
    """A one-seed tiny bench (a 2-step original: its attacks are at chance): its folder and stdout."""
    root = tmp_path_factory.mktemp("trust")
    config = write_yaml(root / "bench.yaml", trust_bench())
    code, stdout, stderr = run_cli("bench", "--config", config, "--out", root / "out", "--no-progress")
    assert code == 0, stderr
    return root / "out", stdout


def test_bench_announces_the_noise_floor_retrain_and_lists_method_seeds_only(bench_run):
    out, stdout = bench_run
    assert "noise floor: one more retrain per scenario (seed 1)" in stdout and "noise_floor: false" in stdout
    report = (out / "report.md").read_text()
    assert "- seeds: [0]; retrain seeds: [0]; and a retrain of seed 1 for the noise floor alone" in report


def test_one_seed_cells_say_n_1(bench_run):
    out, stdout = bench_run
    report = (out / "report.md").read_text()
    table = report.split("## Scenario", 1)[1]
    assert "(n=1)" in table and "± 0.0" not in table
    assert " n=1" in stdout and "±0.0" not in stdout


def test_bench_rows_report_and_terminal_carry_out_gap(bench_run):
    out, stdout = bench_run
    rows = json.loads((out / "results.json").read_text())
    retrain = next(r for r in rows if r["method"] == "retrain")
    finetune = next(r for r in rows if r["method"] == "finetune")
    by_hand = sum(abs(finetune[k] - retrain[k]) for k in ("UA", "RA", "TA")) / 3
    assert finetune["Out.Gap"] == pytest.approx(by_hand)
    assert "Out.Gap (UA/RA/TA)" in (out / "report.md").read_text() and "Out.Gap" in stdout


def test_bench_flags_attacks_at_chance_in_rows_report_and_terminal(bench_run):
    out, stdout = bench_run
    rows = [r for r in json.loads((out / "results.json").read_text()) if r["method"] != NOISE_FLOOR]
    flagged = {(r["method"], a) for r in rows for a in ATTACKS if r[f"MIA-{a}-at-chance"] == 1.0}
    assert flagged, "a 2-step original leaves nothing for an attack to find"
    header = "MIA-confidence-svc-at-chance"
    assert header in (out / "results.csv").read_text().splitlines()[0]
    report = (out / "report.md").read_text()
    paragraph = next(line for line in report.splitlines() if line.startswith("**Attacks at chance**"))
    for method, attack in flagged:
        assert re.search(rf"`{re.escape(method)}`: [^;]*{re.escape(attack)} \(1 of 1 seed\)", paragraph)
    for method in {r["method"] for r in rows} - {m for m, _ in flagged}:
        assert f"`{method}`" not in paragraph
    assert "(at chance)" in report
    assert "attacks at chance" in stdout


def test_the_noise_floor_retrain_can_be_turned_off(bench_run, run_cli, tmp_path):
    out, _ = bench_run
    copy = Path(shutil.copytree(out, tmp_path / "out"))
    config = write_yaml(tmp_path / "bench.yaml", trust_bench(noise_floor=False))
    code, stdout, stderr = run_cli("bench", "--config", config, "--out", copy, "--no-progress")
    assert code == 0, stderr
    assert "noise floor: one more retrain" not in stdout
    rows = json.loads((copy / "results.json").read_text())
    assert rows and not [r for r in rows if r["method"] == NOISE_FLOOR]
    report = (copy / "report.md").read_text()
    assert "Noise floor: not measured" in report and "retrain-vs-retrain" not in report.split("## Scenario")[1]
    assert "no retrain for the noise floor (`noise_floor: false`)" in report


def test_a_bad_noise_floor_value_is_refused(run_cli, tmp_path):
    config = write_yaml(tmp_path / "bench.yaml", trust_bench(noise_floor="no"))
    line = one_error_line(run_cli("bench", "--config", config, "--out", tmp_path / "out", "--no-progress"), "bench")
    assert "noise_floor" in line and "'no'" in line and "true or false" in line
    assert not (tmp_path / "out").exists()
