"""The command line: a thin table from command name to a typed function of the Python API.

Every command accepts `--config FILE.yaml` whose keys mirror its long options (`forget-class` or
`forget_class`, not both); flags given on the command line override the file. Errors a user can
cause print one line and exit with status 2; Ctrl-C prints one line and exits with 130, from the
first instant (this module imports only the standard library at the top, so that `main` is
reached before any heavy import).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from prunelora.errors import InvalidInputError, MissingFileError, PruneLoRAError

EXIT_USAGE = 2
CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # shipped recipes (also ./configs in the repo)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


# --------------------------------------------------------------------------- option groups


def _add_data(p: argparse.ArgumentParser, dataset_default: str | None = "digits") -> None:
    g = p.add_argument_group("data")
    if dataset_default is not None:
        g.add_argument("--dataset", default=dataset_default,
                       help="dataset name (see `prunelora datasets`) or imagefolder:PATH (default: %(default)s)")
    g.add_argument("--data-dir", default=None, help="folder holding the dataset files (default: the dataset's own)")
    g.add_argument("--download", action="store_true", help="allow torchvision to download the dataset")


def add_factories(p: argparse.ArgumentParser, model: bool = True, dataset: bool = True) -> None:
    """`--model-factory` / `--dataset-factory`: a user's own model and data (see `prunelora.factories`)."""
    g = p.add_argument_group("your own model and data (Python files of yours; running one runs its code)")
    if model:
        g.add_argument("--model-factory", default=None, metavar="FILE.py:FUNC",
                       help="FUNC(num_classes, in_channels, image_size) returns your nn.Module classifier; "
                            "for a checkpoint it built, name the same factory again")
    if dataset:
        g.add_argument("--dataset-factory", default=None, metavar="FILE.py:FUNC",
                       help="FUNC() returns (train, test) or (train, test, class_names): your map-style Datasets; "
                            "for a checkpoint trained on them, name the same factory again")


def trust_factories(args: argparse.Namespace) -> None:
    """Load the factories the command line names (only these ever run); `train` builds from them."""
    from prunelora.factories import load_factory, untrust_all

    untrust_all()  # only what this command line names
    if getattr(args, "model_factory", None):
        name = load_factory(args.model_factory)
        if hasattr(args, "model"):
            args.model = name
    if getattr(args, "dataset_factory", None):
        name = load_factory(args.dataset_factory)
        if hasattr(args, "dataset"):
            args.dataset = name


