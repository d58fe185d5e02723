"""`prunelora bench --config FILE --out DIR`: methods against retrain over seeds and scenarios."""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex

from prunelora.bench import BenchConfig, bench, print_summary, split_method_key
from prunelora.bench.dryrun import plan_dry_run
from prunelora.bench.executor_config import KINDS
from prunelora.bench.executors import make_executor
from prunelora.cli.options import add_bench_overrides, add_factories
from prunelora.cli.safe_text import printable
from prunelora.errors import InvalidInputError, shown
from prunelora.presets import BENCH, preset_path, shipped_configs
from prunelora.training import check_device
from prunelora.training.distributed import world_size


def setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="bench YAML (see configs/, e.g. configs/demo-digits.yaml)")
    # dest bench_preset: `--preset` of the other commands loads option defaults, this one a benchmark
    p.add_argument("--preset", dest="bench_preset", default=None, metavar="NAME",
                   help=f"a shipped benchmark config by name instead of --config: {', '.join(shipped_configs(BENCH))}")
    p.add_argument("--out", required=True, help="output directory (resumable)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the cells a run would do (and those already done in --out) with a time estimate; "
                        "run and write nothing")
    add_bench_overrides(p)
    add_executor_flags(p)
    # a config naming a factory (model: factory:FILE.py:FUNC) runs it only when these name it too
    add_factories(p)
    p.set_defaults(_options_config=False)


def resolve_config(args: argparse.Namespace) -> None:
    """`args.config`: the file `--config` names, or the shipped benchmark `--preset` names."""
    preset = getattr(args, "bench_preset", None)
    if preset is not None and args.config is not None:
        raise InvalidInputError(f"--config {args.config!r} and --preset {preset!r}: give one of them")
    if preset is not None:
        args.config = str(preset_path(preset, BENCH))
    elif args.config is None:
        raise InvalidInputError("the following arguments are required: --config FILE or --preset NAME "
                                f"(shipped: {', '.join(shipped_configs(BENCH))})")


def add_executor_flags(p: argparse.ArgumentParser) -> None:
    """Where the cells run; each flag overrides the config's `executor:` section."""
    p.add_argument("--workers", default=None,
                   help="cells at once, each in its own process on this machine (default 1: one after another "
                        "in this process); torch threads per cell: cores // workers unless executor.threads says")
    p.add_argument("--executor", default=None, choices=KINDS,
                   help="local (this machine, --workers processes) or ray (Ray tasks, each asking "
                        "executor.cpus_per_task CPUs / gpus_per_task GPUs; needs pip install 'prunelora[ray]')")
    p.add_argument("--address", default=None,
                   help="with --executor ray: the cluster's head, HOST:PORT or ray://HOST:PORT "
                        "(default: start a local Ray instance)")


def executor_from_args(args: argparse.Namespace, config: BenchConfig):
    """The executor the config's `executor:` section and the flags describe (connected, for ray).

    Raises:
        InvalidInputError: a bad flag value, a missing ray install or an unreachable address.
    """
    workers = None
    if args.workers is not None:
        try:
            workers = int(args.workers)
        except ValueError:
            raise InvalidInputError(f"--workers {args.workers!r} must be a positive integer") from None
    settings = config.executor_settings(args.config).with_overrides(workers=workers, kind=args.executor,
                                                                    address=args.address)
    if config.factories() and (settings.kind == "ray" or settings.workers > 1):
        # a factory is trusted in this process only (its file named on this command line)
        raise InvalidInputError(f"{settings.describe()}: your model or dataset factory runs in this process "
                                "only; run this bench with --workers 1")
    if world_size() > 1 and (settings.kind == "ray" or settings.workers > 1):
        # under torchrun every process runs every cell together; workers would each start their own
        raise InvalidInputError(f"{settings.describe()}: cells in parallel and torchrun ({world_size()} "
                                "processes per cell) do not combine; use one or the other")
    return make_executor(settings)


def bench_config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The benchmark `--config` names, with what `--seeds`, `--retrain-seeds`, `--methods` and
    `--data-dir` override (used by `bench` and `demo`)."""
    config = BenchConfig.from_file(args.config)
    config.require_trusted(getattr(args, "model_factory", None), getattr(args, "dataset_factory", None), args.config)
    overrides = {}
    for flag in ("seeds", "retrain_seeds"):
        text = getattr(args, flag)
        if text:
            parts = text.split(",")
            if not all(re.fullmatch(r"\s*[0-9]{1,19}\s*", part) for part in parts):  # ASCII digits: no '1_0', '٣'
                raise InvalidInputError(f"--{flag.replace('_', '-')} {shown(text)} is not a comma-separated list of "
                                        "integers in [0, 2^63) (e.g. 0,1,2)")
            overrides[flag] = [int(part) for part in parts]
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


def print_line(message: str, *args, **kwargs) -> None:
    """The bench's progress lines, printed with what came from the config or a path escaped."""
    print(printable(message))


def command_line(args: argparse.Namespace) -> str:
    """The command as asked, for the report's "to reproduce" line."""
    return "prunelora " + " ".join(shlex.quote(str(a)) for a in args._argv)


def run(args: argparse.Namespace) -> int:
    """Benchmark methods against retrain over seeds: results.csv/json, report.md and plots."""
    resolve_config(args)
    config = bench_config_from_args(args)
    device = check_device(args.device)
    if args.dry_run:
        for line in plan_dry_run(config, args.out, device=device).lines(overwrite=args.overwrite):
            print(line)
        return 0
    executor = executor_from_args(args, config)  # a bad address or a missing ray: refused before any work
    try:
        rows, report = bench(config, args.out, overwrite=args.overwrite, device=device,
                             progress=not args.no_progress, command=command_line(args), executor=executor,
                             log=print_line)
    finally:
        executor.close()
    print_summary(rows, report)
    return 0
