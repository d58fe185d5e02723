"""`prunelora bench --config FILE --out DIR`: methods against retrain over seeds and scenarios."""

from __future__ import annotations

import argparse
import dataclasses
import shlex

from prunelora.bench import BenchConfig, bench, print_summary, split_method_key
from prunelora.cli.options import add_bench_overrides
from prunelora.errors import InvalidInputError
from prunelora.training import check_device


def setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="bench YAML (see configs/, e.g. configs/demo-digits.yaml)")
    p.add_argument("--out", required=True, help="output directory (resumable)")
    add_bench_overrides(p)
    p.set_defaults(_options_config=False)


def bench_config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The benchmark `--config` names, with what `--seeds`, `--retrain-seeds`, `--methods` and
    `--data-dir` override (used by `bench` and `demo`)."""
    config = BenchConfig.from_file(args.config)
    overrides = {}
    for flag in ("seeds", "retrain_seeds"):
        text = getattr(args, flag)
        if text:
            try:
                overrides[flag] = [int(s) for s in text.split(",")]
            except ValueError:
                raise InvalidInputError(
                    f"--{flag.replace('_', '-')} {text!r} is not a comma-separated list of integers (e.g. 0,1,2)"
                ) from None
    if args.methods:
        names = [m.strip() for m in args.methods.split(",") if m.strip()]
        for name in names:
            split_method_key(name, "--methods")  # an unknown method or a bad label first
        unknown = [m for m in names if "@" in m and m not in config.methods]
        if unknown:  # a typo would run the method's defaults under the variant's name
            raise InvalidInputError(f"--methods: variant {unknown[0]!r} is not in {args.config}; its variants: "
                                    f"{', '.join(m for m in config.methods if '@' in m) or 'none'}")
        overrides["methods"] = {m: config.methods.get(m, {}) for m in names}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if overrides:
        config = dataclasses.replace(config, **overrides)
        config.validate(args.config)
    return config


def command_line(args: argparse.Namespace) -> str:
    """The command as asked, for the report's "to reproduce" line."""
    return "prunelora " + " ".join(shlex.quote(str(a)) for a in args._argv)


def run(args: argparse.Namespace) -> int:
    """Benchmark methods against retrain over seeds: results.csv/json, report.md and plots."""
    config = bench_config_from_args(args)
    rows, report = bench(config, args.out, overwrite=args.overwrite, device=check_device(args.device),
                         progress=not args.no_progress, command=command_line(args))
    print_summary(rows, report)
    return 0
