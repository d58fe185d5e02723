"""Option builders shared by the commands, and the generator of flags from config dataclasses.

Every command module builds its parser from these and nothing else of another command. Flags
that configure a dataclass (`TrainConfig`, a method's config) are generated from its fields, so
the command line and the Python API cannot drift apart: the field's type, its default and its
`field(metadata={"help": ..., "choices": ...})` become the flag's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import types
import typing
from typing import Any

from prunelora.cli.safe_text import printable
from prunelora.data import ForgetSpec
from prunelora.errors import InvalidInputError, shown
from prunelora.presets import load_yaml_text

# --------------------------------------------------------------------------- flags from dataclasses


def option_type(annotation) -> tuple[type, bool]:
    """(argparse type, is_bool) for a config field annotation (`int | None` -> int)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return option_type(args[0])
    if annotation is bool:
        return bool, True
    if origin is tuple:
        return str, False  # comma-separated list, split by the config's __post_init__
    return annotation, False


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def add_field_option(group, field: dataclasses.Field, annotation, *, default: Any, help: str) -> None:
    """`--field-name` for one dataclass field. A bool is a switch: `--x` when its default is false,
    `--x/--no-x` otherwise (default None: the config's own)."""
    flag = flag_name(field.name)
    typ, is_bool = option_type(annotation)
    if is_bool:
        if default is False:
            group.add_argument(flag, action="store_true", help=help)
        else:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help)
    else:
        group.add_argument(flag, type=typ, default=default, choices=field.metadata.get("choices"), help=help)


def add_config_options(group, cls: type, *, exclude: frozenset[str] | set[str] = frozenset()) -> None:
    """One flag per field of the dataclass `cls`, in field order, with the field's default (shown
    in the help unless it is None or a switch's false) and its metadata's help and choices."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        default = None if f.default is dataclasses.MISSING else f.default
        text = f.metadata.get("help", "")
        if default is not None and not isinstance(default, bool):
            text = (text + " " if text else "") + "(default: %(default)s)"
        add_field_option(group, f, hints[f.name], default=default, help=text)


def config_from_args(cls: type, args: argparse.Namespace):
    """An instance of the dataclass `cls` from the flags `add_config_options` made (and `--seed`)."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


# --------------------------------------------------------------------------- option groups


