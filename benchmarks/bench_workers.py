"""Throughput of `prunelora bench --workers N`: cells per hour with 1 worker vs 2 (or more).

The same cells run once per worker count, each in a fresh bench folder that reuses one original
(trained by the first run, copied into the others; training it is not parallel, and no run's clock
includes it).
A run's clock starts at its first cell line on stdout and stops when the command exits (the
report is written then too, the same work for every count). Cells per hour = cells / that time.

By default a subset of configs/fashion-mnist-resnet8.yaml large enough to show the ratio: its
random-10% scenario only (not tuned to any class), seed 0 against retrain seed 0 (plus the second
retrain the noise floor needs), every method that runs there. The derived config is written beside
the results. Measure on an otherwise idle machine; `--config` with a tiny config only checks that
the script works:

    python benchmarks/bench_workers.py                                   # the measurement
    python benchmarks/bench_workers.py --config tiny.yaml --out /tmp/w.md --work /tmp/w   # a smoke test

Each worker count uses the default threads per cell (cores // workers; 1 worker: torch's default),
so the comparison is "the machine's cores as one process" vs "as N processes".
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "configs" / "fashion-mnist-resnet8.yaml"


def subset_config(source: Path, scenario: str | None, seeds: list[int] | None) -> dict:
    """`source` cut to one scenario (by name; None keeps all; the methods restricted to other
    scenarios dropped) and the given seeds (also the retrain seeds: each seed against its own
    retrain). Everything else, the executor section aside, is kept."""
    data = yaml.safe_load(source.read_text())
    if scenario is not None:
        chosen = [s for s in data["scenarios"] if s["name"] == scenario]
        if not chosen:
            names = ", ".join(s["name"] for s in data["scenarios"])
            raise SystemExit(f"--scenario {scenario!r} is not in {source}; its scenarios: {names}")
        data["scenarios"] = chosen
        # a method restricted to other scenarios (`scenarios: [...]`) has no cell here
        data["methods"] = {key: options for key, options in data["methods"].items()
                           if scenario in ((options or {}).get("scenarios") or [scenario])}
        for options in data["methods"].values():
            if options and "scenarios" in options:
                options["scenarios"] = [scenario]
    if seeds is not None:
        data["seeds"], data["retrain_seeds"] = seeds, list(seeds)  # two lists: no YAML alias
    data.pop("executor", None)  # the worker count is what is measured
    data["name"] = f"{data.get('name', 'bench')}-workers-subset"
    return data


def reuse(source: Path, folder: Path) -> None:
    """`source`'s stamp, cache (original and retrain models) and retrain cells copied into `folder`:
    the bench reuses them, and runs only the method cells."""
    if not (source / "bench.json").is_file():
        raise SystemExit(f"--reuse-from {source}: not a bench folder (no bench.json)")
    folder.mkdir(parents=True)
    shutil.copy2(source / "bench.json", folder / "bench.json")
    shutil.copytree(source / "cache", folder / "cache")
    for cell in (source / "cells").glob("*/retrain-*"):
        shutil.copytree(cell, folder / cell.relative_to(source))


def run(config: Path, folder: Path, workers: int, extra: list[str]) -> dict:
    """One `prunelora bench --workers N` run; its cells and the seconds from its first cell line."""
    command = [sys.executable, "-m", "prunelora", "bench", "--config", str(config), "--out", str(folder),
               "--no-progress", "--workers", str(workers), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    first_cell = None
    lines = []
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            lines.append(line)
            # the sequential runner's "<cell>: running", the parallel pass's "cells: K to run of T"
            if first_cell is None and (line.endswith(": running\n") or line.startswith("cells: ")):
                first_cell = time.perf_counter()
    end = time.perf_counter()
    if proc.returncode != 0:
        raise SystemExit(f"--workers {workers} failed ({proc.returncode}):\n{''.join(lines[-20:])}")
    if first_cell is None:
        raise SystemExit(f"--workers {workers}: no cell ran in {folder} (all reused?); pass a fresh --work")
    ran = sum(1 for line in lines if line.endswith(": running\n") or ": finished on " in line)
    return {"workers": workers, "cells": ran, "seconds": end - first_cell}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="bench config (default: %(default)s)")
    parser.add_argument("--scenario", default=None,
                        help="the one scenario to keep (default: random10 with the default config, else all)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds, also the retrain seeds "
                        "(default: 0 with the default config, else the config's)")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, help="passed to prunelora bench")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-workers",
                        help="scratch folder for the bench folders (emptied first; default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_workers.md")
    parser.add_argument("--reuse-from", type=Path, default=None,
                        help="a bench folder of an earlier run of the same derived config: its original, "
                             "retrain models and retrain cells are copied into every measured folder, so "
                             "that only the method cells run and are timed")
    args = parser.parse_args(argv)
    default = args.config.resolve() == DEFAULT_CONFIG.resolve()  # configs/ is a symlink into the package
    scenario = args.scenario or ("random10" if default else None)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else ([0] if default else None)
    counts = [int(w) for w in args.workers.split(",")]
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    config = args.work / "config.yaml"
    config.write_text(yaml.safe_dump(subset_config(args.config, scenario, seeds), sort_keys=False))
    extra = ["--data-dir", args.data_dir] if args.data_dir else []

    results = []
    for i, workers in enumerate(counts):
        folder = args.work / f"workers{workers}"
        if args.reuse_from is not None:
            reuse(args.reuse_from, folder)
        elif i:  # the first run's original (and its stamp), reused: its training is not measured anyway
            first = args.work / f"workers{counts[0]}"
            (folder / "cache").mkdir(parents=True)
            shutil.copy2(first / "bench.json", folder / "bench.json")
            for original in (first / "cache").glob("original-*"):
                shutil.copytree(original, folder / "cache" / original.name)
        results.append(run(config, folder, workers, extra))
        print(f"--workers {workers}: {results[-1]['cells']} cells in {results[-1]['seconds']:.0f} s", flush=True)
    base = results[0]["cells"] / results[0]["seconds"]
    lines = ["# `prunelora bench --workers N`: cells per hour", "",
             f"- config: `{args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config}`, "
             f"scenario {scenario or 'all'}, seeds {seeds or 'as configured'} (derived config below)",
             f"- machine: {platform.machine()}, {os.cpu_count()} cores; nothing else should run meanwhile",
             f"- command: `python benchmarks/bench_workers.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
             f"- measured {time.strftime('%Y-%m-%d %H:%M')}",
             *([f"- the original, the retrain models and the retrain cells reused from `{args.reuse_from}`: "
                "only the method cells ran and are timed"] if args.reuse_from is not None else []), "",
             "| workers | threads per cell | cells | seconds | cells per hour | vs first |",
             "|---:|---|---:|---:|---:|---:|"]
    for r in results:
        threads = "torch default" if r["workers"] == 1 else f"cores // {r['workers']}"
        rate = r["cells"] / r["seconds"]
        lines.append(f"| {r['workers']} | {threads} | {r['cells']} | {r['seconds']:.0f} | {rate * 3600:.0f} | "
                     f"{rate / base:.2f}x |")
    lines += ["", "Derived config:", "", "```yaml", config.read_text().rstrip(), "```", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
