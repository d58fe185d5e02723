"""Retrain: exact unlearning, the gold standard. Train from scratch on D_r with the original's recipe."""

from __future__ import annotations

from dataclasses import dataclass, fields

from prunelora.checkpoint import build_model_from_meta
from prunelora.errors import InvalidInputError
from prunelora.methods.base import register_method
from prunelora.training import TrainConfig, fit
from prunelora.training.loop import resolve_device


@dataclass
class RetrainConfig:
    """Only the seed is chosen here: everything else is the original checkpoint's recipe."""

    seed: int = 0

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@register_method("retrain", RetrainConfig, "exact unlearning: train from scratch on D_r with the original recipe")
def retrain(model, splits, config: RetrainConfig, ctx):
    meta = ctx.original_meta or {}
    if not meta.get("recipe") or not meta.get("model"):
        raise InvalidInputError("retrain needs the original checkpoint's training recipe (meta.json 'recipe')")
    recipe = TrainConfig.from_dict({**meta["recipe"], "seed": config.seed})
    fresh = build_model_from_meta(meta).to(resolve_device(ctx.device))
    result = fit(fresh, splits.retain, recipe, device=ctx.device, progress=ctx.progress, description="retrain")
    return fresh, {"cost": {"trainable_params": sum(p.numel() for p in fresh.parameters()), "steps": result.steps},
                   "history": result.history, "recipe": recipe.to_dict()}
