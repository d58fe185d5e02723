"""The `prunelora` command: a static table from command name to the module that runs it.

Every command accepts `--config FILE.yaml` whose keys mirror its long options (`forget-class` or
`forget_class`, not both); flags given on the command line override the file. Errors a user can
cause print one line and exit with status 2; Ctrl-C prints one line and exits with 130, from the
first instant: this module imports only the standard library and prunelora's lowest modules at
the top, and a command's module (with torch, the methods, peft, ...) is imported only when that
command is parsed, so `prunelora --help` imports none of them and `prunelora info` neither the
methods nor peft.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import signal
import sys
import warnings
from collections.abc import Callable, Collection, Iterator

from prunelora.cli.safe_text import printable
from prunelora.errors import InvalidInputError, PruneLoRAError, did_you_mean, shown
from prunelora.factories import load_factory, untrust_all
from prunelora.presets import UNLEARN, preset_path, read_yaml_mapping
from prunelora.usercode import DEBUG_ENV, debugging

EXIT_USAGE = 2
DEBUG_HELP = (f"let an error raised by your own code (a factory, a dataset, a model's forward) through with its "
              f"traceback instead of one line (or set {DEBUG_ENV}=1)")

Setup = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]

# Every command, in the order `prunelora --help` lists them, with its one-line help.
COMMANDS: dict[str, str] = {
    "train": "Train an image classifier from scratch and save it as a checkpoint directory.",
    "import": "Bring in a model trained elsewhere: its weights, model and data made a checkpoint, as train writes one.",
    "retrain": "Exact unlearning: train from scratch on D_r with the original checkpoint's recipe.",
    "info": "Show a checkpoint's architecture, data, forget spec, recipe, metrics and cost.",
    "models": "List the registered models.",
    "datasets": "List the registered datasets and how each is reached offline.",
    "unlearn": "Make a trained model forget (a class, a random fraction, or listed records) with a method.",
    "methods": "List the registered unlearning methods, one line each.",
    "recommend": "Name the method and budget our benchmark supports for a checkpoint's model family and a forget request.",
    "presets": "List the shipped unlearning recipes (unlearn --preset NAME), one line each.",
    "eval": "Evaluate a checkpoint: UA, RA, TA, FA, MIA attacks, probe, relearning, gaps to a retrain, and cost.",
    "bench": "Benchmark methods against retrain over seeds: results.csv/json, report.md and plots.",
    "demo": "The embedded illustration: the paper's five methods on digits, 3 seeds, table and report.",
}


def command_functions(name: str) -> tuple[Setup, Run]:
    """`(setup, run)` of a command: `setup(parser)` adds its options, `run(args)` runs it.

    The command's module is imported here, when that command is parsed, and not at start-up:
    each pulls in what its command needs (torch, the methods and peft, matplotlib, ...).
    """
    if name == "train":
        from prunelora.cli import train as module
    elif name == "import":  # a keyword: not `from prunelora.cli import import`
        module = importlib.import_module("prunelora.cli.import")
    elif name == "retrain":
        from prunelora.cli import retrain as module
    elif name == "info":
        from prunelora.cli import info as module
    elif name == "models":
        from prunelora.cli import models as module
    elif name == "datasets":
        from prunelora.cli import datasets as module
    elif name == "unlearn":
        from prunelora.cli import unlearn as module
    elif name == "methods":
        from prunelora.cli import methods as module
    elif name == "recommend":
        from prunelora.cli import recommend as module
    elif name == "presets":
        from prunelora.cli import presets as module
    elif name == "eval":
        from prunelora.cli import eval as module
    elif name == "bench":
        from prunelora.cli import bench as module
    elif name == "demo":
        from prunelora.cli import demo as module
    else:
        raise KeyError(name)
    return module.setup, module.run


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def package_version() -> str:
    """This prunelora's version: the installed distribution's, else the source tree's `__version__`
    (a checkout run with PYTHONPATH=src, never installed)."""
    from importlib import metadata  # only for --version: start-up stays light

    try:
        return metadata.version("prunelora")
    except metadata.PackageNotFoundError:  # the package itself is initialised before any module of it
        return sys.modules["prunelora"].__version__


class _VersionAction(argparse.Action):
    """`--version`: the version is looked up only when asked for (importlib.metadata is not free)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"prunelora {package_version()}")
        parser.exit()