def _add_forget(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to forget (exactly one)")
    g.add_argument("--forget-class", default=None, help="class index, or comma-separated indices (e.g. 3 or 3,5)")
    g.add_argument("--forget-fraction", type=float, default=None, help="a random fraction of train, in (0, 1)")
    g.add_argument("--forget-indices", default=None, help="file with one training index per line")
    g.add_argument("--forget-seed", type=int, default=0, help="seed of the random fraction (default: %(default)s)")


def _add_recipe(p: argparse.ArgumentParser) -> None:
    from prunelora.training.distributed import MIXED_PRECISION
    from prunelora.training.loop import OPTIMIZERS, SCHEDULES

    g = p.add_argument_group("training recipe")
    g.add_argument("--epochs", type=float, default=30, help="training epochs (default: %(default)s)")
    g.add_argument("--steps", type=int, default=None, help="optimizer steps; overrides --epochs")
    g.add_argument("--batch-size", type=int, default=128, help="(default: %(default)s)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="(default: %(default)s)")
    g.add_argument("--lr", type=float, default=0.05, help="peak learning rate (default: %(default)s)")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: %(default)s)")
    g.add_argument("--weight-decay", type=float, default=5e-4, help="(default: %(default)s)")
    g.add_argument("--schedule", choices=SCHEDULES, default="cosine", help="(default: %(default)s)")
    g.add_argument("--warmup-fraction", type=float, default=0.0, help="share of steps for linear warm-up")
    g.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm to this value")
    g.add_argument("--label-smoothing", type=float, default=0.0, help="(default: %(default)s)")
    g.add_argument("--augment", action="store_true", help="random crop + flip (32x32 colour data)")
    g.add_argument("--mixed-precision", choices=MIXED_PRECISION, default="no",
                   help="bf16 or fp16 autocast on a GPU; the CPU always trains in fp32 (default: %(default)s)")


def _add_common(p: argparse.ArgumentParser, out: bool = True) -> None:
    p.add_argument("--config", default=None, help="YAML file whose keys mirror these options")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    if out:
        p.add_argument("--out", required=True, help="output checkpoint directory")
        p.add_argument("--overwrite", action="store_true", help="replace a different run already in --out")


def forget_spec_from_args(args: argparse.Namespace, required: bool = True):
    from prunelora.data import ForgetSpec

    given = [name for name in ("forget_class", "forget_fraction", "forget_indices") if getattr(args, name) is not None]
    if len(given) > 1:
        raise InvalidInputError(
            "give exactly one of --forget-class, --forget-fraction, --forget-indices (got "
            + ", ".join("--" + g.replace("_", "-") for g in given) + ")"
        )
    if not given:
        if required:
            raise InvalidInputError("say what to forget: --forget-class C, --forget-fraction F or --forget-indices FILE")
        return None
    if args.forget_class is not None:
        value = args.forget_class
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        return ForgetSpec.from_classes(str(value))
    if args.forget_fraction is not None:
        return ForgetSpec(kind="fraction", fraction=args.forget_fraction, seed=args.forget_seed)
    return ForgetSpec.from_index_file(args.forget_indices)


def recipe_from_args(args: argparse.Namespace):
    from prunelora.training import TrainConfig

    return TrainConfig(
        epochs=args.epochs, steps=args.steps, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule,
        warmup_fraction=args.warmup_fraction, grad_clip=args.grad_clip, label_smoothing=args.label_smoothing,
        augment=args.augment, seed=args.seed, mixed_precision=args.mixed_precision,
    )


def _device(args) -> str | None:
    return check_device(args.device)


def check_device(device: str) -> str | None:
    """`--device` checked against what this machine has (None for `auto`); one line listing the
    available devices otherwise, instead of torch's traceback at the first tensor moved."""
    if device == "auto":
        return None
    import torch

    available = ["auto", "cpu"]
    if torch.cuda.is_available():
        available += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        available.append("mps")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        dev = None
    ok = dev is not None and (
        dev.type == "cpu"
        or (dev.type == "cuda" and torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count())
        or (dev.type == "mps" and "mps" in available))
    if not ok:
        raise InvalidInputError(f"--device {device!r} is not available here; available: {', '.join(available)}")
    return device


def _parse_kv(items: list[str] | None, flag: str) -> dict:
    """`key=value` pairs, values parsed as YAML scalars (`width=2` -> 2)."""
    import yaml

    out = {}
    for item in items or []:
        if "=" not in item:
            raise InvalidInputError(f"{flag} {item!r} is not key=value")
        key, value = item.split("=", 1)
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except (yaml.YAMLError, RecursionError):
            raise InvalidInputError(f"{flag} {item!r}: the value is not a YAML scalar") from None
    return out


# --------------------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    """Train an image classifier from scratch and save it as a checkpoint directory."""
    from prunelora.api import train

    result = train(args.dataset, args.model, recipe_from_args(args), model_kwargs=_parse_kv(args.model_arg, "--model-arg"),
                   data_dir=args.data_dir, download=args.download, val_fraction=args.val_fraction,
                   train_subset=args.train_subset, subset_seed=args.subset_seed, image_size=args.image_size,
                   out=args.out, overwrite=args.overwrite, device=_device(args), progress=not args.no_progress)
    _print_metrics(result.meta, result.path)
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    """Exact unlearning: train from scratch on D_r with the original checkpoint's recipe."""
    from prunelora.api import retrain

    spec = forget_spec_from_args(args)
    result = retrain(args.checkpoint, spec, out=args.out, seed=args.seed, overwrite=args.overwrite,
                     data_dir=args.data_dir, download=args.download, device=_device(args),
                     progress=not args.no_progress)
    _print_metrics(result.meta, result.path)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Show a checkpoint's architecture, data, forget spec, recipe, metrics and cost."""
    from prunelora.api import info

    meta = info(args.checkpoint)
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"checkpoint {args.checkpoint}", show_header=False)
    m = meta["model"]
    table.add_row("kind", str(meta.get("kind")))
    table.add_row("model", f"{m['name']} {m.get('kwargs') or ''} ({m['num_classes']} classes, "
                  f"{m['in_channels']}x{m['image_size']}x{m['image_size']})")
    subset = meta["dataset"].get("train_subset")
    table.add_row("dataset", meta["dataset"]["name"] + (f" (train subset of {subset['size']} images, seed "
                                                        f"{subset.get('seed', 0)})" if subset else ""))
    val = meta["dataset"].get("val_indices")
    if val is not None:
        table.add_row("validation", f"{len(val)} held-out training records, never trained on and never "
                      "forgotten (listed by --json under dataset.val_indices)")
    if meta.get("forget"):
        from prunelora.data import ForgetSpec

        table.add_row("forget", ForgetSpec.from_dict(meta["forget"]).describe(meta["dataset"].get("classes")))
    if meta.get("method"):
        table.add_row("method", f"{meta['method']['name']} {json.dumps(meta['method'].get('config', {}))}")
    table.add_row("recipe", json.dumps(meta.get("recipe")))
    for key, value in (meta.get("metrics") or {}).items():
        table.add_row(f"metric {key}", f"{value:.2f}" if isinstance(value, float) else str(value))
    for key, value in (meta.get("cost") or {}).items():
        table.add_row(f"cost {key}", f"{value:.3f}" if isinstance(value, float) else str(value))
    sparsity = (meta.get("sparsity") or {}).get("overall")
    if sparsity is not None:
        table.add_row("sparsity", f"{sparsity:.4f}")
    table.add_row("versions", ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()))
    Console().print(table)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List the registered models."""
    from prunelora.models import list_models

    for name, desc in list_models().items():
        print(f"{name:20s} {desc}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    """List the registered datasets and how each is reached offline."""
    from prunelora.data import list_datasets

    for name, how in list_datasets().items():
        print(f"{name:20s} {how}")
    return 0


def _print_metrics(meta: dict, path) -> None:
    parts = [f"{k} {v:.2f}" for k, v in meta.get("metrics", {}).items() if isinstance(v, float)]
    cost = meta.get("cost", {})
    print(f"{meta.get('kind')}: " + ", ".join(parts) + f"; {cost.get('wall_time_s', float('nan')):.1f} s"
          + (f" -> {path}" if path else ""))


# --------------------------------------------------------------------------- the table

Command = tuple[Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None]]


def _setup_train(p):
    _add_data(p)
    p.add_argument("--model", default="resnet20", help="model name (see `prunelora models`) (default: %(default)s)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="model argument, e.g. width=2 (repeatable)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of train held out for validation")
    p.add_argument("--train-subset", type=int, default=None, metavar="N",
                   help="train on N images of the train set, stratified by class (default: all)")
    p.add_argument("--subset-seed", type=int, default=0, help="seed choosing the --train-subset (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=32, metavar="PX",
                   help="the side imagefolder:PATH images are resized to (default: %(default)s)")
    add_factories(p)
    _add_recipe(p)
    _add_common(p)


def _setup_retrain(p):
    p.add_argument("--checkpoint", required=True, help="the original model's checkpoint directory")
    _add_data(p, dataset_default=None)
    add_factories(p)
    _add_forget(p)
    _add_common(p)


def _setup_info(p):
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("--json", action="store_true", help="print meta.json instead of a table")
    add_factories(p, dataset=False)


def _setup_none(p):
    pass


COMMANDS: dict[str, Command] = {
    "train": (cmd_train, _setup_train),
    "retrain": (cmd_retrain, _setup_retrain),
    "info": (cmd_info, _setup_info),
    "models": (cmd_models, _setup_none),
    "datasets": (cmd_datasets, _setup_none),
}


def register_command(name: str, fn: Callable[[argparse.Namespace], int],
                     setup: Callable[[argparse.ArgumentParser], None]) -> None:
    COMMANDS[name] = (fn, setup)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    _load_extra_commands()
    parser = _Parser(prog="prunelora", description="Make a trained image classifier forget, and prove it.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers = {}
    for name, (fn, setup) in COMMANDS.items():
        doc = (fn.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc)
        setup(p)
        # Required options may come from a --config file, so they are checked after it is read.
        p.set_defaults(_fn=fn, _required=[a for a in p._actions if a.required])
        for action in p._actions:
            action.required = False
        subparsers[name] = p
    return parser, subparsers


def _load_extra_commands() -> None:
    # Commands defined beside the subsystems they drive register themselves on import.
    import importlib

    for module in ("prunelora.methods.cli", "prunelora.evaluation.cli", "prunelora.bench"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def preset_path(name: str) -> Path:
    """A shipped YAML recipe by name (`configs/NAME.yaml`)."""
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise InvalidInputError(f"unknown preset {name!r}; accepted: {', '.join(known)}")
    return path


def _strict_yaml_loader():
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML
    would silently keep the last)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        loader.flatten_mapping(node)
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                            key_node.start_mark)
                seen.add(key)
            except TypeError:  # an unhashable key: the safe constructor reports it
                pass
        return loader.construct_mapping(node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return StrictLoader


def read_yaml_mapping(path: str | os.PathLike, label: str) -> dict:
    """A YAML file holding a mapping (an empty file is an empty mapping); one clear line otherwise."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise MissingFileError(f"{label} {str(path)!r} does not exist")
    try:
        data = yaml.load(file.read_bytes().decode("utf-8"), Loader=_strict_yaml_loader()) or {}  # noqa: S506
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{label} {str(path)!r} is not valid YAML ({str(exc).splitlines()[0]})") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"{label} {str(path)!r} is not UTF-8 text") from None
    except RecursionError:
        raise InvalidInputError(f"{label} {str(path)!r} is nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{label} {str(path)!r} must be a mapping of names to values")
    return data


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _config_value(action: argparse.Action, value):
    """A YAML value for `action`, its type checked strictly (a bool is not a number, 1.5 is not an
    integer, a list only where the option takes several values). Raises ValueError when wrong."""
    import math

    if value is None:
        return None
    if action.nargs == 0:  # a flag: --no-progress, --[no-]train-head
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value
    if isinstance(action, argparse._AppendAction):  # --model-arg, repeatable
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in items):
            raise ValueError("expected a string or a list of strings")
        return items
    if action.dest == "forget_class":  # 3, "3,5" or [3, 5]
        if _is_int(value) or isinstance(value, str) or (isinstance(value, list) and value
                                                        and all(_is_int(v) for v in value)):
            return value
        raise ValueError("expected a class index or a list of class indices")
    if action.type is int:
        if not _is_int(value):
            raise ValueError("expected an integer")
        return value
    if action.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError("expected a finite number")
        return float(value)
    if action.type is str and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value  # a method's list option (prune_types: [conv]); the method splits strings too
    if action.type in (None, str):
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    return action.type(value)


