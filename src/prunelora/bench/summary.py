"""The benchmark's summary on the terminal: one compact table per scenario (report.md has every column)."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from prunelora.evaluation.report import summarize


def print_summary(rows: list[dict], report: Path) -> None:
    # markup off: a name or the --out path holding `[/]` is text, not a style (nor a crash)
    console = Console(markup=False, emoji=False)
    if console.width < 100:  # piped output defaults to 80 columns, which would cut the numbers
        console = Console(width=100, markup=False, emoji=False)
    # compact enough for an 80-column terminal; report.md has every column
    terminal = {"UA": "UA", "RA": "RA", "TA": "TA", "MIA": "MIA-Eff", "Avg.Gap": "Avg.Gap",
                "time_ratio": "t/retrain"}
    for scenario, methods in summarize(rows).items():
        present = [k for k in terminal if any(k in m for m in methods.values())]
        table = Table(title=f"scenario {scenario}: mean±std over seeds, %", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("method")
        for key in present:
            table.add_column(terminal[key], justify="right")
        for method, metrics in methods.items():
            cells = []
            for key in present:
                mean, std = metrics.get(key, (float("nan"), float("nan")))
                cells.append(f"{mean:.2f}±{std:.2f}" if key == "time_ratio" else f"{mean:.1f}±{std:.1f}")
            table.add_row(method, *cells)
        console.print(table)
    console.print(f"report: {report}")