_NUMBER = re.compile(r"[-+]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE)


def parse_kv(items: list[str] | None, flag: str) -> dict:
    """`key=value` pairs, values parsed as YAML scalars (`width=2` -> 2)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise InvalidInputError(f"{flag} {shown(item)} is not key=value")
        key, value = item.split("=", 1)
        # the one strict YAML reader: an alias cannot expand a short argument into gigabytes
        parsed = load_yaml_text(value, f"{flag} {shown(item)}: the value")
        if isinstance(parsed, str) and _NUMBER.fullmatch(parsed.strip()):
            parsed = float(parsed)  # YAML 1.1 reads `1e9` (no dot) and `nan` as text; a user means a number
        if isinstance(parsed, float) and not math.isfinite(parsed):  # .nan, .inf: no size or rate
            raise InvalidInputError(f"{flag} {shown(item)}: {parsed} is not a finite number")
        out[key.strip().replace("-", "_")] = parsed
    return out


def add_data_dir(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--data-dir", default=None, help="folder holding the dataset files (default: the dataset's own)")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: %(default)s)")


def add_data(p: argparse.ArgumentParser, dataset_default: str | None = "digits") -> None:
    g = p.add_argument_group("data")
    if dataset_default is not None:
        g.add_argument("--dataset", default=dataset_default,
                       help="dataset name (see `prunelora datasets`) or imagefolder:PATH (default: %(default)s)")
    add_data_dir(g)
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


def add_forget(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to forget (exactly one)")
    g.add_argument("--forget-class", default=None, help="class index, or comma-separated indices (e.g. 3 or 3,5)")
    g.add_argument("--forget-fraction", type=float, default=None, help="a random fraction of train, in (0, 1)")
    g.add_argument("--forget-indices", default=None, help="file with one training index per line")
    g.add_argument("--forget-seed", type=int, default=0, help="seed of the random fraction (default: %(default)s)")
    g.add_argument("--skip-heldout", action="store_true",
                   help="with --forget-indices: drop the indices in the original's validation split (never trained "
                        "on) instead of refusing the request; the result's meta.json records them (forget.skipped)")


def forget_spec_from_args(args: argparse.Namespace, required: bool = True) -> ForgetSpec | None:
    """The `--forget-*` flags as a `ForgetSpec` (parsed by `ForgetSpec.from_options`)."""
    return ForgetSpec.from_options(vars(args), required=required)


def add_common(p: argparse.ArgumentParser, out: bool = True) -> None:
    p.add_argument("--config", default=None, help="YAML file whose keys mirror these options")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    add_device(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    if out:
        p.add_argument("--out", required=True, help="output checkpoint directory")
        p.add_argument("--overwrite", action="store_true", help="replace a different run already in --out")


def add_bench_overrides(p: argparse.ArgumentParser) -> None:
    """What `bench` and `demo` may override of a benchmark configuration, and how they run."""
    p.add_argument("--seeds", default=None, help="comma-separated seeds (overrides the config)")
    p.add_argument("--retrain-seeds", default=None, help="comma-separated retrain seeds (default: --seeds)")
    p.add_argument("--methods", default=None, help="comma-separated methods (overrides the config)")
    add_data_dir(p)
    add_device(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--overwrite", action="store_true", help="replace a different run already in --out")


# --------------------------------------------------------------------------- output


def no_options(p: argparse.ArgumentParser) -> None:
    """The `setup` of a command that takes no option."""


def listing_options(p: argparse.ArgumentParser) -> None:
    """The `setup` of a listing (`methods`, `models`, `datasets`, `presets`): `--json`."""
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of objects (one per entry, with its name) instead of the table")


def print_listing(entries: dict[str, str], width: int) -> None:
    """A registry's `name  description` lines, names padded to `width`."""
    for name, text in entries.items():
        print(f"{name:{width}s} {text}")


def print_rows(rows: list[dict], columns: list[str], as_json: bool) -> None:
    """A listing: `rows` (dicts, each with a `name`) as a JSON list of objects, every key kept, or
    as one line each of `columns`' values, every column but the last padded to its widest value."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    cells = [["" if row.get(c) is None else str(row[c]) for c in columns] for row in rows]
    widths = [max((len(line[i]) for line in cells), default=0) for i in range(len(columns))]
    for line in cells:
        print(" ".join(text.ljust(widths[i]) if i < len(columns) - 1 else text for i, text in enumerate(line)))


def print_metrics(meta, path) -> None:
    """One line: the kind of run, its split accuracies, its wall time and where it was saved
    (`meta`: a `CheckpointMeta`)."""
    # after class-wise forgetting `val` counts the retained classes only (see `split_accuracies`): say so,
    # or a drop from the original's val reads as damage
    classwise = (meta.forget or {}).get("kind") == "class"
    parts = [f"{'val (retained classes)' if k == 'val' and classwise else k} {v:.2f}"
             for k, v in (meta.metrics or {}).items() if isinstance(v, float)]
    cost = meta.cost or {}
    line = (f"{meta.kind}: " + ", ".join(parts) + f"; {cost.get('wall_time_s', float('nan')):.1f} s"
            + (f" -> {path}" if path else ""))
    print(printable(line))  # the kind and the metric names come from meta.json, the path from outside


def print_skipped(splits) -> None:
    """One line when a deletion request's held-out records were dropped (`--skip-heldout`)."""
    spec = getattr(splits, "spec", None)
    if spec is not None and spec.skipped:
        shown = ", ".join(map(str, spec.skipped[:20])) + (", ..." if len(spec.skipped) > 20 else "")
        print(f"skipped {len(spec.skipped)} held-out indices of the request (in the original's validation split, "
              f"never trained on): {shown}; recorded in meta.json under forget.skipped")


def held_out_line(splits) -> str:
    """What a command says of the validation split it held out of the training records (`splits`
    of an original: its retain set is every record it trained on)."""
    held = len(splits.val_indices)
    total = held + len(splits.retain) + len(splits.forget)
    if held == 0:
        return f"validation: none held out; all {total} training records were trained on (--val-fraction 0)"
    return (f"validation: held out {held} of the {total} training records ({held / total:.0%}, --val-fraction), "
            "never trained on and never forgotten (meta.json: dataset.val_indices)")


def print_classifier(name: str | None, unlearned: bool) -> None:
    """Print the classifier a run used, so that a wrong guess shows.

    Args:
        name: the classifier's module name (None: none found).
        unlearned: the run unlearned (else it trained an original, whose classifier unlearning will find).
    """
    if name is None:
        print("classifier: none found; name it with --classifier-name when unlearning")
    elif unlearned:
        print(f"classifier: {name} (trained as the head where the method trains it, never pruned)")
    else:
        print(f"classifier: {name} (found; --classifier-name chooses another when unlearning)")
