"""Does PruneLoRA's gap to retrain shrink as the network gets wider? (issue 5)

The paper prunes half the channels of a ResNet-50 with capacity to spare; a 16-32-64-channel
ResNet-8 has little. This runs one bench config (default `benchmarks/fashion-mnist-width.yaml`:
class-wise forgetting, one seed, retrain / finetune / prunelora) at several width multipliers and
writes each into `<out>/w<width>/`, then a table of the gaps into `<out>/README.md`.

Run: .venv/bin/python benchmarks/width_sweep.py [--widths 0.5 1 2] [--out benchmarks/results/fashion-mnist-width]
Resumable like `prunelora bench` (each width is its own bench folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fashion_mnist_summary import gap3, read_rows  # noqa: E402

from prunelora.bench import BenchConfig, bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="benchmarks/fashion-mnist-width.yaml")
    parser.add_argument("--widths", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--out", default="benchmarks/results/fashion-mnist-width")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--data-dir", default=None, help="folder holding the dataset files")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    # run_fashion_mnist.sh passes its arguments on: the bench overrides other than these are
    # about the two main configs (seeds, methods) and are ignored here
    args, _ = parser.parse_known_args()
    base = BenchConfig.from_file(args.config)
    if args.data_dir:
        base = dataclasses.replace(base, data_dir=args.data_dir)
    out = Path(args.out)
    command = "python benchmarks/width_sweep.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    for width in args.widths:
        config = dataclasses.replace(base, name=f"{base.name}-w{width:g}",
                                     model_kwargs=dict(base.model_kwargs, width=width))
        config.validate(args.config)
        bench(config, out / f"w{width:g}", progress=not args.no_progress, command=command, device=args.device)
    lines = ["# PruneLoRA's gap to retrain against model width", "",
             f"Config `{args.config}` at width multipliers {', '.join(f'{w:g}' for w in args.widths)} "
             f"(channels 16·w, 32·w, 64·w); produced by `{command}`. One seed; gaps in points "
             "(Avg.Gap over UA, RA, TA and the confidence-SVC MIA efficacy; gap3 over UA, RA, TA).", "",
             "| width | params | retrain RA | retrain TA | method | UA | RA | TA | MIA-Eff | Avg.Gap | gap3 | time / retrain |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for width in args.widths:
        rows = read_rows(out / f"w{width:g}" / "results.csv")
        ref = next(r for r in rows if r["method"] == "retrain")
        for row in rows:
            if row["method"] == "retrain":
                continue
            lines.append(f"| {width:g} | {int(ref['params']):,} | {ref['RA']:.1f} | {ref['TA']:.1f} | {row['method']} | "
                         f"{row['UA']:.1f} | {row['RA']:.1f} | {row['TA']:.1f} | {row['MIA']:.1f} | "
                         f"{row['Avg.Gap']:.2f} | {gap3(row, ref):.2f} | {row['time_ratio']:.3f} |")
    (out / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
