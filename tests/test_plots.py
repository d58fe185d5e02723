"""The benchmark's figures: their layout (a grid, deltas to the retrain, a noise-floor band, labels
that do not overlap, three loss groups), read from the figures' axes, not from pixels."""

from __future__ import annotations

import itertools

import pytest

from prunelora.evaluation.evaluate import evaluate
from prunelora.evaluation.plots import (
    loss_groups,
    plot_frontier,
    plot_hiding,
    plot_losses,
    plot_metrics,
)

PNG = b"\x89PNG\r\n\x1a\n"
METHODS = ["finetune", "lora", "prunelora", "prune-finetune", "random-label", "salun", "neggrad-plus"]


def _cell(ua: float, gap: float, time: float, probe: float = 3.0) -> dict:
    return {"UA": (ua, 1.0), "RA": (99.0, 0.5), "TA": (88.0, 0.3), "MIA": (ua, 2.0), "Avg.Gap": (gap, 0.2),
            "Probe.Gap": (probe, 0.5), "relearn_ratio": (0.8, 0.1), "time_ratio": (time, 0.01)}


@pytest.fixture(scope="module")
def summary() -> dict:
    """A scenario's summary: the retrain, the noise floor, and methods crowded near one point."""
    out = {"retrain": _cell(100.0, 0.0, 1.0, 0.0), "retrain-vs-retrain": _cell(100.0, 0.4, 1.02, 1.5)}
    for i, method in enumerate(METHODS):
        out[method] = _cell(96.0 + 0.1 * i, 1.0 + 0.01 * i, 0.1 + 0.001 * i)
    return out


def _visible(fig) -> list:
    return [ax for ax in fig.axes if ax.get_visible()]


def test_the_metrics_figure_is_a_grid_of_differences_from_the_retrain(summary, tmp_path):
    path = tmp_path / "metrics.png"
    fig = plot_metrics(summary, "class3", path)
    assert path.read_bytes()[:8] == PNG
    axes = _visible(fig)
    assert len(axes) == 8
    columns = {round(ax.get_position().x0, 3) for ax in axes}
    rows = {round(ax.get_position().y0, 3) for ax in axes}
    assert (len(rows), len(columns)) == (2, 4)  # not one long strip
    width, height = fig.get_size_inches()
    assert width / height < 3  # the old strip was 7.5 times wider than high
    ua = next(ax for ax in axes if ax.get_title() == "UA")
    widths = [bar.get_width() for bar in ua.patches]
    # every method but the retrain, drawn as its difference from the retrain's UA
    assert widths == pytest.approx([summary[m]["UA"][0] - 100.0 for m in summary if m != "retrain"])
    assert [t.get_text() for t in axes[0].get_yticklabels()] == [m for m in summary if m != "retrain"]
    gap = next(ax for ax in axes if ax.get_title() == "Avg.Gap")
    assert any(p.get_label() == "noise floor" for p in gap.patches)


def test_the_metrics_figure_without_a_retrain_draws_the_values_zoomed(summary, tmp_path):
    alone = {m: v for m, v in summary.items() if m not in ("retrain", "retrain-vs-retrain")}
    fig = plot_metrics(alone, "s", tmp_path / "m.png")
    ua = next(ax for ax in _visible(fig) if ax.get_title() == "UA")
    low, high = ua.get_xlim()
    assert 90 < low and high < 100  # zoomed to 96.0..96.6, not 0..100


def _boxes(annotations) -> list:
    """The labels' text boxes in pixels (an annotation's own extent would include its leader line)."""
    from matplotlib.text import Text

    fig = annotations[0].figure
    fig.canvas.draw()  # at the figure's own dpi: the positions the boxes are read in
    renderer = fig.canvas.get_renderer()
    return [Text.get_window_extent(a, renderer) for a in annotations]


def test_frontier_labels_do_not_collide_and_the_noise_floor_is_a_band(summary, tmp_path):
    fig = plot_frontier(summary, "class3", tmp_path / "frontier.png")
    assert (tmp_path / "frontier.png").read_bytes()[:8] == PNG
    for ax in fig.axes:
        labels = [t for t in ax.texts if t.get_text() in summary]
        # every point but the noise floor's, which is the band
        assert sorted(t.get_text() for t in labels) == sorted(m for m in summary if m != "retrain-vs-retrain")
        for a, b in itertools.combinations(_boxes(labels), 2):
            assert not a.overlaps(b), "two labels overlap"
        (band,) = [p for p in ax.patches if p.get_label().startswith("noise floor")]
        y0, y1 = band.get_bbox().y0, band.get_bbox().y1
        floor = summary["retrain-vs-retrain"]["Avg.Gap" if ax is fig.axes[0] else "Probe.Gap"][0]
        assert (y0, y1) == pytest.approx((0.0, floor))


def test_the_hiding_figure_boxes_the_noise_floor_on_both_axes(summary, tmp_path):
    fig = plot_hiding(summary, "class3", tmp_path / "hiding.png")
    (ax,) = fig.axes
    (box,) = [p for p in ax.patches if p.get_label().startswith("noise floor")]
    assert (box.get_width(), box.get_height()) == pytest.approx((0.4, 1.5))
    labels = [t for t in ax.texts if t.get_text() in summary]
    for a, b in itertools.combinations(_boxes(labels), 2):
        assert not a.overlaps(b)


def _losses(class_wise: bool) -> dict:
    one = {"retain": [0.01, 0.02, 0.05], "forget": [0.5, 2.0, 3.0], "test": [0.1, 0.4, 1.5],
           "test_forget": [1.0, 2.5, 4.0] if class_wise else []}
    return {"retrain": one, "finetune": one}


@pytest.mark.parametrize("class_wise", [True, False])
def test_the_losses_figure_sets_members_forgotten_records_and_the_right_non_members_side_by_side(class_wise, tmp_path):
    fig = plot_losses(_losses(class_wise), "s", tmp_path / "losses.png")
    assert (tmp_path / "losses.png").read_bytes()[:8] == PNG
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) == 3
    assert labels[0].startswith("D_r") and labels[1].startswith("D_f")
    # class-wise: the forgotten class's own test images, not other classes'
    assert ("forgotten class" in labels[2]) is class_wise
    for ax in _visible(fig):
        assert len(ax.patches) == 3  # one histogram per group in every method's panel


def test_the_losses_figure_draws_what_an_older_cell_recorded():
    old = {"m": {"forget": [0.5, 1.0], "test": [0.2, 0.3]}}  # before D_r and test_forget were kept
    assert [g[0] for g in loss_groups(old)] == ["forget", "test"]


def test_evaluate_keeps_the_losses_of_members_and_of_the_forgotten_class(trained, class3_splits, fraction_splits):
    quick = {"attacks": (), "throughput": False, "macs": False, "probe": False, "relearn": None, "device": "cpu"}
    losses = evaluate(trained.model, class3_splits, **quick).losses
    assert len(losses["retain"]) == min(len(class3_splits.retain), 2000)
    assert len(losses["test_forget"]) == len(class3_splits.test_forget) > 0
    assert len(losses["forget"]) == len(class3_splits.forget) and len(losses["test"]) > 0
    assert evaluate(trained.model, fraction_splits, **quick).losses["test_forget"] == []
