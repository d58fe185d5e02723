"""`prunelora info DIR`: a checkpoint's meta.json as a table (or as JSON).

It reads meta.json and nothing of the methods: no method, no peft is imported. The weights are
checked against the architecture (the model built, then loaded) only where that runs no code of
the user's: a model from a `--model-factory` is built only when that factory is named again, and
otherwise meta.json alone is shown, with a line saying the weights were not checked.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.table import Table

from prunelora.checkpoint import CheckpointMeta, DatasetRecord, load_model, read_meta
from prunelora.cli.options import add_factories
from prunelora.cli.safe_text import console, printable
from prunelora.data import ForgetSpec
from prunelora.factories import PREFIX, is_trusted


def setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("--json", action="store_true", help="print meta.json instead of a table")
    add_factories(p, dataset=False)


def check_weights(checkpoint: str, meta: CheckpointMeta) -> str:
    """Load the weights into the model meta.json describes, when that runs no code of the user's;
    returns what was done, for the output (a refusal raises, as loading does)."""
    name = meta.model.name
    if name.startswith(PREFIX) and not is_trusted(name):
        shown = name[len(PREFIX):]
        return (f"not checked: the model comes from your factory {shown}; pass --model-factory {shown} "
                "to build it and check that the weights load (meta.json alone is shown)")
    model = load_model(checkpoint, meta)
    count = sum(p.numel() for p in model.parameters())
    return f"checked: they load into the architecture ({count:,} parameters)"


def run(args: argparse.Namespace) -> int:
    """Show a checkpoint's architecture, data, forget spec, recipe, metrics and cost."""
    meta = read_meta(args.checkpoint)
    weights = check_weights(args.checkpoint, meta)
    if args.json:
        print(json.dumps(meta.as_json(), indent=2))
        if weights.startswith("not checked"):  # stdout stays the JSON alone
            sys.stderr.write(f"prunelora info: weights {weights}\n")
        return 0
    # every cell holds meta.json's strings: escaped (`printable`), and printed with markup off
    table = Table(title=f"checkpoint {printable(args.checkpoint)}", show_header=False)

    def add_row(*cells: str) -> None:
        table.add_row(*(printable(cell) for cell in cells))

    m, ds = meta.model, meta.dataset or DatasetRecord({})
    add_row("kind", str(meta.kind))
    add_row("model", f"{m.name} {m.kwargs or ''} ({m.num_classes} classes, "
            f"{m.in_channels}x{m.image_size}x{m.image_size})")
    add_row("weights", weights)
    imported = meta.extra.get("imported")
    if isinstance(imported, dict):
        add_row("imported", f"from {imported.get('weights')} (trained elsewhere; recipe "
                f"{imported.get('recipe', 'unknown')})")
    subset = ds.train_subset
    add_row("dataset", str(ds.name) + (f" (train subset of {subset['size']} images, seed "
                                       f"{subset.get('seed', 0)})" if subset else ""))
    if ds.val_indices is not None:
        add_row("validation", f"{len(ds.val_indices)} held-out training records, never trained on and never "
                "forgotten (listed by --json under dataset.val_indices)")
    if meta.forget:
        add_row("forget", ForgetSpec.from_dict(meta.forget).describe(ds.classes))
    if meta.method:
        add_row("method", f"{meta.method['name']} {json.dumps(meta.method.get('config', {}))}")
    add_row("recipe", json.dumps(meta.recipe))
    for key, value in (meta.metrics or {}).items():
        add_row(f"metric {key}", f"{value:.2f}" if isinstance(value, float) else str(value))
    for key, value in (meta.cost or {}).items():
        add_row(f"cost {key}", f"{value:.3f}" if isinstance(value, float) else str(value))
    sparsity = (meta.sparsity or {}).get("overall")
    if sparsity is not None:
        add_row("sparsity", f"{sparsity:.4f}")
    add_row("versions", ", ".join(f"{k} {v}" for k, v in (meta.versions or {}).items()))
    console().print(table)
    return 0
