"""Benchmark results as CSV, JSON, a Markdown report and PNG plots."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path

from prunelora.checkpoint import CheckpointMeta, atomic_write_text, library_versions
from prunelora.evaluation.plots import has_metric as _has
from prunelora.evaluation.plots import plot_frontier as _plot_frontier
from prunelora.evaluation.plots import plot_hiding as _plot_hiding
from prunelora.evaluation.plots import plot_losses as _plot_losses
from prunelora.evaluation.plots import plot_metrics as _plot_bars

# Columns of the summary table, in order; `higher` says which direction is better (None: neither).
TABLE_COLUMNS: list[tuple[str, str]] = [
    ("UA", "UA"), ("RA", "RA"), ("TA", "TA"), ("FA", "FA"), ("MIA", "MIA-Eff (conf-svc)"),
    ("Avg.Gap", "Avg.Gap"), ("Out.Gap", "Out.Gap (UA/RA/TA)"), ("Probe-FA", "Probe-FA"), ("Probe-TA", "Probe-TA"),
    ("Probe.Gap", "Probe.Gap"),
    ("Residue.Gap", "Residue.Gap"), ("CKA-original-forget", "CKA→orig (f)"), ("CKA-retrain-forget", "CKA→retrain (f)"),
    ("relearn_steps", "relearn steps"), ("relearn_ratio", "relearn / retrain"), ("relearn_acc@10", "relearn acc@10"),
    ("wall_time_s", "time s"), ("time_ratio", "time / retrain"),
    ("peak_memory_mb", "peak MiB"), ("trainable_params", "trainable"), ("sparsity", "sparsity"),
]
FIRST_COLUMNS = ["scenario", "method", "seed", "reference_seed"]
NOISE_FLOOR = "retrain-vs-retrain"  # the bench's rows comparing two retrains (`prunelora.bench.NOISE_FLOOR`)


class SeedStat(tuple):
    """`(mean, std)` over seeds that also knows `n`, how many seeds had a value: a one-seed cell
    prints `n=1`, since its std of 0 measures nothing."""

    n: int

    def __new__(cls, mean: float, std: float, n: int) -> SeedStat:
        stat = super().__new__(cls, (mean, std))
        stat.n = n
        return stat


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    vals = _finite(values)
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def summarize(rows: list[dict]) -> dict[str, dict[str, dict[str, tuple[float, float]]]]:
    """scenario -> method -> metric -> (mean, std) over seeds."""
    grouped: dict[str, dict[str, list[dict]]] = {}
    for row in rows:
        grouped.setdefault(row["scenario"], {}).setdefault(row["method"], []).append(row)
    out: dict = {}
    for scenario, methods in grouped.items():
        out[scenario] = {}
        for method, method_rows in methods.items():
            keys = [k for k in method_rows[0] if k not in FIRST_COLUMNS]
            out[scenario][method] = {}
            for k in keys:
                values = [r.get(k, float("nan")) for r in method_rows]
                out[scenario][method][k] = SeedStat(*mean_std(values), len(_finite(values)))
    return out


def _fmt(mean: float, std: float, key: str, n: int | None = None) -> str:
    if math.isnan(mean):
        return "–"
    if key == "trainable_params":
        return f"{mean:,.0f}"
    if key == "sparsity":
        return f"{mean:.3f}"
    # gaps to the retrain get two decimals: they are read against a noise floor that can be 0.01
    digits = 2 if key in ("time_ratio", "relearn_ratio", "Avg.Gap", "Out.Gap") or key.startswith("CKA") else 1
    if n == 1:  # one seed: no spread was measured, and "± 0.0" would claim one
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _bound(metrics: dict[str, tuple[float, float]], key: str) -> str | None:
    """"≥ " when relearning hit its cap in some seed (the steps, and the ratio, are lower bounds),
    "≤ " for a ratio whose retrain hit the cap (an upper bound), None when both did (no bound)."""
    if key not in ("relearn_steps", "relearn_ratio"):
        return ""
    capped = metrics.get("relearn_capped", (0.0, 0.0))[0] > 0
    reference_capped = key == "relearn_ratio" and metrics.get("relearn_ref_capped", (0.0, 0.0))[0] > 0
    if capped and reference_capped:
        return None
    return "≥ " if capped else "≤ " if reference_capped else ""


def cell_text(metrics: dict[str, tuple[float, float]], key: str) -> str:
    """A report cell: mean ± std over seeds (`n=1` for one seed), marked ≥ / ≤ where relearning hit
    its cap, and † on MIA-Eff where its attack was at chance in some seed."""
    stat = metrics.get(key, (float("nan"), float("nan")))
    mean, std = stat
    bound = _bound(metrics, key)
    if bound is None or math.isnan(mean):
        return "–"
    chance = " †" if key == "MIA" and chance_seeds(metrics, "confidence-svc")[0] else ""
    return bound + _fmt(mean, std, key, getattr(stat, "n", None)) + chance


def chance_seeds(metrics: dict[str, tuple[float, float]], attack: str) -> tuple[int, int]:
    """(seeds where `attack` was at chance, seeds it ran in) from a method's summary; (0, n) when it
    never was, (0, 0) when it did not run (or the cells predate the flag)."""
    stat = metrics.get(f"MIA-{attack}-at-chance")
    if stat is None or math.isnan(stat[0]):
        return 0, 0
    n = getattr(stat, "n", 1)
    return round(stat[0] * n), n


def _chance_lines(methods: dict[str, dict[str, tuple[float, float]]]) -> list[str]:
    """The report's paragraph naming, per method, the attacks at chance (none: no paragraph)."""
    attacks = sorted({k.removeprefix("MIA-").removesuffix("-at-chance") for m in methods.values() for k in m
                      if k.startswith("MIA-") and k.endswith("-at-chance")})
    found = []
    for method, metrics in methods.items():
        flagged = [(a, *chance_seeds(metrics, a)) for a in attacks]
        flagged = [f"{a} ({k} of {n} seed{'s' if n > 1 else ''})" for a, k, n in flagged if k]
        if flagged:
            found.append(f"`{method}`: {', '.join(flagged)}")
    if not found:
        return []
    text = ("**Attacks at chance** (balanced accuracy within two standard errors of 50 on its held-out members "
            "and non-members, or below: the attack cannot tell members from non-members, and its efficacy is a "
            "coin flip) — " + "; ".join(found) + ".")
    if any(chance_seeds(metrics, "confidence-svc")[0] for metrics in methods.values()):
        text += (" † marks an MIA-Eff whose `confidence-svc` attack was at chance: that MIA-Eff, and the quarter "
                 "of Avg.Gap it makes, say nothing; read Out.Gap (UA, RA, TA alone) there.")
    return [text, ""]