def parse_command_line(parser: argparse.ArgumentParser, subparsers: dict[str, argparse.ArgumentParser],
                       argv: list[str]) -> argparse.Namespace:
    """`parser.parse_args(argv)`, except that an unrecognized option is refused with the command's
    option it is closest to (`--epcohs` -> did you mean '--epochs'?)."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        own = subparsers.get(args.command) if args.command else None
        options = (own or parser)._option_string_actions
        hint = next((did_you_mean(e.split("=", 1)[0], options) for e in extras if e.startswith("--")), "")
        parser.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
    return args


def build_parser(only: Collection[str] | None = None
                 ) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The `prunelora` parser and one parser per command. Every command is listed (for `--help`);
    the commands in `only` (all when None) get their options, and their modules are imported."""
    parser = _Parser(prog="prunelora", description="Make a trained image classifier forget, and prove it.")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers = {}
    for name, text in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        if only is None or name in only:
            setup, run = command_functions(name)
            setup(p)
            # (SUPPRESS: not given after the command, it leaves `prunelora --debug COMMAND`'s value alone)
            p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
            # Required options may come from a --config file, so they are checked after it is read.
            p.set_defaults(_fn=run, _required=[a for a in p._actions if a.required])
            for action in p._actions:
                action.required = False
        subparsers[name] = p
    return parser, subparsers


# --------------------------------------------------------------------------- --config and --preset files


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _config_value(action: argparse.Action, value):
    """A YAML value for `action`, its type checked strictly (a bool is not a number, 1.5 is not an
    integer, a list only where the option takes several values). Raises ValueError when wrong."""
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


# Options naming Python code to run: a file (a --config, a preset) may not choose them (see below).
FACTORY_OPTIONS = ("model_factory", "dataset_factory")


def apply_config_file(parser: argparse.ArgumentParser, path: str,
                      command_line: argparse.Namespace | None = None) -> None:
    """Use a YAML file's keys as defaults of `parser`, so that command-line flags override them.

    A factory (`model-factory`, `dataset-factory`) runs the code it names, so a file may name one
    only when the command line names a factory for that option too (`command_line`: the options
    the command line gave); the command line's is then the one loaded. A file alone never makes
    prunelora import code.
    """
    data = read_yaml_mapping(path, "--config")
    known = {a.dest: a for a in parser._actions if a.dest not in ("help", "config", "preset")}
    defaults, spelled = {}, {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in known:
            raise InvalidInputError(f"--config {path}: unknown key {shown(key)}{did_you_mean(dest, known)} "
                                    "(keys mirror the command's long options)")
        if dest in spelled:
            raise InvalidInputError(f"--config {path}: {spelled[dest]!r} and {key!r} name the same option; "
                                    "give it once")
        spelled[dest] = key
        if dest in FACTORY_OPTIONS and value is not None and getattr(command_line, dest, None) is None:
            flag = "--" + dest.replace("_", "-")
            raise InvalidInputError(f"--config {path}: {key} is refused: a factory runs code, so only the command "
                                    f"line names one (give {flag} FILE.py:FUNC there)")
        action = known[dest]
        try:
            value = _config_value(action, value)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"--config {path}: {key}={shown(value)} is not a valid value ({exc})") from None
        if action.choices is not None and value not in action.choices:
            raise InvalidInputError(f"--config {path}: {key}={shown(value)} is not one of {list(action.choices)}")
        defaults[dest] = value
    parser.set_defaults(**defaults)


def trust_factories(args: argparse.Namespace) -> None:
    """Load the factories the command line names (only these ever run); `train` builds from them."""
    untrust_all()  # only what this command line names
    if getattr(args, "model_factory", None):
        name = load_factory(args.model_factory)
        if hasattr(args, "model"):
            args.model = name
    if getattr(args, "dataset_factory", None):
        name = load_factory(args.dataset_factory)
        if hasattr(args, "dataset"):
            args.dataset = name


# --------------------------------------------------------------------------- the entry point


def main(argv: list[str] | None = None) -> int:
    """The `prunelora` command. Ctrl-C at any moment, imports included, prints one line (exit 130);
    SIGTERM too (exit 143), each after the cleanup a stopped run does (see `Terminated`)."""
    with _terminate_as_interrupt():
        return _main_guarded(argv)


