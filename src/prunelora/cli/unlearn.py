"""`prunelora unlearn`: a method's options come from its config dataclass.

The method flags are the union of every registered method's config fields (`seed` aside: the
command's own `--seed`), each flag's help naming the methods that take it; they are built only
when this command is parsed.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing

from prunelora.api import unlearn_checkpoint
from prunelora.cli.options import (
    add_common,
    add_data,
    add_factories,
    add_field_option,
    add_forget,
    flag_name,
    forget_spec_from_args,
    print_classifier,
    print_metrics,
    print_skipped,
)
from prunelora.errors import InvalidInputError
from prunelora.methods import get_method, list_methods
from prunelora.training import check_device

_NOT_METHOD_OPTIONS = {"seed"}  # shared with the command's own --seed


@dataclasses.dataclass
class MethodOption:
    """One `--flag` of `unlearn`: a config field some methods share (its first method's field and
    type), with each help text the methods declare for it and the methods that declare it."""

    field: dataclasses.Field
    annotation: typing.Any
    helps: dict[str, set[str]] = dataclasses.field(default_factory=dict)  # help text -> methods
    methods: set[str] = dataclasses.field(default_factory=set)

    @property
    def help(self) -> str:
        """The flag's help: the one text and the methods it applies to, or, where methods mean
        different things by the same option (damp's and prunelora-deep's --depth-scaling), each
        text with its methods."""
        texts = {text: methods for text, methods in self.helps.items() if text}
        undocumented = self.helps.get("", set())
        if len(texts) <= 1:
            text = next(iter(texts), "")
            return (text + "; " if text else "") + "for " + ", ".join(sorted(self.methods))
        parts = [f"{', '.join(sorted(methods))}: {text}" for text, methods in texts.items()]
        if undocumented:
            parts.append("also for " + ", ".join(sorted(undocumented)))
        return "; ".join(parts)


def method_options() -> dict[str, MethodOption]:
    """Every method option by field name, over every registered method's config."""
    options: dict[str, MethodOption] = {}
    for name in list_methods():
        cls = get_method(name).config_cls
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in _NOT_METHOD_OPTIONS:
                continue
            option = options.setdefault(f.name, MethodOption(f, hints[f.name]))
            option.helps.setdefault(f.metadata.get("help", ""), set()).add(name)
            option.methods.add(name)
    return options


def setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="the trained model's checkpoint directory")
    p.add_argument("--method", default="prunelora", help=f"one of: {', '.join(list_methods())} (default: %(default)s)")
    p.add_argument("--preset", default=None,
                   help="a shipped recipe by name (`prunelora presets` lists them), e.g. prunelora-digits-resnet; "
                        "its keys are options of this command")
    p.add_argument("--save-adapter", default=None, metavar="DIR",
                   help="also save the LoRA adapter alone (warns: base + adapter still hold the forgotten data)")
    p.add_argument("--classifier-name", default=None, metavar="MODULE",
                   help="the classifier module (e.g. fc); default: found (head, get_classifier(), else the last "
                        "nn.Linear). It trains where the method says so and is never pruned")
    add_data(p, dataset_default=None)
    add_factories(p)
    add_forget(p)
    add_common(p)
    g = p.add_argument_group("method options (each applies to the methods named; default: the method's own)")
    for _, option in sorted(method_options().items()):
        # default None: a method not given the flag keeps its own default
        add_field_option(g, option.field, option.annotation, default=None, help=option.help)


def run(args: argparse.Namespace) -> int:
    """Make a trained model forget (a class, a random fraction, or listed records) with a method."""
    method = get_method(args.method)
    fields = {f.name for f in dataclasses.fields(method.config_cls)}
    overrides = {}
    for name in method_options():
        value = getattr(args, name)
        if value is None:
            continue
        if name not in fields:
            raise InvalidInputError(
                f"{flag_name(name)} is not an option of method {args.method!r} "
                f"(its options: {', '.join(sorted(f for f in fields if f not in _NOT_METHOD_OPTIONS)) or 'none'})"
            )
        overrides[name] = value
    if "seed" in fields:
        overrides["seed"] = args.seed
    result = unlearn_checkpoint(args.checkpoint, forget_spec_from_args(args), args.method, out=args.out,
                                overwrite=args.overwrite, data_dir=args.data_dir, download=args.download,
                                device=check_device(args.device), progress=not args.no_progress,
                                save_adapter=args.save_adapter, classifier=args.classifier_name, **overrides)
    print_skipped(result.splits)
    print_metrics(result.meta, result.path)
    print_classifier(result.classifier, unlearned=True)
    return 0
