"""`prunelora eval DIR [--reference RETRAIN_DIR] [--original DIR] [--json FILE]`."""

from __future__ import annotations

import argparse
import json
import math

from rich.table import Table

from prunelora.api import evaluate_checkpoint
from prunelora.checkpoint import atomic_write_text, check_writable
from prunelora.cli.options import (
    add_data_dir,
    add_device,
    add_factories,
    add_forget,
    forget_spec_from_args,
)
from prunelora.cli.safe_text import console, printable
from prunelora.errors import InvalidInputError
from prunelora.evaluation.attacks import default_attacks, get_attack, list_attacks
from prunelora.evaluation.relearn import RelearnConfig
from prunelora.training import check_device


def setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory to evaluate")
    p.add_argument("--reference", default=None, help="a retrain checkpoint of the same original (adds Avg.Gap)")
    p.add_argument("--original", default=None, metavar="DIR",
                   help="the original checkpoint, whose D_f accuracy relearning must regain (default: the path "
                        "recorded in the checkpoint's meta.json)")
    p.add_argument("--no-probe", action="store_true", help="skip the representation probe (Probe-FA, Probe-TA)")
    p.add_argument("--probe-layer", default=None, metavar="MODULE",
                   help="also probe this module's output (e.g. layers.1 of the CIFAR ResNets, blocks.1 of the ViT)")
    p.add_argument("--no-relearn", action="store_true", help="skip the relearning time (relearn_steps)")
    p.add_argument("--relearn-max-steps", type=int, default=RelearnConfig.max_steps, metavar="N",
                   help="relearning's cap: a model still below the target after N steps gets N (default: %(default)s)")
    p.add_argument("--attacks", default=None, metavar="NAME[,NAME...]",
                   help="membership-inference attacks to run, comma-separated (default: every attack that needs "
                        f"no shadow models); registered: {', '.join(list_attacks())}")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the metrics as JSON")
    add_data_dir(p)
    add_device(p)
    add_factories(p)
    add_forget(p)


def attacks_from_text(text: str) -> tuple[str, ...]:
    """`--attacks a,b`: registered names, each once; anything else is refused in one line."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not names:
        raise InvalidInputError(f"--attacks {text!r} names no attack; registered: {', '.join(list_attacks())}")
    for name in names:
        if get_attack(name).needs_shadow:  # get_attack refuses an unknown name, listing the accepted ones
            raise InvalidInputError(f"--attacks {name!r} needs shadow models, which `prunelora eval` does not "
                                    "train; run it from Python with its shadow data")
    return names


def run(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint: UA, RA, TA, FA, MIA attacks, probe, relearning, gaps to a retrain, and cost."""
    device = check_device(args.device)
    attacks = default_attacks() if args.attacks is None else attacks_from_text(args.attacks)
    if args.json is not None:  # before any work: a report that cannot be written is refused now
        check_writable(args.json, "--json", kind="file")
    found = evaluate_checkpoint(
        args.checkpoint, forget_spec_from_args(args, required=False), reference=args.reference,
        original=args.original, data_dir=args.data_dir, device=device, attacks=attacks, probe=not args.no_probe,
        probe_layer=args.probe_layer if not args.no_probe else None,
        relearn=None if args.no_relearn else RelearnConfig(max_steps=args.relearn_max_steps))
    if found.original_missing:
        print(f"relearning skipped: {printable(found.original_missing)}")  # (names a path from meta.json)
    metrics = found.metrics
    classes = found.meta.dataset.classes if found.meta.dataset is not None else None
    # class names come from meta.json: escaped, and printed with markup off
    table = Table(title=printable(f"{args.checkpoint}: forget {found.forget.describe(classes)}"))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, float) and math.isnan(value):
            text = "–"
        elif key == "relearn_steps" and metrics.get("relearn_capped"):
            text = f"≥{value:,.0f}"  # the cap: the true time is longer
        elif key in ("params", "nonzero_params", "macs", "trainable_params", "relearn_steps", "relearn_capped",
                     "relearn_ref_capped"):
            text = f"{value:,.0f}"  # counts
        else:
            text = f"{value:,.2f}"
        table.add_row(printable(key), text)
    console().print(table)
    if args.json:
        atomic_write_text(args.json, json.dumps(found.to_dict(), indent=2, default=float) + "\n")
    return 0
