"""Data-parallel runs: 2 CPU processes (gloo) under torchrun, against one process.

Each test starts real processes through `torch.distributed.run` (torchrun), which is what
`accelerate launch` does underneath on one machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

# Two processes on 2 cores: one thread each, or they slow each other down several times.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
# The global batch is the same for one and two processes (each of two gets half of it). What
# differs: BatchNorm normalises each half-batch with its own statistics, and the float sums of the
# averaged gradients are ordered differently. Measured here UA, RA and TA differ by <= 1.5 points.
TOLERANCE = 5.0


def torchrun(*args: str, nproc: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "prunelora", *map(str, args)]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout)


BENCH = {
    "name": "ddp", "dataset": "digits", "model": "resnet8",
    "train": {"epochs": 8, "lr": 0.05, "batch_size": 64, "seed": 0},
    "scenarios": [{"name": "class3", "forget_class": 3}], "seeds": [0],
    # budgets long enough to converge: mid-way through forgetting, UA moves by tens of points a step
    "methods": {"retrain": {}, "finetune": {"steps": 60, "batch_size": 64},
                "prunelora": {"preset": "prunelora-digits-resnet", "steps": 120, "batch_size": 64}},
    "mia": {"attacks": ["confidence-svc"], "max_samples": 500},
    # Relearning runs (its target is broadcast from the main process), capped at a few steps; the
    # noise floor is one more retrain cell, which the retrain cell already covers here.
    "relearn": {"enabled": True, "max_steps": 3, "repeats": 1, "budgets": [2], "max_eval": 100},
    "noise_floor": False,
}


def test_two_processes_write_one_checkpoint_and_one_report_matching_one_process(tmp_path, run_cli):
    config = tmp_path / "bench.yaml"
    config.write_text(yaml.safe_dump(BENCH))

    ddp = torchrun("bench", "--config", config, "--out", tmp_path / "ddp", "--no-progress")
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    # the one-process run in this process (one thread, as ENV gives the two): no second start-up
    code, _, stderr = run_cli("bench", "--config", config, "--out", tmp_path / "one", "--no-progress")
    assert code == 0, stderr[-3000:]

    # one report, one set of results, one copy of each checkpoint, no temporary file left over
    files = sorted(str(p.relative_to(tmp_path / "ddp")) for p in (tmp_path / "ddp").rglob("*") if p.is_file())
    assert files.count("report.md") == 1 and files.count("results.csv") == 1
    assert not [f for f in files if f.endswith(".tmp") or "/." in f or f.startswith(".")]
    assert files == sorted(str(p.relative_to(tmp_path / "one")) for p in (tmp_path / "one").rglob("*")
                           if p.is_file())
    assert ddp.stdout.count("report:") == 1  # only the main process speaks

    rows_ddp = {r["method"]: r for r in json.loads((tmp_path / "ddp" / "results.json").read_text())}
    rows_one = {r["method"]: r for r in json.loads((tmp_path / "one" / "results.json").read_text())}
    for method in ("retrain", "finetune", "prunelora"):
        for metric in ("UA", "RA", "TA"):
            assert abs(rows_ddp[method][metric] - rows_one[method][metric]) <= TOLERANCE, (method, metric)


def test_two_processes_train_and_unlearn_through_the_cli(tmp_path, run_cli):
    train = torchrun("train", "--dataset", "digits", "--model", "resnet8", "--epochs", "2", "--batch-size", "64",
                     "--out", tmp_path / "orig", "--no-progress")
    assert train.returncode == 0, train.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "orig").iterdir()) == ["meta.json", "model.safetensors"]
    assert train.stdout.count("original:") == 1

    unlearn = torchrun("unlearn", "--checkpoint", tmp_path / "orig", "--method", "prunelora", "--forget-class", "3",
                       "--steps", "4", "--batch-size", "64", "--out", tmp_path / "u", "--no-progress")
    assert unlearn.returncode == 0, unlearn.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "u").iterdir()) == ["meta.json", "model.safetensors"]
    code, stdout, stderr = run_cli("info", tmp_path / "u", "--json")
    assert code == 0, stderr
    meta = json.loads(stdout)
    assert meta["method"]["name"] == "prunelora" and meta["cost"]["steps"] == 4
    # the sparsity-preserving merge ran once, on the plain model: half of each conv's channels are zero
    assert all(layer["zero_channels"] == pytest.approx(0.5, abs=0.02) for layer in meta["sparsity"]["layers"].values())


def _children_with_rank(parent: int, wanted: str) -> list[int]:
    """PIDs of processes below `parent` whose environment has RANK=`wanted` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and f"RANK={wanted}".encode() in environ:
            found.append(int(entry.name))
    return found


def test_killing_one_process_fails_the_launch_instead_of_hanging(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "prunelora",
           "train", "--dataset", "digits", "--model", "resnet20", "--steps", "100000", "--batch-size", "64",
           "--out", str(tmp_path / "never"), "--no-progress"]
    launcher = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = []
        deadline = time.monotonic() + 120
        while not victim and time.monotonic() < deadline:
            time.sleep(1)
            victim = _children_with_rank(launcher.pid, "1")
        assert victim, "rank 1 never started"
        time.sleep(8)  # let both processes get into training (and its collectives)
        os.kill(victim[0], signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=120)  # bounded: a hang fails the test here
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.communicate()
    assert launcher.returncode != 0
    assert "SIGKILL" in stderr or "Signal 9" in stderr or "exitcode" in stderr, stderr[-2000:]
    assert not (tmp_path / "never").exists()  # nothing half-written
