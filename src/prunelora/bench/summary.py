"""The benchmark's summary on the terminal: one compact table per scenario (report.md has every column)."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from prunelora.evaluation.chance import chance_note
from prunelora.evaluation.report import chance_seeds, summarize


def print_summary(rows: list[dict], report: Path) -> None:
    # markup off: a name or the --out path holding `[/]` is text, not a style (nor a crash)
    console = Console(markup=False, emoji=False)
    if console.width < 100:  # piped output defaults to 80 columns, which would cut the numbers
        console = Console(width=100, markup=False, emoji=False)
    # compact enough for an 80-column terminal; report.md has every column
    terminal = {"UA": "UA", "RA": "RA", "TA": "TA", "MIA": "MIA-Eff", "Avg.Gap": "Avg.Gap",
                "Out.Gap": "Out.Gap", "time_ratio": "t/retrain"}
    for scenario, methods in summarize(rows).items():
        present = [k for k in terminal if any(k in m for m in methods.values())]
        table = Table(title=f"scenario {scenario}: mean±std over seeds, %", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("method")
        for key in present:
            table.add_column(terminal[key], justify="right")
        for method, metrics in methods.items():
            cells = []
            for key in present:
                stat = metrics.get(key, (float("nan"), float("nan")))
                mean, std = stat
                digits = 2 if key == "time_ratio" else 1
                # one seed: no spread was measured, so none is printed
                spread = " n=1" if getattr(stat, "n", None) == 1 else f"±{std:.{digits}f}"
                cells.append(f"{mean:.{digits}f}{spread}")
            table.add_row(method, *cells)
        console.print(table)
        for method, metrics in methods.items():
            attacks = [k.removeprefix("MIA-").removesuffix("-at-chance") for k in metrics if k.endswith("-at-chance")]
            note = chance_note([a for a in attacks if chance_seeds(metrics, a)[0]])
            if note:
                console.print(f"{method}: {note}", soft_wrap=True, markup=False)
    console.print(f"report: {report}")