def apply_config_file(parser: argparse.ArgumentParser, path: str) -> None:
    """Use a YAML file's keys as defaults of `parser`, so that command-line flags override them."""
    data = read_yaml_mapping(path, "--config")
    known = {a.dest: a for a in parser._actions if a.dest not in ("help", "config", "preset")}
    defaults, spelled = {}, {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in known:
            raise InvalidInputError(f"--config {path}: unknown key {key!r} (keys mirror the command's long options)")
        if dest in spelled:
            raise InvalidInputError(f"--config {path}: {spelled[dest]!r} and {key!r} name the same option; "
                                    "give it once")
        spelled[dest] = key
        action = known[dest]
        try:
            value = _config_value(action, value)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"--config {path}: {key}={value!r} is not a valid value ({exc})") from None
        if action.choices is not None and value not in action.choices:
            raise InvalidInputError(f"--config {path}: {key}={value!r} is not one of {list(action.choices)}")
        defaults[dest] = value
    parser.set_defaults(**defaults)


def main(argv: list[str] | None = None) -> int:
    """The `prunelora` command. Ctrl-C at any moment, imports included, prints one line (exit 130)."""
    try:
        # While torch, numpy and peft load, Ctrl-C is held back: a KeyboardInterrupt raised inside
        # a C extension's import is printed there as a traceback (and swallowed), out of our reach.
        with _interrupts_held() as held:
            from prunelora.training.distributed import is_main_process

            parsers = build_parser()
        if held:
            raise KeyboardInterrupt
        if not is_main_process():  # under a distributed launcher, one process speaks for all
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the life of the process)
        return _main(sys.argv[1:] if argv is None else list(argv), *parsers)
    except KeyboardInterrupt:
        return interrupted()


