"""Retrain: exact unlearning, the gold standard. Train from scratch on D_r with the original's recipe."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from prunelora.checkpoint import build_model_from_meta
from prunelora.errors import InvalidInputError
from prunelora.factories import call_model_factory
from prunelora.methods.base import Capabilities, MethodConfig, MethodRecord, register_method
from prunelora.training import TrainConfig, fit
from prunelora.training.loop import resolve_device


@dataclass
class RetrainConfig(MethodConfig):
    """Only the seed is chosen here: everything else is the original checkpoint's recipe."""


@register_method("retrain", RetrainConfig, "exact unlearning: train from scratch on D_r with the original recipe",
                 capabilities=Capabilities(needs_forget_samples=False, trains=True, uses_pruning=False,
                                           uses_lora=False, from_scratch=True))
def retrain(model, splits, config: RetrainConfig, ctx):
    if ctx.model_factory is not None:  # a user's own model: their factory and recipe
        if not isinstance(ctx.recipe, TrainConfig):
            raise InvalidInputError("retrain with model_factory= needs recipe=TrainConfig(...), the original's recipe")
        recipe = dataclasses.replace(ctx.recipe, seed=config.seed)
        # the command line's FUNC(num_classes, in_channels, image_size) works here too, or FUNC()
        shape = tuple(getattr(splits.retain[0][0], "shape", ()))  # an image: (channels, height, width)
        in_channels, image_size = (int(shape[0]), int(shape[-1])) if len(shape) == 3 else (0, 0)
        fresh = call_model_factory(ctx.model_factory, "model_factory", splits.num_classes, in_channels, image_size)
        if not isinstance(fresh, nn.Module):
            raise InvalidInputError(f"model_factory() returned {type(fresh).__name__}, not an nn.Module")
        fresh = fresh.to(resolve_device(ctx.device))
    else:
        meta = ctx.original_meta or {}
        if not meta.get("recipe") or not meta.get("model"):
            raise InvalidInputError("retrain needs the original checkpoint's training recipe (meta.json 'recipe'), "
                                    "or model_factory= and recipe= for your own model")
        recipe = TrainConfig.from_dict({**meta["recipe"], "seed": config.seed})
        fresh = build_model_from_meta(meta).to(resolve_device(ctx.device))
    result = fit(fresh, splits.retain, recipe, device=ctx.device, progress=ctx.progress, description="retrain")
    # a fresh model trains every parameter, whatever it was built with
    return fresh, MethodRecord(sum(p.numel() for p in fresh.parameters()), result.steps, result.history,
                               details={"recipe": recipe.to_dict()})