def markdown_table(summary: dict[str, dict[str, tuple[float, float]]],
                   columns: Sequence[tuple[str, str]] = TABLE_COLUMNS) -> str:
    """One scenario's mean ± std table, one row per method."""
    present = [(k, label) for k, label in columns if any(k in m for m in summary.values())]
    lines = ["| method | " + " | ".join(label for _, label in present) + " |",
             "|---|" + "---|" * len(present)]
    for method, metrics in summary.items():
        cells = [cell_text(metrics, k) for k, _ in present]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _defined(value):
    """An undefined metric (NaN, e.g. FA when no test class was forgotten) as None."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_results(rows: list[dict], out: Path) -> None:
    """results.csv and results.json; an undefined metric is an empty cell and a JSON null (JSON
    has no NaN)."""
    rows = [{k: _defined(v) for k, v in row.items()} for row in rows]
    columns = FIRST_COLUMNS + sorted({k for r in rows for k in r} - set(FIRST_COLUMNS))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)  # None is written as an empty cell
    atomic_write_text(out / "results.csv", buffer.getvalue(), collective=False)
    atomic_write_text(out / "results.json", json.dumps(rows, indent=1, default=float, allow_nan=False) + "\n",
                      collective=False)


def machine_description() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.system()} {platform.machine()} ({cpu}), {os.cpu_count()} CPU cores, "
            f"torch threads {torch.get_num_threads()}, {gpu}")


SPLIT_NAMES = {"forget": "D_f", "retain": "D_r", "val": "val", "test_retain": "test-retain",
               "test_forget": "test-forget"}


def _subset_line(original_meta: CheckpointMeta) -> list[str]:
    """The Setup line saying the original was trained on a train subset (none when it was not)."""
    subset = original_meta.dataset.train_subset if original_meta.dataset is not None else None
    if not subset:
        return []
    of = f" of {subset['of']:,}" if subset.get("of") else ""
    return [f"- training set: a class-stratified subset of {subset['size']:,}{of} training images (seed "
            f"{subset.get('seed', 0)}); validation is carved from it, the test set is whole"]


def _seeds_line(rows: list[dict], config: dict) -> str:
    """The Setup line of seeds: the methods' seeds (never the noise floor's retrain), the reference
    retrains' seeds, and the retrain run for the noise floor alone, if one was."""
    methods = sorted({r["seed"] for r in rows if r["method"] not in ("retrain", NOISE_FLOOR)})
    retrains = sorted({r["seed"] for r in rows if r["method"] == "retrain"})
    floor_only = sorted({r["seed"] for r in rows if r["method"] == NOISE_FLOOR} - set(retrains))
    line = f"- seeds: {methods}; retrain seeds: {retrains}"
    if floor_only:
        line += f"; and a retrain of seed {', '.join(map(str, floor_only))} for the noise floor alone"
    elif len(retrains) == 1 and config.get("noise_floor") is False:
        line += "; no retrain for the noise floor (`noise_floor: false`)"
    return line


