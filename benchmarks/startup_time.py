"""Start-up time of `prunelora --help` and `prunelora info DIR`: the median of N fresh processes.

Each run is `python -m prunelora ...` in a new interpreter with PYTHONPATH=--src, timed from
launch to exit (one untimed run first warms the file cache). Point --src at another checkout's
`src` to measure it too, e.g. the code before a change:

    git worktree add /tmp/before <commit>            # or: git archive <commit> src | tar -x -C /tmp/before
    python benchmarks/startup_time.py --src /tmp/before/src --label before
    python benchmarks/startup_time.py --src src --label after

Rows are kept per label in --out (benchmarks/results/startup_time.txt): a new run replaces its
own label's rows only. Measure on an otherwise idle machine; `--quick` (one run, no warm-up)
only checks that the script works.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = "| label | command | runs | median s | min s | max s |"
RULE = "|---|---|---:|---:|---:|---:|"


def _env(src: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(src)}


def run_once(src: Path, args: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "prunelora", *args], env=_env(src), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"prunelora {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


def tiny_checkpoint(src: Path, folder: Path) -> Path:
    """A one-step digits ResNet-8, trained by the measured code itself (for `info`)."""
    out = folder / "checkpoint"
    subprocess.run([sys.executable, "-m", "prunelora", "train", "--dataset", "digits", "--model", "resnet8",
                    "--steps", "1", "--no-progress", "--out", str(out)], env=_env(src), check=True,
                   capture_output=True)
    return out


def measure(src: Path, args: list[str], runs: int, warm_up: bool) -> list[float]:
    if warm_up:
        run_once(src, args)
    return [run_once(src, args) for _ in range(runs)]


def write_rows(out: Path, label: str, rows: list[str], note: str) -> None:
    """Replace `label`'s rows in the table of `out` (created when missing), keeping the others'."""
    kept = []
    if out.is_file():
        kept = [line for line in out.read_text().splitlines()
                if line.startswith("| ") and line != HEADER and not line.startswith(f"| {label} |")]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("Start-up time of the prunelora command (benchmarks/startup_time.py): wall time of a fresh\n"
                   "`python -m prunelora ...` process, launch to exit.\n\n"
                   f"{note}\n\n{HEADER}\n{RULE}\n" + "".join(line + "\n" for line in kept + rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=str(HERE.parent / "src"), help="the source tree to measure (its src/)")
    parser.add_argument("--label", default=None, help="this measurement's name in the table (default: --src)")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command (default: %(default)s)")
    parser.add_argument("--checkpoint", default=None, help="the checkpoint `info` reads (default: train a tiny one)")
    parser.add_argument("--only", choices=("--help", "info"), default=None, help="measure one command only")
    parser.add_argument("--out", default=str(HERE / "results" / "startup_time.txt"))
    parser.add_argument("--quick", action="store_true", help="one run, no warm-up: a check that the script works")
    args = parser.parse_args()
    src = Path(args.src).resolve()
    runs, warm_up = (1, False) if args.quick else (args.runs, True)
    label = args.label or str(src)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        commands = {"--help": ["--help"]}
        if args.only != "--help":
            checkpoint = Path(args.checkpoint) if args.checkpoint else tiny_checkpoint(src, Path(tmp))
            commands["info"] = ["info", str(checkpoint)]
        for name, command in commands.items():
            if args.only not in (None, name):
                continue
            times = measure(src, command, runs, warm_up)
            rows.append(f"| {label} | prunelora {name} | {len(times)} | {statistics.median(times):.3f} | "
                        f"{min(times):.3f} | {max(times):.3f} |")
            print(rows[-1])
    note = (f"Last run: {time.strftime('%Y-%m-%d %H:%M')}, Python {platform.python_version()}, "
            f"{platform.machine()}, {os.cpu_count()} CPUs. The median is the number to compare.")
    write_rows(Path(args.out), label, rows, note)


if __name__ == "__main__":
    main()
