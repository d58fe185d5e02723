"""Option groups and steps shared by the pruning and LoRA methods."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from prunelora.adapters import (
    AdapterSnapshot,
    LoraSettings,
    add_lora,
    merge_lora,
    trainable_parameters,
)
from prunelora.data import Splits
from prunelora.errors import InvalidInputError
from prunelora.methods.base import MethodConfig, MethodContext
from prunelora.pruning import bake_masks, prune, recalibrate_batchnorm
from prunelora.training import fit


def _as_tuple(value) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


@dataclass
class PruneOptions(MethodConfig):
    """Pruning before adaptation. Default: the paper's 50% structured L2 on every conv."""

    prune_amount: float = 0.5
    prune_norm: int = 2
    prune_structured: bool = True
    prune_scope: str = "layer"
    prune_types: tuple[str, ...] = ("conv",)
    prune_pattern: str | None = None
    prune_head: bool = False
    bn_recalibrate: bool = True

    def __post_init__(self) -> None:
        self.prune_types = _as_tuple(self.prune_types)
        if not 0.0 < self.prune_amount < 1.0:
            raise InvalidInputError(f"prune_amount {self.prune_amount} is outside (0, 1)")
        if self.prune_norm not in (1, 2):
            raise InvalidInputError(f"prune_norm {self.prune_norm} is not 1 or 2")
        if self.prune_scope not in ("layer", "global"):
            raise InvalidInputError(f"prune_scope {self.prune_scope!r} is not 'layer' or 'global'")
        super().__post_init__()

    def prune_model(self, model: nn.Module, splits: Splits, ctx: MethodContext, bake: bool) -> dict:
        masks = prune(model, self.prune_amount, structured=self.prune_structured, norm=self.prune_norm,
                      types=self.prune_types, pattern=self.prune_pattern, include_head=self.prune_head,
                      scope=self.prune_scope, bake=bake)
        if self.bn_recalibrate:
            recalibrate_batchnorm(model, splits.retain, device=ctx.device)
        ctx.artifacts["masks"] = masks
        return masks


@dataclass
class LoraOptions(MethodConfig):
    """LoRA adapters. Default: the paper's ResNet setting (r=8, alpha=16, dropout 0.1, every conv)."""

    lora_rank: int = 8
    lora_alpha: float = 16
    lora_dropout: float = 0.1
    lora_types: tuple[str, ...] = ("conv",)
    lora_pattern: str | None = None
    train_head: bool = True

    def __post_init__(self) -> None:
        self.lora_types = _as_tuple(self.lora_types)
        self.lora_settings()  # validates
        super().__post_init__()

    def lora_settings(self) -> LoraSettings:
        return LoraSettings(rank=self.lora_rank, alpha=self.lora_alpha, dropout=self.lora_dropout,
                            types=self.lora_types, pattern=self.lora_pattern, train_head=self.train_head)

    def train_lora(self, model: nn.Module, splits: Splits, ctx: MethodContext, description: str,
                   masks: dict | None = None, keep_sparsity: bool = True) -> tuple[nn.Module, dict]:
        """Add adapters, train them (and the head) on D_r, merge. Returns (plain model, record)."""
        peft_model = add_lora(model, self.lora_settings(), masks=masks, keep_sparsity=keep_sparsity)
        trainable = trainable_parameters(peft_model)
        result = fit(peft_model, splits.retain, self.train_config(), freeze_batchnorm=self.bn_mode == "freeze",
                     device=ctx.device, progress=ctx.progress, description=description)
        bake_masks(peft_model)  # write the row masks into lora_B: same function, plain adapter tensors
        ctx.artifacts["adapter"] = AdapterSnapshot.of(peft_model)  # the merge discards the adapters
        merged = merge_lora(peft_model, masks=masks, keep_sparsity=keep_sparsity)
        return merged, {"cost": {"trainable_params": trainable, "steps": result.steps}, "history": result.history}


def full_finetune(model: nn.Module, splits: Splits, config: MethodConfig, ctx: MethodContext,
                  description: str) -> dict:
    """Train every parameter on D_r (the fine-tuning baselines)."""
    result = fit(model, splits.retain, config.train_config(), freeze_batchnorm=config.bn_mode == "freeze",
                 device=ctx.device, progress=ctx.progress, description=description)
    return {"cost": {"trainable_params": trainable_parameters(model), "steps": result.steps},
            "history": result.history}
