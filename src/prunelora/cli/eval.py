"""`prunelora eval DIR [--reference RETRAIN_DIR] [--original DIR] [--json FILE]`."""

from __future__ import annotations

import argparse
import io
import json
import math

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
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
from prunelora.evaluation.chance import chance_note
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
    p.add_argument("--json", default=None, metavar="FILE",
                   help="also write the metrics as JSON (with the reference's metrics and the deltas to them)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr while evaluating")
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


COUNTS = ("params", "nonzero_params", "macs", "trainable_params", "relearn_steps", "relearn_capped",
          "relearn_ref_capped")


def _value_text(key: str, value, metrics: dict) -> str:
    if not isinstance(value, (int, float)) or math.isnan(value):
        return "–"
    if key == "relearn_steps" and metrics.get("relearn_capped"):
        return f"≥{value:,.0f}"  # the cap: the true time is longer
    return f"{value:,.0f}" if key in COUNTS else f"{value:,.2f}"


def _delta_text(key: str, delta) -> str:
    if delta is None or math.isnan(delta):
        return "–"
    return f"{delta:+,.0f}" if key in COUNTS else f"{delta:+,.2f}"


class _Stages:
    """While the evaluation runs: one line on stderr naming its stage, a spinner and the time spent
    (rich). Silent when disabled; when the evaluation fails it leaves nothing behind, so that a
    refusal is still one line."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self):
        if not self.enabled:
            return lambda text: None
        self._progress = Progress(SpinnerColumn(finished_text="✓"), TextColumn("{task.description}", markup=False),
                                  TimeElapsedColumn(), console=Console(stderr=True), transient=False)
        self._progress.start()
        self._task = self._progress.add_task("evaluating", total=1)
        return lambda text: self._progress.update(self._task, description=text)

    def __exit__(self, exc_type, *exc) -> None:
        if not self.enabled:
            return
        if exc_type is not None:
            self._progress.live.transient = True  # erased: the error line alone is printed
            if not self._progress.console.is_terminal:  # a log or a pipe: not even its blank line
                self._progress.console.file = io.StringIO()
        else:
            self._progress.update(self._task, completed=1, description="evaluated")
        self._progress.stop()


def run(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint: UA, RA, TA, FA, MIA attacks, probe, relearning, gaps to a retrain, and cost."""
    device = check_device(args.device)
    attacks = default_attacks() if args.attacks is None else attacks_from_text(args.attacks)
    if args.json is not None:  # before any work: a report that cannot be written is refused now
        check_writable(args.json, "--json", kind="file")
    with _Stages(not args.no_progress) as stage:
        found = evaluate_checkpoint(
            args.checkpoint, forget_spec_from_args(args, required=False), reference=args.reference,
            original=args.original, data_dir=args.data_dir, device=device, attacks=attacks, probe=not args.no_probe,
            probe_layer=args.probe_layer if not args.no_probe else None,
            relearn=None if args.no_relearn else RelearnConfig(max_steps=args.relearn_max_steps), on_stage=stage)
    skipped = found.evaluation.relearn.get("skipped")
    if skipped and not args.no_relearn:  # asked for and not run: say why (the JSON records it too)
        print(f"relearning skipped: {printable(skipped)}")  # (may name a path from meta.json)
    metrics, reference, deltas = found.metrics, found.reference_metrics, found.deltas
    at_chance = set(found.evaluation.attacks_at_chance)
    classwise = found.forget.kind == "class"
    classes = found.meta.dataset.classes if found.meta.dataset is not None else None
    # class names come from meta.json: escaped, and printed with markup off
    table = Table(title=printable(f"{args.checkpoint}: forget {found.forget.describe(classes)}"))
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = []
    for key, value in metrics.items():
        if key.endswith("-at-chance"):
            continue  # shown as a note on the attack's own rows
        row = [printable(key), _value_text(key, value, metrics)]
        if reference is not None:  # the retrain beside the model, and the model minus the retrain
            row += [_value_text(key, reference.get(key), reference), _delta_text(key, deltas.get(key))]
        attack = "confidence-svc" if key == "MIA" else key.removeprefix("MIA-").removesuffix("-acc")
        note = "at chance" if key.startswith("MIA") and attack in at_chance else \
            "retained classes only" if key == "val" and classwise else ""
        rows.append((row, note))
    if reference is not None:
        table.add_column("reference", justify="right")
        table.add_column("Δ", justify="right")
    noted = any(note for _, note in rows)
    if noted:
        table.add_column("note")
    for row, note in rows:
        table.add_row(*row, *([note] if noted else []))
    console().print(table)
    if reference is not None:
        print(f"reference: {printable(args.reference)}; Δ = value − reference")
    note = chance_note(found.evaluation.attacks_at_chance)
    if note:
        print(note)
    if args.json:
        atomic_write_text(args.json, json.dumps(found.to_dict(), indent=2, default=float) + "\n")
    return 0