def reference_text(rows: list[dict]) -> str:
    """Which retrain each seed's row was compared with, in words (for the report)."""
    pairs = sorted({(r["seed"], r["reference_seed"]) for r in rows
                    if r["method"] not in ("retrain", "retrain-vs-retrain") and "reference_seed" in r})
    if not pairs:
        return "the retrain"
    if all(seed == ref for seed, ref in pairs):
        return "the retrain of the same seed"
    refs = sorted({ref for _, ref in pairs})
    if len(refs) == 1:
        return f"the retrain of seed {refs[0]} (one reference for every seed)"
    return "the retrain of seed " + ", ".join(f"{ref} for seed {seed}" for seed, ref in pairs)


def _threads_lines(cells: dict) -> list[str]:
    """How many torch threads each cell ran with: wall times compare only under the same count."""
    counts: dict = {}
    for payload in cells.values():
        threads = payload["row"].get("threads")
        counts[threads] = counts.get(threads, 0) + 1
    if not counts or set(counts) == {None}:
        return []  # cells recorded before threads were
    text = ", ".join(f"{t if t is not None else 'unrecorded'} ({n} cells)" for t, n in
                     sorted(counts.items(), key=lambda item: (item[0] is None, item[0] or 0)))
    return [f"- torch threads per cell: {text}. Wall times and time / retrain compare only cells that ran with "
            "the same number of threads (a cell's ratio is to the retrains that ran like it; NaN where none did)"]


