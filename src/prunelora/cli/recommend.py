"""`prunelora recommend CHECKPOINT --forget-class 3`: the method our benchmark supports for this model and request.

It reads meta.json and the weights' header (tensor names and shapes), never the weights themselves
and never a factory's code, so it answers in a moment for any checkpoint.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from prunelora.checkpoint import WEIGHTS, read_meta, read_weight_shapes
from prunelora.cli.options import add_forget, forget_spec_from_args
from prunelora.data import ForgetSpec
from prunelora.errors import InvalidInputError
from prunelora.recommend import FAMILIES, RESULTS_PAGE, Recommendation, model_family, recommend


def setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="the trained model's checkpoint directory")
    add_forget(p)
    p.add_argument("--json", action="store_true", help="print the recommendation as JSON")


def forget_flags(spec: ForgetSpec) -> str:
    """The `--forget-*` options that ask for `spec` again."""
    if spec.kind == "class":
        return "--forget-class " + ",".join(map(str, spec.classes))
    if spec.kind == "fraction":
        return f"--forget-fraction {spec.fraction:g}" + (f" --forget-seed {spec.seed}" if spec.seed else "")
    return "--forget-indices " + shlex.quote(spec.source or "FILE")


def _lines(rec: Recommendation, checkpoint: str, spec: ForgetSpec) -> list[str]:
    kind = rec.kind
    family = rec.measured_family
    command = (f"prunelora unlearn --checkpoint {shlex.quote(checkpoint)} {forget_flags(spec)} "
               f"{rec.first.flags} --out OUT")
    lines = [f"recommended: {rec.first.method} ({rec.first.budget})", f"  {command}",
             f"  measured: {rec.evidence()}", f"  why: {rec.why}", f"  how sure: {rec.sure}"]
    if rec.also:
        lines.append("also consider:")
        lines += [f"  {c.flags}  ({c.budget}): Avg.Gap {c.gap(family, kind):.2f}, "
                  f"{c.time_ratio(family, kind):.2f}x the retrain's time" for c in rec.also]
    lines.append(f"avoid: {rec.avoid}")
    lines.append(f"figures: {RESULTS_PAGE}; " + ", ".join(rec.figures()))
    return lines


def run(args: argparse.Namespace) -> int:
    """Name the method and budget our benchmark supports for a checkpoint's model family and a forget request."""
    meta = read_meta(args.checkpoint)
    spec = forget_spec_from_args(args)
    classes = meta.model.num_classes
    outside = [c for c in spec.classes if not 0 <= c < classes]
    if outside:
        raise InvalidInputError(f"--forget-class {outside[0]} is not a class of this model (0 to {classes - 1})")
    name = meta.model.name
    family = model_family(name)
    how = "its model name"
    if family is None:  # a model of your own: judged by its tensors' names and shapes, no code run
        weights = Path(args.checkpoint) / WEIGHTS
        family = model_family(name, read_weight_shapes(weights)) if weights.is_file() else None
        how = "its weights' names and shapes"
    rec = recommend(family, spec.kind)
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "model": name, **rec.to_dict()}, indent=2))
        return 0
    what = FAMILIES[family] + f" (from {how})" if family else "a family our benchmark did not measure"
    classes_named = meta.dataset.classes if meta.dataset is not None else None
    print(f"{args.checkpoint}: {name}, {what}; forget {spec.describe(classes_named)}")
    print("\n".join(_lines(rec, str(args.checkpoint), spec)))
    return 0
