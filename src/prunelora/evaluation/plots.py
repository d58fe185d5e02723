"""The benchmark's figures: metrics as a grid of deltas to the retrain, quality against cost with the
noise floor as a band and labels that do not collide, forgotten-or-hidden, and per-sample losses.

Every function takes one scenario's summary (method -> metric -> (mean, std) over seeds, see
`prunelora.evaluation.report.summarize`) or its per-sample losses, writes one PNG and returns the
figure (tests read its axes). Figures are drawn on the Agg canvas outside pyplot: no backend is
switched and no figure is registered with pyplot.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

PLOT_METRICS = ["UA", "RA", "TA", "MIA", "Avg.Gap", "Probe.Gap", "relearn_ratio", "time_ratio"]
# Accuracies drawn as method − retrain: on a 0–100 axis every method near the retrain is the same bar.
DELTA_METRICS = ("UA", "RA", "TA", "MIA")
# Already distances to the retrain: drawn from 0, with the noise floor (two retrains) as a band.
GAP_METRICS = ("Avg.Gap", "Probe.Gap")
# Ratios to the retrain: 1 is the retrain.
RATIO_METRICS = ("relearn_ratio", "time_ratio")
REFERENCE, NOISE_FLOOR = "retrain", "retrain-vs-retrain"
METRIC_LABELS = {"UA": "UA", "RA": "RA", "TA": "TA", "MIA": "MIA-Eff (conf-svc)", "Avg.Gap": "Avg.Gap",
                 "Probe.Gap": "Probe.Gap", "relearn_ratio": "relearn / retrain", "time_ratio": "time / retrain"}
NOISE_COLOUR = "0.55"


def _mean(summary: dict, method: str, key: str) -> float:
    return summary.get(method, {}).get(key, (math.nan, math.nan))[0]


def _std(summary: dict, method: str, key: str) -> float:
    std = summary.get(method, {}).get(key, (math.nan, math.nan))[1]
    return 0.0 if math.isnan(std) else std


def has_metric(summary: dict, key: str) -> bool:
    """True when some method has a finite mean for `key`."""
    return any(not math.isnan(m.get(key, (math.nan, 0))[0]) for m in summary.values())


def noise_floor(summary: dict, key: str) -> float | None:
    """The `retrain-vs-retrain` row's mean for `key` (two retrains' distance), or None."""
    value = _mean(summary, NOISE_FLOOR, key)
    return None if math.isnan(value) else value


# --------------------------------------------------------------------------- the metrics grid


def plot_metrics(summary: dict, scenario: str, path: Path, columns: int = 4):
    """A grid of panels, one per metric, one horizontal bar per method (names once per row).

    UA, RA, TA and MIA are drawn as method − retrain, so the axis is zoomed to the differences;
    Avg.Gap and Probe.Gap from 0 with the noise floor as a grey band; relearn and time ratios as
    points around 1 (time on a log axis). Without a retrain row the raw values are drawn, the
    axis zoomed to them.
    """
    metrics = [m for m in PLOT_METRICS if has_metric(summary, m)]
    methods = [m for m in summary if m != REFERENCE]
    ncols = max(1, min(columns, len(metrics)))
    nrows = max(1, -(-len(metrics) // ncols))
    panel_height = 0.9 + 0.2 * len(methods)
    fig = _figure(figsize=(3.3 * ncols + 1.4, panel_height * nrows + 0.7))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    ys = list(range(len(methods)))
    colours = _colours(len(methods))
    for ax, metric in zip(axes.flat, metrics, strict=False):
        means = [_mean(summary, m, metric) for m in methods]
        stds = [_std(summary, m, metric) for m in methods]
        reference = _mean(summary, REFERENCE, metric)
        label = METRIC_LABELS.get(metric, metric)
        if metric in DELTA_METRICS and not math.isnan(reference):
            values = [v - reference for v in means]
            ax.barh(ys, values, xerr=stds, color=colours, capsize=2, height=0.7)
            ax.axvline(0, color="black", linewidth=0.8)
            ax.set_xlabel(f"{label} − retrain's {reference:.1f} (points)", fontsize=8)
        elif metric in GAP_METRICS:
            ax.barh(ys, means, xerr=stds, color=colours, capsize=2, height=0.7)
            floor = noise_floor(summary, metric)
            if floor is not None:
                ax.axvspan(0, floor, color=NOISE_COLOUR, alpha=0.35, zorder=0, label="noise floor")
            ax.set_xlabel(f"{label} to retrain (grey: two retrains)", fontsize=8)
            ax.set_xlim(left=0)
        else:  # ratios, or raw values without a retrain: points, the axis zoomed to them
            ax.errorbar(means, ys, xerr=stds, fmt="none", ecolor="0.4", capsize=2)
            ax.scatter(means, ys, c=colours, zorder=3, s=22)
            if metric in RATIO_METRICS:
                ax.axvline(1, color="black", linewidth=0.8)
                ax.set_xlabel(f"{label} (1 = retrain)", fontsize=8)
            else:
                ax.set_xlabel(label, fontsize=8)
            if metric == "time_ratio" and all(v > 0 for v in means if not math.isnan(v)):
                ax.set_xscale("log")
        ax.set_title(label, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_yticks(ys, methods, fontsize=8)
    axes[0][0].invert_yaxis()  # the first method on top (shared by the row's panels)
    relative = "; accuracies as differences from the retrain" if REFERENCE in summary else ""
    fig.suptitle(f"{scenario}: mean ± std over seeds{relative}")
    fig.tight_layout()
    _save_fig(fig, path)
    return fig


# --------------------------------------------------------------------------- scatter plots with labels


def _colours(n: int) -> list:
    import matplotlib

    colours = matplotlib.colormaps["tab20"].colors
    return [colours[i % len(colours)] for i in range(n)]


def _scatter(ax, summary: dict, x_key: str, y_key: str) -> list[tuple[str, float, float]]:
    """One point per method with error bars over seeds, each its own colour and marker; returns
    (method, x, y) of the points drawn (labelled afterwards by `place_labels`)."""
    markers = "os^DvP*Xh<>p"
    colours = _colours(len(summary))
    drawn = []
    for i, (method, metrics) in enumerate(summary.items()):
        x, xs = metrics.get(x_key, (math.nan, 0))
        y, ys = metrics.get(y_key, (math.nan, 0))
        if math.isnan(x) or math.isnan(y):
            continue
        ax.errorbar(x, y, xerr=0 if math.isnan(xs) else xs, yerr=0 if math.isnan(ys) else ys,
                    fmt=markers[i % len(markers)], color=colours[i], capsize=3, label=method)
        drawn.append((method, x, y))
    return drawn


def _overlap(a: list[float], b: list[float], pad: float) -> float:
    """How far boxes a and b ([x0, y0, x1, y1], pixels) overlap vertically, when they overlap at all."""
    if a[0] >= b[2] + pad or b[0] >= a[2] + pad or a[1] >= b[3] + pad or b[1] >= a[3] + pad:
        return 0.0
    return min(a[3], b[3]) - max(a[1], b[1]) + pad


def place_labels(ax, points: list[tuple[str, float, float]], fontsize: float = 7.0, pad: float = 1.5) -> list:
    """Label each (text, x, y) point so that no two labels overlap: each starts right of its point
    and overlapping labels are pushed apart vertically until none overlap; a grey leader line
    joins a label to its point. Call after the axes' limits and the figure's layout are final.

    Returns:
        The annotations, in the order of `points`.
    """
    if not points:
        return []
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    anchors = ax.transData.transform([(x, y) for _, x, y in points])
    sizes = []
    for text, _, _ in points:  # the text's size in pixels does not depend on where it goes
        probe = ax.text(0, 0, text, fontsize=fontsize)
        extent = probe.get_window_extent(renderer)
        sizes.append((extent.width, extent.height))
        probe.remove()
    gap = 6.0 * fig.dpi / 72  # the label starts 6 points right of its point, centred on it
    right_edge = fig.bbox.width - 2
    boxes = []
    for (px, py), (w, h) in zip(anchors, sizes, strict=True):
        x0 = px + gap if px + gap + w <= right_edge else px - gap - w  # left of the point at the figure's edge
        boxes.append([x0, py - h / 2, x0 + w, py + h / 2])
    for _ in range(500):
        moved = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                push = _overlap(boxes[i], boxes[j], pad)
                if push <= 0:
                    continue
                moved = True
                # the lower label goes down, the higher up (ties: the earlier one down)
                low, high = (i, j) if boxes[i][1] + boxes[i][3] <= boxes[j][1] + boxes[j][3] else (j, i)
                boxes[low][1] -= push / 2
                boxes[low][3] -= push / 2
                boxes[high][1] += push / 2
                boxes[high][3] += push / 2
        if not moved:
            break
    to_points = 72 / fig.dpi
    annotations = []
    for (text, x, y), (px, py), box in zip(points, anchors, boxes, strict=True):
        offset = ((box[0] - px) * to_points, ((box[1] + box[3]) / 2 - py) * to_points)
        annotations.append(ax.annotate(
            text, (x, y), xytext=offset, textcoords="offset points", fontsize=fontsize, va="center",
            arrowprops={"arrowstyle": "-", "color": "0.55", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 3}))
    return annotations


def _without_floor(summary: dict) -> dict:
    return {m: v for m, v in summary.items() if m != NOISE_FLOOR}


def plot_frontier(summary: dict, scenario: str, path: Path):
    """Quality against cost: x = wall time / retrain's (log), y = Avg.Gap (outputs) and, where the
    probe is defined, Probe.Gap (features) in a second panel; error bars over seeds, the noise
    floor (two retrains' gap) a grey band from 0, every point labelled without collisions."""
    panels = [("Avg.Gap", "Avg.Gap to retrain (outputs; lower is better)")]
    if has_metric(summary, "Probe.Gap"):
        panels.append(("Probe.Gap", "Probe.Gap to retrain (features; lower is better)"))
    fig = _figure(figsize=(6.4 * len(panels), 5.2))
    axes = fig.subplots(1, len(panels), squeeze=False)
    drawn = []
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        points = _scatter(ax, _without_floor(summary), "time_ratio", key)
        floor = noise_floor(summary, key)
        if floor is not None:
            ax.axhspan(0, floor, color=NOISE_COLOUR, alpha=0.35, zorder=0,
                       label=f"noise floor: two retrains differ by {floor:.2f}")
            ax.legend(handles=[ax.patches[-1]], fontsize=7, loc="upper right")
        if points and all(x > 0 for _, x, _ in points):
            ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("wall time / retrain's" + (" (log)" if ax.get_xscale() == "log" else ""))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        drawn.append((ax, points))
    fig.suptitle(f"{scenario}: quality vs cost (mean ± std over seeds)")
    fig.tight_layout()
    for ax, points in drawn:  # after the layout: labels are placed in the final pixels
        place_labels(ax, points)
    _save_fig(fig, path)
    return fig


def plot_hiding(summary: dict, scenario: str, path: Path):
    """x = Avg.Gap (outputs), y = Probe.Gap (features): a method low on x but high on y reaches
    retrain's outputs while its features still carry the forgotten class — it hides, not forgets.
    The noise floor (two retrains, on both axes) is a grey box at the origin. Where CKA was
    measured, a second panel: CKA of the forgotten class's features to the original (x) vs to the
    retrain (y); above the diagonal, the features moved nearer the retrain's."""
    cka = has_metric(summary, "CKA-original-forget") and has_metric(summary, "CKA-retrain-forget")
    fig = _figure(figsize=(13.0 if cka else 7.0, 5.2))
    axes = fig.subplots(1, 2 if cka else 1, squeeze=False)
    ax = axes[0][0]
    drawn = [(ax, _scatter(ax, _without_floor(summary), "Avg.Gap", "Probe.Gap"))]
    floor_x, floor_y = noise_floor(summary, "Avg.Gap"), noise_floor(summary, "Probe.Gap")
    if floor_x is not None and floor_y is not None:
        from matplotlib.patches import Rectangle

        ax.add_patch(Rectangle((0, 0), floor_x, floor_y, color=NOISE_COLOUR, alpha=0.35, zorder=0,
                               label="noise floor: two retrains"))
        ax.legend(handles=[ax.patches[-1]], fontsize=7, loc="upper right")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("Avg.Gap to retrain (outputs)")
    ax.set_ylabel("Probe.Gap to retrain (features)")
    ax.set_title(f"{scenario}: forgotten, or only hidden?\n"
                 "(up-left: outputs retrain-like, features still keep the class)", fontsize=10)
    ax.grid(alpha=0.3)
    if cka:
        ax = axes[0][1]
        drawn.append((ax, _scatter(ax, _without_floor(summary), "CKA-original-forget", "CKA-retrain-forget")))
        ax.axline((0.5, 0.5), slope=1.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xlabel("CKA to the original (forgotten class's test images)")
        ax.set_ylabel("CKA to the retrain")
        ax.set_title("features: nearer the retrain (above the diagonal) or the original?", fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    for ax, points in drawn:
        place_labels(ax, points)
    _save_fig(fig, path)
    return fig


# --------------------------------------------------------------------------- per-sample losses

# (key in an evaluation's `losses`, legend label, colour): members, the forgotten records, and the
# non-members to compare them with — of the forgotten class when a class was forgotten (test images of
# other classes would show misclassification, not membership), else the whole test set.
MEMBERS = ("retain", "D_r (members)", "C0")
FORGOTTEN = ("forget", "D_f (the forgotten records)", "C3")
NON_MEMBERS_OF_CLASS = ("test_forget", "non-members of the forgotten class (its test images)", "C2")
NON_MEMBERS = ("test", "non-members (test images)", "C2")


def loss_groups(losses: dict[str, dict[str, list[float]]]) -> list[tuple[str, str, str]]:
    """The groups the losses figure compares: D_r, D_f and the non-members of the forgotten class
    (class-wise forgetting), or of any class (records); a group no method has is left out."""
    class_wise = any(len(v.get("test_forget", ())) for v in losses.values())
    groups = [MEMBERS, FORGOTTEN, NON_MEMBERS_OF_CLASS if class_wise else NON_MEMBERS]
    return [g for g in groups if any(len(v.get(g[0], ())) for v in losses.values())]


def plot_losses(losses: dict[str, dict[str, list[float]]], scenario: str, path: Path, columns: int = 4):
    """Per method, the per-sample loss histograms of members (D_r), the forgotten records (D_f) and
    non-members side by side (the paper's Figure 2, with the right non-members): forgotten records
    that look like the non-members were forgotten; like the members, remembered."""
    import numpy as np

    methods = list(losses)
    groups = loss_groups(losses)
    cols = max(1, min(len(methods), columns))
    rows = max(1, -(-len(methods) // cols))
    fig = _figure(figsize=(3.4 * cols, 2.7 * rows + 0.9))
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    for ax in axes.flat[len(methods):]:
        ax.set_visible(False)
    values_all = [np.asarray(losses[m].get(key, ()), dtype=float) for m in methods for key, _, _ in groups]
    both = np.concatenate([v for v in values_all if len(v)] or [np.ones(1)])
    bins = np.logspace(np.log10(max(both.min(), 1e-6)), np.log10(max(both.max(), 1e-5)), 30)
    handles = {}
    for ax, method in zip(list(axes.flat)[:len(methods)], methods, strict=True):
        for key, label, colour in groups:
            values = np.asarray(losses[method].get(key, ()), dtype=float)
            if not len(values):
                continue
            # fractions, not densities: on log-spaced bins a density hides the wide high-loss bins
            _, _, patches = ax.hist(np.clip(values, bins[0], bins[-1]), bins=bins, histtype="step", linewidth=1.4,
                                    color=colour, weights=np.full(len(values), 1 / len(values)), label=label)
            handles.setdefault(label, patches[0])
        ax.set_xscale("log")
        ax.set_title(method, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("cross-entropy loss (log)", fontsize=8)
    for row in axes:
        row[0].set_ylabel("fraction of the group", fontsize=8)
    fig.legend(list(handles.values()), list(handles), loc="upper center", ncol=len(handles), fontsize=8,
               bbox_to_anchor=(0.5, 1.0 - 0.25 / fig.get_figheight()))
    fig.suptitle(f"{scenario}: per-sample loss — D_f like the non-members: forgotten; like D_r: remembered",
                 y=1.0 - 0.02 / fig.get_figheight())
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.75 / fig.get_figheight()))
    _save_fig(fig, path)
    return fig


# --------------------------------------------------------------------------- figures


def _figure(figsize: tuple[float, float]):
    """A figure drawn by the Agg canvas, outside pyplot: no global backend is switched and no figure
    is registered with pyplot (a caller's interactive session or backend stays as it was)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save_fig(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
