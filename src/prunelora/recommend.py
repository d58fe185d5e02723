"""Which method to use: what our own Fashion-MNIST benchmark measured, per model family and forget kind.

`BENCHMARK` holds the committed measurements (benchmarks/results/fashion-mnist-resnet8 and
fashion-mnist-vit-tiny, results.csv: the mean over 3 seeds of each row's Avg.Gap to the same seed's
retrain, its wall time over the retrain's, its optimizer steps and its Probe.Gap); tests/test_recommend.py
reads the committed files and fails when the two disagree. `RECOMMENDATIONS` cites those rows and
nothing else: for a convolutional network or a vision transformer, and for a whole class or scattered
records, the method and budget the benchmark supports, why, and how sure we are. The first choice is
judged on both axes: among the methods within `TIE` of the lowest Avg.Gap (the outputs), the one whose
features give a forgotten class away least (the lowest Probe.Gap; for records, where no probe is
defined, the lowest Avg.Gap). `recommend_markdown()` is the
table the documentation shows; `good_for()` is the "good for" column of `prunelora methods`.

Plain data, the standard library and `prunelora.errors` only: listing methods or judging a
checkpoint's family needs nothing heavy.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from prunelora.errors import InvalidInputError

RESULTS_PAGE = "docs/results/fashion-mnist.md"
SITE_PAGE = "results/fashion-mnist.md"

FAMILIES = {"conv": "a convolutional network", "vit": "a vision transformer"}
KINDS = {"class": "a whole class", "records": "scattered training records"}
# the benchmark each family was measured on, and the scenarios of each forget kind
CONFIGS = {"conv": "fashion-mnist-resnet8", "vit": "fashion-mnist-vit-tiny"}
MODELS = {"conv": "ResNet-8", "vit": "a 4-block ViT"}
SCENARIOS = {"class": ("class3-dress", "class8-bag"), "records": ("random10",)}
NOISE_FLOOR_ROW = "retrain-vs-retrain"
TIE = 0.25  # Avg.Gap points within which two methods are as close at the outputs; the probe decides between them

# (config, scenario, row of results.csv) -> (Avg.Gap, time / retrain, optimizer steps, Probe.Gap), means
# over seeds 0, 1, 2; Probe.Gap (the linear probe on the classifier's input, points) is None where the
# probe is undefined (random records). Rounded as written here; the test allows that rounding and nothing more.
BENCHMARK: dict[tuple[str, str, str], tuple[float, float, int, float | None]] = {
    ("fashion-mnist-resnet8", "class3-dress", "cf-k"): (27.168, 0.030, 128, 7.60),
    ("fashion-mnist-resnet8", "class3-dress", "cmf"): (0.234, 0.090, 142, 8.27),
    ("fashion-mnist-resnet8", "class3-dress", "damp"): (28.844, 0.028, 0, 3.20),
    ("fashion-mnist-resnet8", "class3-dress", "eu-k"): (0.223, 0.137, 640, 4.33),
    ("fashion-mnist-resnet8", "class3-dress", "finetune"): (25.078, 0.061, 128, 7.93),
    ("fashion-mnist-resnet8", "class3-dress", "ga"): (8.355, 0.019, 20, 7.40),
    ("fashion-mnist-resnet8", "class3-dress", "l1-sparse"): (49.045, 0.075, 64, 8.07),
    ("fashion-mnist-resnet8", "class3-dress", "lora"): (38.749, 0.069, 128, 7.87),
    ("fashion-mnist-resnet8", "class3-dress", "neggrad-plus"): (12.845, 0.123, 128, 7.00),
    ("fashion-mnist-resnet8", "class3-dress", "opc"): (1.951, 0.129, 128, 8.73),
    ("fashion-mnist-resnet8", "class3-dress", "prune-finetune"): (3.766, 0.088, 128, 3.53),
    ("fashion-mnist-resnet8", "class3-dress", "prunelora"): (6.967, 0.082, 128, 1.07),
    ("fashion-mnist-resnet8", "class3-dress", "prunelora-deep"): (5.823, 0.146, 128, 4.87),
    ("fashion-mnist-resnet8", "class3-dress", "prunelora-deep@light"): (0.690, 0.083, 128, 6.07),
    ("fashion-mnist-resnet8", "class3-dress", "prunelora@forget-aware"): (0.197, 0.116, 192, 7.60),
    ("fashion-mnist-resnet8", "class3-dress", "prunelora@forget-aware-auto"): (0.204, 0.123, 192, 7.93),
    ("fashion-mnist-resnet8", "class3-dress", "prunelora@physical"): (6.848, 0.042, 128, 1.53),
    ("fashion-mnist-resnet8", "class3-dress", "random-label"): (0.205, 0.074, 72, 6.93),
    ("fashion-mnist-resnet8", "class3-dress", "retrain-vs-retrain"): (0.006, 0.955, 1920, 1.07),
    ("fashion-mnist-resnet8", "class3-dress", "salun"): (2.889, 0.086, 72, 7.33),
    ("fashion-mnist-resnet8", "class3-dress", "scrub"): (50.104, 0.133, 100, 7.73),
    ("fashion-mnist-resnet8", "class3-dress", "ssd"): (50.046, 0.034, 0, 8.20),
    ("fashion-mnist-resnet8", "class8-bag", "cf-k"): (25.479, 0.029, 128, 4.87),
    ("fashion-mnist-resnet8", "class8-bag", "cmf"): (0.329, 0.086, 142, 4.73),
    ("fashion-mnist-resnet8", "class8-bag", "damp"): (39.692, 0.031, 0, 2.20),
    ("fashion-mnist-resnet8", "class8-bag", "eu-k"): (0.424, 0.145, 640, 1.67),
    ("fashion-mnist-resnet8", "class8-bag", "finetune"): (29.176, 0.069, 128, 4.80),
    ("fashion-mnist-resnet8", "class8-bag", "ga"): (8.586, 0.021, 20, 4.60),
    ("fashion-mnist-resnet8", "class8-bag", "l1-sparse"): (50.073, 0.065, 64, 5.00),
    ("fashion-mnist-resnet8", "class8-bag", "lora"): (35.582, 0.067, 128, 5.13),
    ("fashion-mnist-resnet8", "class8-bag", "neggrad-plus"): (16.381, 0.130, 128, 4.93),
    ("fashion-mnist-resnet8", "class8-bag", "opc"): (0.696, 0.130, 128, 4.33),
    ("fashion-mnist-resnet8", "class8-bag", "prune-finetune"): (5.021, 0.083, 128, 4.00),
    ("fashion-mnist-resnet8", "class8-bag", "prunelora"): (6.555, 0.080, 128, 8.27),
    ("fashion-mnist-resnet8", "class8-bag", "prunelora-deep"): (6.035, 0.145, 128, 0.93),
    ("fashion-mnist-resnet8", "class8-bag", "prunelora-deep@light"): (0.469, 0.078, 128, 2.47),
    ("fashion-mnist-resnet8", "class8-bag", "prunelora@forget-aware"): (0.131, 0.117, 192, 4.40),
    ("fashion-mnist-resnet8", "class8-bag", "prunelora@forget-aware-auto"): (0.161, 0.122, 192, 4.93),
    ("fashion-mnist-resnet8", "class8-bag", "prunelora@physical"): (6.500, 0.048, 128, 8.67),
    ("fashion-mnist-resnet8", "class8-bag", "random-label"): (0.214, 0.069, 72, 2.80),
    ("fashion-mnist-resnet8", "class8-bag", "retrain-vs-retrain"): (0.083, 1.005, 1920, 0.67),
    ("fashion-mnist-resnet8", "class8-bag", "salun"): (3.071, 0.083, 72, 3.40),
    ("fashion-mnist-resnet8", "class8-bag", "scrub"): (50.094, 0.155, 100, 5.00),
    ("fashion-mnist-resnet8", "class8-bag", "ssd"): (50.195, 0.040, 0, 4.40),
    ("fashion-mnist-resnet8", "random10", "cf-k"): (7.218, 0.033, 128, None),
    ("fashion-mnist-resnet8", "random10", "cmf"): (2.470, 0.106, 142, None),
    ("fashion-mnist-resnet8", "random10", "eu-k"): (4.537, 0.137, 640, None),
    ("fashion-mnist-resnet8", "random10", "finetune"): (6.179, 0.073, 128, None),
    ("fashion-mnist-resnet8", "random10", "ga"): (8.245, 0.018, 20, None),
    ("fashion-mnist-resnet8", "random10", "l1-sparse"): (8.018, 0.069, 64, None),
    ("fashion-mnist-resnet8", "random10", "lora"): (8.034, 0.081, 128, None),
    ("fashion-mnist-resnet8", "random10", "neggrad-plus"): (8.162, 0.128, 128, None),
    ("fashion-mnist-resnet8", "random10", "opc"): (5.816, 0.152, 128, None),
    ("fashion-mnist-resnet8", "random10", "prune-finetune"): (5.590, 0.086, 128, None),
    ("fashion-mnist-resnet8", "random10", "prunelora"): (11.150, 0.084, 128, None),
    ("fashion-mnist-resnet8", "random10", "prunelora-deep@light"): (6.995, 0.105, 128, None),
    ("fashion-mnist-resnet8", "random10", "prunelora-deep@records"): (6.473, 0.101, 128, None),
    ("fashion-mnist-resnet8", "random10", "prunelora@forget-aware"): (7.647, 0.124, 192, None),
    ("fashion-mnist-resnet8", "random10", "prunelora@physical"): (11.679, 0.043, 128, None),
    ("fashion-mnist-resnet8", "random10", "random-label"): (3.106, 0.080, 72, None),
    ("fashion-mnist-resnet8", "random10", "retrain-vs-retrain"): (0.393, 1.037, 1920, None),
    ("fashion-mnist-resnet8", "random10", "salun"): (10.261, 0.085, 72, None),
    ("fashion-mnist-resnet8", "random10", "scrub"): (8.158, 0.143, 100, None),
    ("fashion-mnist-resnet8", "random10", "ssd"): (64.601, 0.039, 0, None),
    ("fashion-mnist-vit-tiny", "class3-dress", "cf-k"): (24.848, 0.034, 128, 13.47),
    ("fashion-mnist-vit-tiny", "class3-dress", "cmf"): (1.867, 0.089, 142, 20.20),
    ("fashion-mnist-vit-tiny", "class3-dress", "damp"): (19.669, 0.026, 0, 10.20),
    ("fashion-mnist-vit-tiny", "class3-dress", "eu-k"): (0.260, 0.165, 640, 13.00),
    ("fashion-mnist-vit-tiny", "class3-dress", "finetune"): (12.058, 0.069, 128, 10.60),
    ("fashion-mnist-vit-tiny", "class3-dress", "ga"): (32.152, 0.021, 20, 11.27),
    ("fashion-mnist-vit-tiny", "class3-dress", "l1-sparse"): (11.197, 0.058, 64, 9.73),
    ("fashion-mnist-vit-tiny", "class3-dress", "lora"): (37.172, 0.030, 128, 14.47),
    ("fashion-mnist-vit-tiny", "class3-dress", "neggrad-plus"): (3.158, 0.111, 128, 12.40),
    ("fashion-mnist-vit-tiny", "class3-dress", "opc"): (1.947, 0.134, 128, 11.60),
    ("fashion-mnist-vit-tiny", "class3-dress", "prune-finetune"): (7.320, 0.083, 128, 8.53),
    ("fashion-mnist-vit-tiny", "class3-dress", "prunelora"): (29.144, 0.038, 128, 14.13),
    ("fashion-mnist-vit-tiny", "class3-dress", "prunelora-deep"): (4.685, 0.123, 128, 8.87),
    ("fashion-mnist-vit-tiny", "class3-dress", "prunelora-deep@light"): (0.468, 0.077, 128, 13.27),
    ("fashion-mnist-vit-tiny", "class3-dress", "prunelora@forget-aware"): (25.300, 0.108, 192, 13.93),
    ("fashion-mnist-vit-tiny", "class3-dress", "prunelora@forget-aware-auto"): (3.250, 0.131, 192, 9.27),
    ("fashion-mnist-vit-tiny", "class3-dress", "prunelora@physical"): (28.696, 0.029, 128, 14.47),
    ("fashion-mnist-vit-tiny", "class3-dress", "random-label"): (2.706, 0.062, 72, 15.47),
    ("fashion-mnist-vit-tiny", "class3-dress", "retrain-vs-retrain"): (0.162, 1.018, 1920, 1.60),
    ("fashion-mnist-vit-tiny", "class3-dress", "salun"): (36.602, 0.075, 72, 10.33),
    ("fashion-mnist-vit-tiny", "class3-dress", "scrub"): (48.963, 0.136, 100, 14.47),
    ("fashion-mnist-vit-tiny", "class3-dress", "ssd"): (50.000, 0.043, 0, 15.27),
    ("fashion-mnist-vit-tiny", "class8-bag", "cf-k"): (41.695, 0.037, 128, 17.07),
    ("fashion-mnist-vit-tiny", "class8-bag", "cmf"): (1.996, 0.089, 142, 18.73),
    ("fashion-mnist-vit-tiny", "class8-bag", "damp"): (3.587, 0.025, 0, 15.67),
    ("fashion-mnist-vit-tiny", "class8-bag", "eu-k"): (0.199, 0.190, 640, 16.07),
    ("fashion-mnist-vit-tiny", "class8-bag", "finetune"): (39.358, 0.074, 128, 16.73),
    ("fashion-mnist-vit-tiny", "class8-bag", "ga"): (50.148, 0.019, 20, 16.73),
    ("fashion-mnist-vit-tiny", "class8-bag", "l1-sparse"): (39.269, 0.066, 64, 15.60),
    ("fashion-mnist-vit-tiny", "class8-bag", "lora"): (47.888, 0.033, 128, 17.27),
    ("fashion-mnist-vit-tiny", "class8-bag", "neggrad-plus"): (1.863, 0.126, 128, 15.27),
    ("fashion-mnist-vit-tiny", "class8-bag", "opc"): (3.442, 0.123, 128, 14.87),
    ("fashion-mnist-vit-tiny", "class8-bag", "prune-finetune"): (34.313, 0.077, 128, 16.07),
    ("fashion-mnist-vit-tiny", "class8-bag", "prunelora"): (47.276, 0.035, 128, 17.93),
    ("fashion-mnist-vit-tiny", "class8-bag", "prunelora-deep"): (5.668, 0.134, 128, 10.93),
    ("fashion-mnist-vit-tiny", "class8-bag", "prunelora-deep@light"): (0.525, 0.071, 128, 16.13),
    ("fashion-mnist-vit-tiny", "class8-bag", "prunelora@forget-aware"): (35.051, 0.103, 192, 16.27),
    ("fashion-mnist-vit-tiny", "class8-bag", "prunelora@forget-aware-auto"): (3.896, 0.115, 192, 13.13),
    ("fashion-mnist-vit-tiny", "class8-bag", "prunelora@physical"): (47.058, 0.027, 128, 18.07),
    ("fashion-mnist-vit-tiny", "class8-bag", "random-label"): (2.676, 0.066, 72, 17.93),
    ("fashion-mnist-vit-tiny", "class8-bag", "retrain-vs-retrain"): (0.237, 0.965, 1920, 2.80),
    ("fashion-mnist-vit-tiny", "class8-bag", "salun"): (22.761, 0.079, 72, 35.07),
    ("fashion-mnist-vit-tiny", "class8-bag", "scrub"): (50.165, 0.141, 100, 16.87),
    ("fashion-mnist-vit-tiny", "class8-bag", "ssd"): (40.815, 0.039, 0, 17.20),
    ("fashion-mnist-vit-tiny", "random10", "cf-k"): (8.913, 0.046, 128, None),
    ("fashion-mnist-vit-tiny", "random10", "cmf"): (3.726, 0.116, 142, None),
    ("fashion-mnist-vit-tiny", "random10", "eu-k"): (7.285, 0.213, 640, None),
    ("fashion-mnist-vit-tiny", "random10", "finetune"): (5.788, 0.063, 128, None),
    ("fashion-mnist-vit-tiny", "random10", "ga"): (8.970, 0.019, 20, None),
    ("fashion-mnist-vit-tiny", "random10", "l1-sparse"): (5.828, 0.074, 64, None),
    ("fashion-mnist-vit-tiny", "random10", "lora"): (9.131, 0.032, 128, None),
    ("fashion-mnist-vit-tiny", "random10", "neggrad-plus"): (8.055, 0.142, 128, None),
    ("fashion-mnist-vit-tiny", "random10", "opc"): (6.783, 0.142, 128, None),
    ("fashion-mnist-vit-tiny", "random10", "prune-finetune"): (5.558, 0.061, 128, None),
    ("fashion-mnist-vit-tiny", "random10", "prunelora"): (8.074, 0.033, 128, None),
    ("fashion-mnist-vit-tiny", "random10", "prunelora-deep@light"): (6.941, 0.082, 128, None),
    ("fashion-mnist-vit-tiny", "random10", "prunelora-deep@records"): (5.781, 0.088, 128, None),
    ("fashion-mnist-vit-tiny", "random10", "prunelora@forget-aware"): (8.153, 0.124, 192, None),
    ("fashion-mnist-vit-tiny", "random10", "prunelora@physical"): (8.132, 0.022, 128, None),
    ("fashion-mnist-vit-tiny", "random10", "random-label"): (4.477, 0.088, 72, None),
    ("fashion-mnist-vit-tiny", "random10", "retrain-vs-retrain"): (0.958, 1.008, 1920, None),
    ("fashion-mnist-vit-tiny", "random10", "salun"): (58.269, 0.087, 72, None),
    ("fashion-mnist-vit-tiny", "random10", "scrub"): (9.157, 0.191, 100, None),
    ("fashion-mnist-vit-tiny", "random10", "ssd"): (9.211, 0.054, 0, None),
}


def _mean(values) -> float:
    return statistics.fmean(values)


@dataclass(frozen=True)
class Choice:
    """One way to run a method, as the benchmark ran it.

    Attributes:
        row: its row in the benchmark's results (`prunelora@forget-aware`: prunelora with a preset).
        flags: the `prunelora unlearn` options that run it so.
        budget: the budget in words, as the benchmark gave it.
    """

    row: str
    flags: str
    budget: str

    @property
    def method(self) -> str:
        """The registered method (the row's name before any `@variant`)."""
        return self.row.split("@", 1)[0]

    def measured(self, family: str, kind: str) -> list[tuple[float, float, int, float | None]]:
        """(Avg.Gap, time / retrain, steps, Probe.Gap) in each scenario of `kind` on `family`'s benchmark."""
        return [BENCHMARK[(CONFIGS[family], scenario, self.row)] for scenario in SCENARIOS[kind]]

    def gap(self, family: str, kind: str) -> float:
        """The mean Avg.Gap over the scenarios of `kind`."""
        return _mean(m[0] for m in self.measured(family, kind))

    def probe_gap(self, family: str, kind: str) -> float | None:
        """The mean Probe.Gap over the scenarios of `kind` (None where the probe is undefined: records)."""
        probes = [m[3] for m in self.measured(family, kind)]
        return None if None in probes else _mean(probes)

    def time_ratio(self, family: str, kind: str) -> float:
        """The mean wall time over the retrain's."""
        return _mean(m[1] for m in self.measured(family, kind))

    def steps(self, family: str, kind: str) -> int:
        """The optimizer steps it ran on the benchmark (the same in every scenario)."""
        return self.measured(family, kind)[0][2]


@dataclass(frozen=True)
class Recommendation:
    """What the benchmark supports for one model family and forget kind.

    Attributes:
        family: `conv` or `vit` (None: a family the benchmark never measured).
        kind: `class` or `records`.
        first: the method and budget to start with.
        also: the runners-up worth trying (every measured method with a lower mean Avg.Gap than
            `first` is among them: the test checks it).
        avoid: what not to use, and why, in a few words.
        why: why `first` works here.
        sure: how sure, and on what evidence.
    """

    family: str | None
    kind: str
    first: Choice
    also: tuple[Choice, ...]
    avoid: str
    why: str
    sure: str

    @property
    def measured_family(self) -> str:
        """The family whose benchmark the numbers come from (a ResNet-8's for an unmeasured family)."""
        return self.family or "conv"

    def noise_floor(self) -> float:
        """Avg.Gap between two retrains of different seeds, mean over the kind's scenarios."""
        return _FLOOR.gap(self.measured_family, self.kind)

    def probe_floor(self) -> float | None:
        """Probe.Gap between two retrains, mean over the kind's scenarios (None: no probe, records)."""
        return _FLOOR.probe_gap(self.measured_family, self.kind)

    def evidence(self, choice: Choice | None = None) -> str:
        """`choice`'s (default: `first`'s) measurement in words: gap per scenario, floor, cost."""
        choice = choice or self.first
        family = self.measured_family
        measured = choice.measured(family, self.kind)
        gaps = " / ".join(f"{m[0]:.2f}" for m in measured)
        scenarios = " / ".join(SCENARIOS[self.kind])
        probe = "" if choice.probe_gap(family, self.kind) is None else (
            f", Probe.Gap {' / '.join(f'{m[3]:.1f}' for m in measured)} (two retrains: {self.probe_floor():.1f})")
        return (f"Avg.Gap {gaps} ({scenarios}; two retrains differ by {self.noise_floor():.2f}){probe}, "
                f"{choice.time_ratio(family, self.kind):.2f}x the retrain's wall time, "
                f"{choice.steps(family, self.kind)} steps on {MODELS[family]}")

    def figures(self) -> list[str]:
        """The committed figures behind the numbers (quality against cost, per scenario)."""
        config = CONFIGS[self.measured_family]
        return [f"benchmarks/results/{config}/plots/{s}-frontier.png" for s in SCENARIOS[self.kind]]

    def to_dict(self) -> dict:
        """The recommendation as JSON (for `prunelora recommend --json`)."""
        family = self.measured_family

        def choice(c: Choice) -> dict:
            probe = c.probe_gap(family, self.kind)
            return {"method": c.method, "variant": c.row, "flags": c.flags, "budget": c.budget,
                    "avg_gap": round(c.gap(family, self.kind), 3),
                    "probe_gap": None if probe is None else round(probe, 2),
                    "time_ratio": round(c.time_ratio(family, self.kind), 3),
                    "steps_on_benchmark": c.steps(family, self.kind)}

        return {"family": self.family, "kind": self.kind, "benchmark": CONFIGS[family],
                "noise_floor": round(self.noise_floor(), 3),
                "probe_noise_floor": None if self.probe_floor() is None else round(self.probe_floor(), 2),
                "first": choice(self.first),
                "also": [choice(c) for c in self.also], "avoid": self.avoid, "why": self.why,
                "how_sure": self.sure, "figures": self.figures(), "results": RESULTS_PAGE}


_FLOOR = Choice(NOISE_FLOOR_ROW, "", "")  # the retrain-vs-retrain rows, read like a method's
RANDOM_LABEL = Choice("random-label", "--method random-label --epochs 2",
                      "2 epochs of D_r plus the relabelled D_f (its default 10 was not measured)")
PRUNE_FINETUNE = Choice("prune-finetune", "--method prune-finetune --epochs 2", "2 epochs of D_r")
EU_K = Choice("eu-k", "--method eu-k", "its defaults: the last block and the head re-initialised, 10 epochs of D_r")
CMF = Choice("cmf", "--method cmf --epochs 2", "2 epochs of D_r plus the relabelled D_f")
FORGET_AWARE_RESNET = Choice("prunelora@forget-aware", "--preset prunelora-forget-aware-resnet",
                             "the preset's 3 epochs of LoRA repair on D_r")
DEEP_LIGHT = Choice("prunelora-deep@light", "--preset prunelora-deep-light",
                    "the preset's forget-subspace removal and 2 epochs of LoRA repair")

RECOMMENDATIONS: dict[tuple[str | None, str], Recommendation] = {
    ("conv", "class"): Recommendation(
        "conv", "class", EU_K,
        (FORGET_AWARE_RESNET,
         Choice("prunelora@forget-aware-auto",
                "--preset prunelora-forget-aware-resnet --prune-amount 0.5 --prune-forget-accuracy 10",
                "the preset's 3 epochs, the amount chosen from D_f's accuracy"),
         RANDOM_LABEL, CMF),
        avoid="lora, finetune and cf-k (they keep the class at 2 epochs: UA 4-33); scrub, ssd and l1-sparse at "
              "their defaults (UA 0); damp (RA 79-87)",
        why="re-initialising the last block and the head rebuilds the features nearest the output from D_r "
            "alone, so less of the class survives there than after the methods that only move the outputs",
        sure="high at the outputs, medium in the features: two classes x 3 seeds; five methods come within "
             "0.25 of each other at the outputs (the forget-aware preset is the closest), and eu-k is the one a "
             "probe reads the class from least (Probe.Gap 4.3 / 1.7, against 7-8 / 3-5 for the others), still "
             "above two retrains' 1.1 / 0.7"),
    ("conv", "records"): Recommendation(
        "conv", "records", CMF, (RANDOM_LABEL,),
        avoid="every PruneLoRA variant (Avg.Gap 6.5-11.7): scattered records have no channels of their own",
        why="relabelling the records themselves unlearns them; the class-mean head makes the features move",
        sure="medium: one scenario (a random 10% of train) x 3 seeds; 6x the noise floor, and no method "
             "came closer"),
    ("vit", "class"): Recommendation(
        "vit", "class", EU_K, (DEEP_LIGHT, CMF),
        avoid="the paper's prunelora recipe (it prunes only the last block: UA 28 / 3), the forget-aware 6% preset "
              "(UA 35 / 18) and salun at lr 0.1 (RA 35-45)",
        why="re-initialising the last encoder block and the head removes the class from the outputs without "
            "costing retained accuracy",
        sure="medium: two classes x 3 seeds, near the noise floor at the outputs (0.26 / 0.20, two retrains "
             "0.16 / 0.24); but every method hides on this ViT: a probe still reads the class (Probe.Gap 13-16 "
             "for eu-k, two retrains 1.6 / 2.8); prunelora-deep-light comes next (Avg.Gap 0.50) at under half "
             "the time"),
    ("vit", "records"): Recommendation(
        "vit", "records", CMF, (RANDOM_LABEL, PRUNE_FINETUNE),
        avoid="the paper's PruneLoRA and the forget-aware preset (Avg.Gap 8.1-8.2): scattered records have no "
              "channels of their own",
        why="relabelling the records themselves unlearns them; the class-mean head makes the features move",
        sure="medium: one scenario (a random 10% of train) x 3 seeds; 4x the noise floor, and no method "
             "came closer"),
}
UNMEASURED = {"class": EU_K, "records": CMF}  # first or within 0.5 of it on both measured families
for _kind in KINDS:  # a family the benchmark never measured
    RECOMMENDATIONS[(None, _kind)] = Recommendation(
        None, _kind, UNMEASURED[_kind], (),
        avoid="finetune and lora at short budgets (they keep a class: UA 4-33 on the ResNet-8) and the paper's "
              "prunelora on a transformer (UA 28 / 3 on the ViT)",
        why="first or within 0.5 of the first on both measured families for this kind (for a class, eu-k is "
            "first on both)",
        sure="low: this model family was not measured; the numbers are the ResNet-8's. Measure with "
             "prunelora bench before trusting them")


def forget_kind(spec_kind: str) -> str:
    """`class` or `records` for a `ForgetSpec.kind` (`class`, `fraction`, `indices`)."""
    if spec_kind == "class":
        return "class"
    if spec_kind in ("fraction", "indices", "records"):
        return "records"
    raise InvalidInputError(f"forget kind {spec_kind!r} is not one of: class, fraction, indices, records")


def recommend(family: str | None, kind: str) -> Recommendation:
    """The method and budget our benchmark supports for a model family and a forget kind.

    Args:
        family: `conv`, `vit`, or None for a family the benchmark did not measure.
        kind: `class`, or `records` (also `fraction` / `indices`, a `ForgetSpec.kind`).

    Returns:
        The `Recommendation`: its `first` choice, runners-up, what to avoid, why and how sure.
    """
    if family is not None and family not in FAMILIES:
        raise InvalidInputError(f"model family {family!r} is not one of: {', '.join(FAMILIES)}")
    return RECOMMENDATIONS[(family, forget_kind(kind))]


# --------------------------------------------------------------------------- the model's family

_VIT_NAMES = ("vit", "deit", "swin", "beit", "cait", "transformer")
_CONV_NAMES = ("resnet", "resnext", "vgg", "mobilenet", "efficientnet", "convnext", "densenet", "regnet",
               "alexnet", "squeezenet", "shufflenet", "googlenet", "inception", "mnasnet", "wide_resnet", "lenet",
               "cnn", "conv")
# weight names that only attention has: nn.MultiheadAttention, timm's and Hugging Face's ViTs
_ATTENTION_KEYS = ("in_proj_weight", ".qkv.", "attn.", "attention.", "self_attn", ".query.", ".key.")


def model_family(model_name: str, weight_shapes: Mapping[str, tuple[int, ...]] | None = None) -> str | None:
    """`vit`, `conv`, or None: the family of a model, from its registry name, else from its weights.

    The name decides for the registry's models (`resnet8`, `vit-tiny`, `torchvision:resnet18`,
    `timm:vit_small_patch16_224`); a model of your own (`factory:...`) is judged by its tensors'
    names and shapes, without running any code: attention weights make it a transformer, 4-D
    kernels larger than 1x1 a convolutional network.

    Args:
        model_name: meta.json's `model.name`.
        weight_shapes: tensor name -> shape (`read_weight_shapes`), for a name that does not decide.

    Returns:
        `vit`, `conv` or None (neither found: a family the benchmark did not measure).
    """
    name = model_name.lower().split(":", 1)[-1] if not model_name.startswith("factory:") else ""
    if any(n in name for n in _VIT_NAMES):
        return "vit"
    if any(n in name for n in _CONV_NAMES):
        return "conv"
    shapes = weight_shapes or {}
    if any(any(k in key for k in _ATTENTION_KEYS) for key in shapes):
        return "vit"
    if any(len(shape) == 4 and shape[-1] * shape[-2] > 1 for shape in shapes.values()):
        return "conv"
    return None


# --------------------------------------------------------------------------- tables


def _recommending(method: str) -> list[tuple[Recommendation, Choice, bool]]:
    """(recommendation, choice, is first) for every measured family and kind recommending `method`."""
    found = []
    for (family, _), rec in RECOMMENDATIONS.items():
        if family is None:
            continue
        found += [(rec, c, c is rec.first) for c in (rec.first, *rec.also) if c.method == method]
    return found


def good_for(method: str) -> str:
    """The "good for" text of `prunelora methods`: the forget kinds (`class`, `records`) for which
    our benchmark recommends `method`, first or as a runner-up, with the families when not both,
    or `-` when it recommends it for none.

    Example: `class (conv, runner-up), records (runner-up)` (random-label);
    `class (conv, runner-up, preset prunelora-forget-aware-resnet)` (prunelora).
    """
    parts = []
    for kind in KINDS:
        found = [(rec, c, first) for rec, c, first in _recommending(method) if rec.kind == kind]
        if not found:
            continue
        notes = []
        families = sorted({rec.family for rec, _, _ in found})
        if len(families) < len(FAMILIES):
            notes += families
        if not any(first for _, _, first in found):
            notes.append("runner-up")
        if all(c.row != method for _, c, _ in found):  # recommended only through presets: name them
            notes += [f"preset {name}" for name in sorted({c.flags.split("--preset ", 1)[1].split()[0]
                                                           for _, c, _ in found if "--preset " in c.flags})]
        parts.append(kind + (f" ({', '.join(notes)})" if notes else ""))
    return ", ".join(parts) or "-"


def measured_range(method: str) -> str:
    """`Avg.Gap lo-hi, lo-hi x retrain` on our benchmark: over the scenarios where it is
    recommended (as recommended: with its preset), else over its plain row in every scenario of
    both families; `not measured` when the benchmark never ran it."""
    rows = [m for rec, c, _ in _recommending(method) for m in c.measured(rec.measured_family, rec.kind)]
    if not rows:
        rows = [value for (_, _, row), value in BENCHMARK.items() if row == method]
    if not rows:
        return "not measured"
    gaps, times = [r[0] for r in rows], [r[1] for r in rows]
    return f"Avg.Gap {min(gaps):.1f}-{max(gaps):.1f}, {min(times):.2f}-{max(times):.2f}x retrain"


def _gaps(choice: Choice, family: str, kind: str) -> str:
    """`Avg.Gap / Probe.Gap` (Avg.Gap alone where no probe is defined)."""
    probe = choice.probe_gap(family, kind)
    return f"{choice.gap(family, kind):.2f}" + ("" if probe is None else f" / {probe:.1f}")


def recommend_markdown() -> str:
    """The "which method" table (Markdown) the documentation and the README show."""
    lines = ["| you need to forget | on | first choice (`prunelora unlearn` options) | budget | Avg.Gap to retrain "
             "(noise floor) | Probe.Gap (noise floor) | time / retrain | also consider (Avg.Gap / Probe.Gap) | how sure |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (family, kind), rec in RECOMMENDATIONS.items():
        if family is None:
            continue
        fam = rec.measured_family
        also = "; ".join(f"`{c.flags}` ({_gaps(c, fam, kind)})" for c in rec.also) or "-"
        probe = rec.first.probe_gap(fam, kind)
        probe = "–" if probe is None else f"{probe:.1f} ({rec.probe_floor():.1f})"
        lines.append(f"| {KINDS[kind]} | {FAMILIES[family]} ({MODELS[family]}) | `{rec.first.flags}` | "
                     f"{rec.first.budget} ({rec.first.steps(fam, kind)} steps) | {rec.first.gap(fam, kind):.2f} "
                     f"({rec.noise_floor():.2f}) | {probe} | {rec.first.time_ratio(fam, kind):.2f} | {also} | "
                     f"{rec.sure.split(':', 1)[0]} |")
    return "\n".join(lines)