def write_report(out: Path, rows: list[dict], cells: dict, config: dict, original_meta: CheckpointMeta,
                 command: str, elapsed_s: float | None = None, cells_run: int | None = None) -> Path:
    """results.csv, results.json, plots/*.png and report.md from the finished cells (main process only)."""
    out = Path(out)
    (out / "plots").mkdir(exist_ok=True)
    write_results(rows, out)
    summary = summarize(rows)
    metrics = original_meta.metrics or {}
    original_wall = (original_meta.cost or {}).get("wall_time_s", float("nan"))
    lines = [f"# prunelora benchmark: {config.get('name', 'bench')}", ""]
    if config.get("note"):
        lines += [config["note"].strip(), ""]
    lines += [
        "## Setup", "",
        f"- dataset: `{config['dataset']}`; model: `{config['model']}` {config.get('model_kwargs') or ''}",
        *_subset_line(original_meta),
        f"- original: trained with `{json.dumps(config.get('train', {}))}` — test accuracy "
        f"{metrics.get('test', float('nan')):.2f}%, {original_wall:.1f} s",
        _seeds_line(rows, config),
        f"- methods and options: `{json.dumps(config.get('methods', {}))}`",
        f"- machine: {machine_description()}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in library_versions().items()),
    ]
    if elapsed_s is not None:
        ran = ""
        if cells_run is not None and cells_run < len(cells):
            ran = f" ({cells_run} of {len(cells)} cells run, the others reused from an earlier invocation)"
        lines.append(f"- this invocation took {elapsed_s:.0f} s end to end{ran}")
    trained = sum(p["row"].get("wall_time_s", 0.0) for p in cells.values()) \
        + (original_meta.cost or {}).get("wall_time_s", 0.0)
    lines.append(f"- training and unlearning runs of this folder (the original and every cell, evaluation "
                 f"excluded): {trained:.0f} s")
    lines += _threads_lines(cells)
    lines += ["", "To reproduce:", "", "```", command, "```", ""]
    lines += [
        "## Metrics", "",
        "UA = 100·(1 − Acc(D_f)); RA = Acc(D_r); TA = Acc(test, retained classes); FA = Acc(test, forgotten "
        "classes); MIA-Eff = % of D_f that the `confidence-svc` membership attack calls non-member; "
        f"Avg.Gap = mean |method − retrain| over UA, RA, TA, MIA-Eff, against {reference_text(rows)}; "
        "Out.Gap = the same over UA, RA and TA alone (no attack in it: read it where the attack behind MIA-Eff "
        "is at chance, marked †, and Avg.Gap where the attack works, as it also weighs membership); "
        "time = wall time of the unlearning run alone (evaluation excluded). All in %, mean ± std over seeds "
        "(n=1: one seed, no spread measured). "
        "The `retrain-vs-retrain` row compares every pair of retrains of different seeds: its Avg.Gap is the "
        "noise floor, against which every other gap is read.", "",
        "Probe-FA / Probe-TA = accuracy on the forgotten / retained test classes of a linear probe (standardised "
        "logistic regression) fitted on the frozen classifier-input features of one half of the test set and scored on "
        "the other (class-wise forgetting only); Probe.Gap = |Probe-FA − retrain's Probe-FA| (retrain is the "
        "reference, not 0: features learned from the other classes still separate a class never seen). The probe "
        "scores about half the forgotten test images, so its standard error is sqrt(p(1−p)/n) — about 2 points "
        "for 500 images. Relearn steps = SGD steps on a small fixed part of D_f (plus as many D_r images) until "
        "accuracy on held-out D_f images regains the set fraction of the original's, capped (≥: the cap was hit), "
        "BatchNorm statistics frozen, mean over relearn seeds; relearn acc@10 = that accuracy after 10 steps; "
        "relearn / retrain = that over the reference retrain's (the anamnesis index: ≈ 1 forgot like retrain, "
        "≪ 1 only hid).", "",
        "Residue.Gap = |Probe-Residue − retrain's|, where Probe-Residue = Probe-FA minus the probe's mean per-class "
        "accuracy on the retained classes: a repair that sharpens every class raises Probe-FA without raising the "
        "residue. CKA→orig (f) / CKA→retrain (f) = linear CKA of the classifier-input features of the forgotten "
        "class's test images to the original's / the reference retrain's (1 = the same up to rotation and scale): a "
        "model that forgot sits nearer the retrain.", "",
    ]
    for scenario, methods in summary.items():
        lines += [f"## Scenario `{scenario}`", ""]
        sizes = next((p["sizes"] for (s, _, _), p in cells.items() if s == scenario and p.get("sizes")), None)
        if sizes:
            lines += ["Images: " + ", ".join(f"{SPLIT_NAMES[k]} {v:,}" for k, v in sizes.items() if k in SPLIT_NAMES)
                      + ".", ""]
        lines += [markdown_table(methods), ""]
        lines += _chance_lines(methods)
        layers = sorted({k.split("@", 1)[1] for m in methods.values() for k in m if k.startswith("Probe-FA@")})
        for layer in layers:
            lines += [f"Probe on the output of `{layer}` (pooled over space or tokens):", "",
                      markdown_table(methods, [(f"Probe-FA@{layer}", "Probe-FA"), (f"Probe-TA@{layer}", "Probe-TA"),
                                               (f"Probe.Gap@{layer}", "Probe.Gap"),
                                               (f"Residue.Gap@{layer}", "Residue.Gap"),
                                               (f"CKA-retrain-forget@{layer}", "CKA→retrain (f)")]), ""]
        attack_cols = sorted({k for m in methods.values() for k in m if k.startswith("MIA-") and k.endswith("-acc")})
        if attack_cols:
            lines += ["Membership-inference attacks: efficacy on D_f / the attack's own balanced accuracy on held-out "
                      "members vs non-members (near 50 = the attack cannot tell members from non-members, and its "
                      "efficacy says little; \"at chance\": within two standard errors of 50, or below, in the "
                      "seeds counted).", "",
                      "| method | " + " | ".join(c.removeprefix("MIA-").removesuffix("-acc") for c in attack_cols) + " |",
                      "|---|" + "---|" * len(attack_cols)]
            for method, m in methods.items():
                cells_text = []
                for col in attack_cols:
                    eff = m.get(col.removesuffix("-acc"), (float("nan"), 0))[0]
                    acc = m.get(col, (float("nan"), 0))[0]
                    flagged, ran = chance_seeds(m, col.removeprefix("MIA-").removesuffix("-acc"))
                    chance = "" if not flagged else " (at chance)" if flagged == ran else \
                        f" (at chance in {flagged} of {ran} seeds)"
                    cells_text.append(f"{eff:.1f} / {acc:.1f}{chance}")
                lines.append(f"| {method} | " + " | ".join(cells_text) + " |")
            lines.append("")
        floor = [r for r in rows if r["scenario"] == scenario and r["method"] == NOISE_FLOOR]
        if not floor:
            why = " (one retrain seed, and `noise_floor: false` in the bench config)" \
                if config.get("noise_floor") is False else ""
            lines += [f"Noise floor: not measured{why}: how far two exact retrains differ is unknown here, so no "
                      "gap can be read against it.", ""]
        elif _finite([r["Avg.Gap"] for r in floor]):
            text = (f"Noise floor: two retrains with different seeds differ by Avg.Gap "
                    f"{statistics.fmean(_finite([r['Avg.Gap'] for r in floor])):.2f} on average ({len(floor)} pair(s)) "
                    "— a method closer than that is as good as exact retraining here.")
            out_gaps = _finite([r.get("Out.Gap", math.nan) for r in floor])
            if out_gaps:
                text += f" Their Out.Gap: {statistics.fmean(out_gaps):.2f}."
            probe_gaps = _finite([r.get("Probe.Gap", math.nan) for r in floor])
            if probe_gaps:
                text += f" Their Probe-FA differ by {statistics.fmean(probe_gaps):.1f} points on average."
            by_seed = {r["seed"]: r.get("relearn_steps", math.nan) for r in rows
                       if r["scenario"] == scenario and r["method"] in ("retrain", "retrain-vs-retrain")}
            retrain_steps = _finite([by_seed[seed] for seed in sorted(by_seed)])
            if len(retrain_steps) > 1:
                text += f" Their relearn steps: {', '.join(f'{s:.0f}' for s in retrain_steps)}."
            lines += [text, ""]
        bars, hist, front, hiding = (f"plots/{scenario}-{kind}.png"
                                     for kind in ("metrics", "losses", "frontier", "hiding"))
        _plot_bars(methods, scenario, out / bars)
        _plot_frontier(methods, scenario, out / front)
        # the loss histograms show each method's first seed
        first_seed_losses: dict = {}
        for (s, method, _seed), payload in sorted(cells.items(), key=lambda kv: kv[0][2]):
            if s == scenario and method in methods and method not in first_seed_losses:
                first_seed_losses[method] = payload["losses"]
        _plot_losses({m: first_seed_losses[m] for m in methods if m in first_seed_losses}, scenario, out / hist)
        lines += [f"![metrics]({bars})", "", f"![quality vs cost]({front})", ""]
        if _has(methods, "Probe.Gap"):
            _plot_hiding(methods, scenario, out / hiding)
            lines += [f"![forgotten or hidden: output gap vs probe gap]({hiding})", ""]
        lines += [f"![losses]({hist})", ""]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n", collective=False)
    return out / "report.md"
