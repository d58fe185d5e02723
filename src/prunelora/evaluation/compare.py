"""A model's metrics against its reference (the retrained model): every comparison, once.

`evaluate(..., reference=...)`, `prunelora eval --reference`, the benchmark's rows (a method
against its retrain, a retrain against itself, and the noise floor: one retrain against another)
all call `compare`, so a gap is defined here and nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from prunelora.evaluation.metrics import GAP_KEYS, OUTPUT_GAP_KEYS, avg_gap
from prunelora.evaluation.relearn import relearn_ratio

__all__ = ["GAP_KEYS", "OUTPUT_GAP_KEYS", "compare"]


def compare(metrics: Mapping[str, float], reference: Mapping[str, float], *,
            reference_wall_time_s: float | None = None) -> dict[str, float]:
    """The comparison of `metrics` with `reference` (both flat metric mappings, as `evaluate` gives).

    - `Avg.Gap`: mean |metrics − reference| over `GAP_KEYS` (UA, RA, TA, MIA); NaN when either
      lacks one of them (no attack was run) or a value is NaN: a missing measurement is no 0 gap.
    - `Out.Gap`: the same over `OUTPUT_GAP_KEYS` (UA, RA, TA), no attack in it: the gap to read
      where the attack behind MIA is at chance (its efficacy, a quarter of Avg.Gap, is then a coin flip).
    - `Probe.Gap` (and `Probe.Gap@<layer>`): |Probe-FA − reference's Probe-FA| for every probe
      both have; `Residue.Gap` (and `@<stage>`) likewise from `Probe-Residue`.
    - `relearn_ratio` and `relearn_ref_capped`: relearning steps over the reference's (see
      `prunelora.evaluation.relearn.relearn_ratio`), when both relearned.
    - `time_ratio`: `wall_time_s` over the reference's (or over `reference_wall_time_s`, e.g. the
      mean of several retrains), when both are known.

    Args:
        metrics: the judged model's metrics.
        reference: the reference model's metrics (a retrain of the same original and forget set).
        reference_wall_time_s: the wall time to divide by, instead of `reference["wall_time_s"]`.

    Returns:
        The comparison keys that can be computed, each a float.
    """
    out: dict[str, float] = {}
    if all(key in metrics and key in reference for key in GAP_KEYS):
        out["Avg.Gap"] = avg_gap(metrics, reference)
    else:
        out["Avg.Gap"] = float("nan")
    out["Out.Gap"] = (avg_gap(metrics, reference, OUTPUT_GAP_KEYS)
                      if all(key in metrics and key in reference for key in OUTPUT_GAP_KEYS) else float("nan"))
    for prefix, gap in (("Probe-FA", "Probe.Gap"), ("Probe-Residue", "Residue.Gap")):
        for key in [k for k in metrics if k.startswith(prefix)]:
            if key in reference:
                out[key.replace(prefix, gap)] = abs(metrics[key] - reference[key])
    if "relearn_steps" in metrics and "relearn_steps" in reference:
        out["relearn_ref_capped"] = float(reference.get("relearn_capped", 0.0))
        out["relearn_ratio"] = relearn_ratio(metrics["relearn_steps"], reference["relearn_steps"],
                                             bool(metrics.get("relearn_capped", 0.0)), bool(out["relearn_ref_capped"]))
    wall = reference.get("wall_time_s") if reference_wall_time_s is None else reference_wall_time_s
    if "wall_time_s" in metrics and wall is not None:
        out["time_ratio"] = float(metrics["wall_time_s"]) / float(wall) if float(wall) > 0 else math.nan
    return out