class _interrupts_held:
    """Within the block SIGINT only records itself (a non-empty list once it came); on leaving,
    the previous handler is back. Outside the main thread, where Python allows no handler, a no-op."""

    def __enter__(self) -> list:
        import signal

        self.came: list = []
        try:
            self.previous = signal.signal(signal.SIGINT, lambda signum, frame: self.came.append(signum))
        except ValueError:  # not the main thread
            self.previous = None
        return self.came

    def __exit__(self, *exc) -> None:
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def interrupted() -> int:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while exiting prints nothing more
    sys.stderr.write("prunelora: interrupted\n")
    return 130


def _one_line_warnings() -> None:
    import warnings

    def one_line(message, category, filename, lineno, line=None) -> str:  # not the source line too
        return f"prunelora: warning: {message}\n"

    warnings.formatwarning = one_line


def _main(argv: list[str], parser: argparse.ArgumentParser, subparsers: dict[str, argparse.ArgumentParser]) -> int:
    command = ""
    try:
        _one_line_warnings()
        command = next((a for a in argv if a in subparsers), "")
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        # A preset, then a --config file, then command-line flags: each overrides the one before.
        files = [str(preset_path(args.preset))] if getattr(args, "preset", None) else []
        # (`bench --config` names a benchmark file, not option defaults)
        if getattr(args, "config", None) and getattr(args, "_options_config", True):
            files.append(args.config)
        for file in files:
            apply_config_file(subparsers[args.command], file)
        if files:
            args = parser.parse_args(argv)
        args._argv = argv  # what was asked, for reports' "to reproduce" lines
        missing = [a.option_strings[0] if a.option_strings else a.dest for a in args._required
                   if getattr(args, a.dest) is None]
        if missing:
            raise InvalidInputError(f"the following arguments are required: {', '.join(missing)}")
        trust_factories(args)
        return args._fn(args)
    except PruneLoRAError as exc:
        message = str(exc).replace("\n", " ")  # one line, whatever the message holds
        sys.stderr.write(f"prunelora {command}: error: {message}\n" if command else f"prunelora: error: {message}\n")
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
