"""`prunelora demo`: the embedded illustration, the shipped `demo-digits` benchmark."""

from __future__ import annotations

import argparse
import time

from prunelora.bench import bench, print_summary
from prunelora.cli.bench import bench_config_from_args, command_line, print_line
from prunelora.cli.options import add_bench_overrides
from prunelora.presets import BENCH, preset_path
from prunelora.training import check_device


def setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo-out", help="output directory (default: %(default)s)")
    add_bench_overrides(p)


def run(args: argparse.Namespace) -> int:
    """The embedded illustration: the paper's five methods on digits, 3 seeds, table and report."""
    args.config = str(preset_path("demo-digits", BENCH))
    start = time.perf_counter()
    config = bench_config_from_args(args)
    rows, report = bench(config, args.out, overwrite=args.overwrite, device=check_device(args.device),
                         progress=not args.no_progress, command=command_line(args), log=print_line)
    print_summary(rows, report)
    print(f"demo finished in {time.perf_counter() - start:.0f} s (digits is an illustration, not evidence: see the report)")
    return 0