def _main_guarded(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        # While torch, numpy and peft load, Ctrl-C is held back: a KeyboardInterrupt raised inside
        # a C extension's import is printed there as a traceback (and swallowed), out of our reach.
        with _interrupts_held() as held:
            command = _named_command(argv)
            parsers = build_parser([command] if command is not None else [])
            quiet = False
            if command is not None:  # (torch: not for `prunelora --help`)
                from prunelora.training.distributed import is_main_process

                quiet = not is_main_process()
        if held:
            raise KeyboardInterrupt
        if quiet:  # under a distributed launcher, one process speaks for all
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the life of the process)
        return _main(argv, *parsers)
    except KeyboardInterrupt as exc:
        return interrupted(exc)


def _named_command(argv: list[str]) -> str | None:
    """The command `argv` names (its first word that is one), or None."""
    return next((a for a in argv if a in COMMANDS), None)


class _interrupts_held:
    """Within the block SIGINT only records itself (a non-empty list once it came); on leaving,
    the previous handler is back. Outside the main thread, where Python allows no handler, a no-op."""

    def __enter__(self) -> list:
        self.came: list = []
        try:
            self.previous = signal.signal(signal.SIGINT, lambda signum, frame: self.came.append(signum))
        except ValueError:  # not the main thread
            self.previous = None
        return self.came

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a `kill`, a scheduler's time limit), raised where the program is, as Ctrl-C is: so
    every cleanup runs (a checkpoint being saved removes its temporary files) and the same command
    can run again, instead of the process vanishing mid-write."""


class _terminate_as_interrupt:
    """Within the block SIGTERM raises `Terminated`; on leaving, the previous handler is back.
    Outside the main thread, or where SIGTERM is ignored (nohup-like parents), a no-op."""

    def __enter__(self) -> None:
        self.installed = False
        try:
            if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
                self.previous = signal.signal(signal.SIGTERM, self._raise)
                self.installed = True
        except ValueError:  # not the main thread
            pass

    @staticmethod
    def _raise(signum, frame) -> None:
        raise Terminated

    def __exit__(self, *exc) -> None:
        if self.installed:  # (a handler set outside Python reads as None: the default is restored)
            signal.signal(signal.SIGTERM, self.previous if self.previous is not None else signal.SIG_DFL)


def interrupted(exc: KeyboardInterrupt | None = None) -> int:
    """The one line and the exit status of a stopped command: 130 for Ctrl-C, 143 for SIGTERM."""
    if isinstance(exc, Terminated):
        sys.stderr.write("prunelora: terminated\n")
        return 128 + signal.SIGTERM
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while exiting prints nothing more
    sys.stderr.write("prunelora: interrupted\n")
    return 130


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings printed as one line while a command runs; the caller's formatter is put back after
    (`main` is also called from Python, e.g. by tests, whose own warnings must keep theirs)."""
    def one_line(message, category, filename, lineno, line=None) -> str:  # not the source line too
        return f"prunelora: warning: {printable(message)}\n"  # (its text may come from a checkpoint)

    previous = warnings.formatwarning
    warnings.formatwarning = one_line
    try:
        yield
    finally:
        warnings.formatwarning = previous


def _main(argv: list[str], parser: argparse.ArgumentParser, subparsers: dict[str, argparse.ArgumentParser]) -> int:
    with _one_line_warnings():
        return _run_command(argv, parser, subparsers)


def _run_command(argv: list[str], parser: argparse.ArgumentParser,
                 subparsers: dict[str, argparse.ArgumentParser]) -> int:
    command = ""
    try:
        command = _named_command(argv) or ""
        args = parse_command_line(parser, subparsers, argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        # A preset, then a --config file, then command-line flags: each overrides the one before.
        files = [str(preset_path(args.preset, UNLEARN))] if getattr(args, "preset", None) else []
        # (`bench --config` names a benchmark file, not option defaults)
        if getattr(args, "config", None) and getattr(args, "_options_config", True):
            files.append(args.config)
        for file in files:
            apply_config_file(subparsers[args.command], file, command_line=args)
        if files:
            args = parse_command_line(parser, subparsers, argv)
        args._argv = argv  # what was asked, for reports' "to reproduce" lines
        missing = [a.option_strings[0] if a.option_strings else a.dest for a in args._required
                   if getattr(args, a.dest) is None]
        if missing:
            raise InvalidInputError(f"the following arguments are required: {', '.join(missing)}")
        with debugging(bool(getattr(args, "debug", False))):
            trust_factories(args)
            return args._fn(args)
    except PruneLoRAError as exc:
        # one line, whatever the message holds, and nothing in it a terminal would act on
        message = printable(str(exc).replace("\n", " "))
        sys.stderr.write(f"prunelora {command}: error: {message}\n" if command else f"prunelora: error: {message}\n")
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
