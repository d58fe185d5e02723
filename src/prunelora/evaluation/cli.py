"""`prunelora eval DIR [--reference RETRAIN_DIR] [--json FILE]`."""

from __future__ import annotations

import argparse
import json
import math

from prunelora.cli import _add_forget, _device, forget_spec_from_args, register_command
from prunelora.errors import InvalidInputError


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint: UA, RA, TA, FA, MIA attacks, Avg.Gap to a retrain, and cost."""
    from rich.console import Console
    from rich.table import Table

    from prunelora.api import load_for_unlearning
    from prunelora.checkpoint import atomic_write_text, check_writable, read_meta
    from prunelora.data import ForgetSpec
    from prunelora.evaluation.evaluate import check_reference, evaluate

    device = _device(args)
    if args.json is not None:  # before any work: a report that cannot be written is refused now
        check_writable(args.json, "--json", kind="file")
    meta = read_meta(args.checkpoint)
    spec = forget_spec_from_args(args, required=False)
    if spec is None:
        if not meta.get("forget"):
            raise InvalidInputError(f"{args.checkpoint} forgot nothing; say what to evaluate against with --forget-class, "
                                    "--forget-fraction or --forget-indices")
        spec = ForgetSpec.from_dict(meta["forget"])
    model, meta, _, splits = load_for_unlearning(args.checkpoint, spec, args.data_dir)
    reference_metrics = None
    if args.reference:
        ref_meta = read_meta(args.reference)
        check_reference({**meta, "forget": spec.to_dict()}, ref_meta)
        ref_model, _, _, _ = load_for_unlearning(args.reference, spec, args.data_dir)
        reference_metrics = evaluate(ref_model, splits, throughput=False, device=device).metrics
    result = evaluate(model, splits, reference=reference_metrics, device=device)
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
        elif key in ("params", "nonzero_params", "macs", "trainable_params"):
            text = f"{value:,.0f}"  # counts
        else:
            text = f"{value:,.2f}"
        table.add_row(key, text)
    Console().print(table)
    if args.json:
        payload = {"checkpoint": str(args.checkpoint), "forget": spec.to_dict(), "metrics": metrics, "mia": result.mia,
                   "reference": str(args.reference) if args.reference else None}
        atomic_write_text(args.json, json.dumps(payload, indent=2, default=float) + "\n")
    return 0


def _setup_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory to evaluate")
    p.add_argument("--reference", default=None, help="a retrain checkpoint of the same original (adds Avg.Gap)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the metrics as JSON")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset files")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (default: %(default)s)")
    _add_forget(p)


register_command("eval", cmd_eval, _setup_eval)
