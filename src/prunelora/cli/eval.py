"""`prunelora eval DIR [--reference RETRAIN_DIR] [--original DIR] [--json FILE]`."""

from __future__ import annotations

import argparse
import json
import math

from rich.console import Console
from rich.table import Table

from prunelora.api import load_for_unlearning
from prunelora.checkpoint import atomic_write_text, check_writable, read_meta
from prunelora.cli.options import (
    add_data_dir,
    add_device,
    add_factories,
    add_forget,
    forget_spec_from_args,
)
from prunelora.data import ForgetSpec
from prunelora.errors import InvalidInputError
from prunelora.evaluation.attacks import default_attacks, get_attack, list_attacks
from prunelora.evaluation.evaluate import check_reference, evaluate, original_for_relearning
from prunelora.evaluation.relearn import RelearnConfig, heldout_accuracy
from prunelora.models.classifier import find_module
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
    meta = read_meta(args.checkpoint)
    spec = forget_spec_from_args(args, required=False)
    if spec is None:
        if not meta.get("forget"):
            raise InvalidInputError(f"{args.checkpoint} forgot nothing; say what to evaluate against with --forget-class, "
                                    "--forget-fraction or --forget-indices")
        spec = ForgetSpec.from_dict(meta["forget"])
    relearn = None if args.no_relearn else RelearnConfig(max_steps=args.relearn_max_steps)
    original_path, no_original = original_for_relearning(meta, args.checkpoint, args.original) if relearn else (None, None)
    model, meta, _, splits = load_for_unlearning(args.checkpoint, spec, args.data_dir)
    if args.probe_layer and not args.no_probe:
        find_module(model, args.probe_layer)  # a wrong name fails before any work
    target, original, ref_model = None, None, None
    if original_path is not None:
        original = model if original_path == args.checkpoint else load_for_unlearning(original_path, spec, args.data_dir)[0]
        target = heldout_accuracy(original, splits, relearn, device=device)
    elif no_original:
        print(f"relearning skipped: {no_original}")
    options = {"probe": not args.no_probe, "probe_layer": args.probe_layer, "relearn": relearn,
               "relearn_target": target, "device": device,
               "attacks": attacks}
    reference_metrics = None
    if args.reference:
        ref_meta = read_meta(args.reference)
        check_reference({**meta, "forget": spec.to_dict()}, ref_meta)
        ref_model, _, _, _ = load_for_unlearning(args.reference, spec, args.data_dir)
        reference_metrics = evaluate(ref_model, splits, throughput=False, **options).metrics
    # The original and the retrain, where loaded, are the CKA references of the representation metrics.
    result = evaluate(model, splits, reference=reference_metrics, original_model=original, reference_model=ref_model,
                      **options)
    if no_original:
        result.relearn = {"skipped": no_original}
    cost = meta.get("cost") or {}
    metrics = dict(result.metrics)
    for key in ("wall_time_s", "peak_memory_mb", "trainable_params"):
        if key in cost:
            metrics[key] = float(cost[key])
    if reference_metrics is not None and "cost" in ref_meta and "wall_time_s" in cost:
        metrics["time_ratio"] = cost["wall_time_s"] / ref_meta["cost"]["wall_time_s"]
    table = Table(title=f"{args.checkpoint}: forget {spec.describe(meta['dataset'].get('classes'))}")
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
        table.add_row(key, text)
    Console().print(table)
    if args.json:
        payload = {"checkpoint": str(args.checkpoint), "forget": spec.to_dict(), "metrics": metrics, "mia": result.mia,
                   "probe": result.probe, "relearn": result.relearn, "representation": result.representation,
                   "reference": str(args.reference) if args.reference else None,
                   "original": str(original_path) if original_path else None}
        atomic_write_text(args.json, json.dumps(payload, indent=2, default=float) + "\n")
    return 0
