"""`prunelora unlearn` and `prunelora methods`: method options come from the config dataclasses."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from prunelora.cli import (
    _add_common,
    _add_data,
    _add_forget,
    _device,
    _print_metrics,
    add_factories,
    forget_spec_from_args,
    register_command,
)
from prunelora.errors import InvalidInputError

_NOT_METHOD_OPTIONS = {"seed"}  # shared with the command's own --seed


def _option_type(annotation) -> tuple[type, bool]:
    """(argparse type, is_bool) for a config field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _option_type(args[0])
    if annotation is bool:
        return bool, True
    if origin is tuple:
        return str, False  # comma-separated list, split by the config's __post_init__
    return annotation, False


def method_options() -> dict[str, tuple[type, bool, set[str]]]:
    """Every method option: name -> (type, is_bool, methods that take it)."""
    from prunelora.methods import get_method, list_methods

    options: dict[str, tuple[type, bool, set[str]]] = {}
    for name in list_methods():
        cls = get_method(name).config_cls
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in _NOT_METHOD_OPTIONS:
                continue
            typ, is_bool = _option_type(hints[f.name])
            options.setdefault(f.name, (typ, is_bool, set()))[2].add(name)
    return options


def _field_help(name: str) -> str:
    """The `help` a config field declares in its metadata (the first method that has one)."""
    from prunelora.methods import get_method, list_methods

    for method in list_methods():
        for f in dataclasses.fields(get_method(method).config_cls):
            if f.name == name and f.metadata.get("help"):
                return f.metadata["help"]
    return ""


def _setup_unlearn(p: argparse.ArgumentParser) -> None:
    from prunelora.methods import list_methods

    p.add_argument("--checkpoint", required=True, help="the trained model's checkpoint directory")
    p.add_argument("--method", default="prunelora", help=f"one of: {', '.join(list_methods())} (default: %(default)s)")
    p.add_argument("--preset", default=None,
                   help="a shipped recipe by name (see configs/), e.g. prunelora-digits-resnet; "
                        "its keys are options of this command")
    p.add_argument("--save-adapter", default=None, metavar="DIR",
                   help="also save the LoRA adapter alone (warns: base + adapter still hold the forgotten data)")
    p.add_argument("--classifier-name", default=None, metavar="MODULE",
                   help="the classifier module (e.g. fc); default: found (head, get_classifier(), else the last "
                        "nn.Linear). It trains where the method says so and is never pruned")
    _add_data(p, dataset_default=None)
    add_factories(p)
    _add_forget(p)
    _add_common(p)
    g = p.add_argument_group("method options (each applies to the methods named; default: the method's own)")
    for name, (typ, is_bool, methods) in sorted(method_options().items()):
        flag = "--" + name.replace("_", "-")
        helptext = (_field_help(name) + "; " if _field_help(name) else "") + "for " + ", ".join(sorted(methods))
        if is_bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        else:
            g.add_argument(flag, type=typ, default=None, help=helptext)
    from prunelora.methods import renamed_options

    for old in renamed_options():  # hidden, any value: refused by the method, naming the option that replaced it
        g.add_argument("--" + old.replace("_", "-"), type=lambda value: value, default=None, help=argparse.SUPPRESS)


def cmd_unlearn(args: argparse.Namespace) -> int:
    """Make a trained model forget (a class, a random fraction, or listed records) with a method."""
    from prunelora.api import unlearn_checkpoint
    from prunelora.methods import get_method

    method = get_method(args.method)
    fields = {f.name for f in dataclasses.fields(method.config_cls)}
    from prunelora.methods import renamed_options

    overrides = {old: getattr(args, old) for old in renamed_options() if getattr(args, old) is not None}
    for name in method_options():
        value = getattr(args, name)
        if value is None:
            continue
        if name not in fields:
            raise InvalidInputError(
                f"--{name.replace('_', '-')} is not an option of method {args.method!r} "
                f"(its options: {', '.join(sorted(f for f in fields if f not in _NOT_METHOD_OPTIONS)) or 'none'})"
            )
        overrides[name] = value
    if "seed" in fields:
        overrides["seed"] = args.seed
    result = unlearn_checkpoint(args.checkpoint, forget_spec_from_args(args), args.method, out=args.out,
                                overwrite=args.overwrite, data_dir=args.data_dir, download=args.download,
                                device=_device(args), progress=not args.no_progress,
                                save_adapter=args.save_adapter, classifier=args.classifier_name, **overrides)
    _print_metrics(result.meta, result.path)
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    """List the registered unlearning methods, one line each."""
    from prunelora.methods import list_methods

    for name, summary in list_methods().items():
        print(f"{name:16s} {summary}")
    return 0


register_command("unlearn", cmd_unlearn, _setup_unlearn)
register_command("methods", cmd_methods, lambda p: None)
