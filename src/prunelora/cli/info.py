"""`prunelora info DIR`: a checkpoint's meta.json as a table (or as JSON).

It loads the checkpoint (weights checked against the architecture) and nothing of the methods:
no method, no peft is imported.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from prunelora.checkpoint import load_checkpoint
from prunelora.cli.options import add_factories
from prunelora.data import ForgetSpec


def setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("--json", action="store_true", help="print meta.json instead of a table")
    add_factories(p, dataset=False)


def run(args: argparse.Namespace) -> int:
    """Show a checkpoint's architecture, data, forget spec, recipe, metrics and cost."""
    _, meta = load_checkpoint(args.checkpoint)  # what `prunelora.info` returns
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
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
