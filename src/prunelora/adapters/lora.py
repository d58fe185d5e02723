"""LoRA through peft: target selection, the sparsity-preserving delta, and the merge.

Sparsity is preserved by construction: for a layer whose output channels were pruned, the LoRA
update's rows for those channels are masked (a parametrization on `lora_B.weight`), so the trained
model and the merged model are the same function and the merged weights keep their zeros. The
reference code merged a dense B·A and so refilled every pruned channel.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model  # imported here, not inside a timed unlearning run
from torch import nn
from torch.nn.utils import parametrize

from prunelora.errors import InvalidInputError
from prunelora.pruning.masks import LAYER_TYPES, compile_pattern, multiply_masks


@dataclass
class LoraSettings:
    rank: int = 8
    alpha: float = 16
    dropout: float = 0.1
    types: tuple[str, ...] = ("conv",)
    pattern: str | None = None
    train_head: bool = True

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise InvalidInputError(f"LoRA rank {self.rank} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise InvalidInputError(f"LoRA dropout {self.dropout} is outside [0, 1)")
        bad = [t for t in self.types if t not in LAYER_TYPES]
        if bad:
            raise InvalidInputError(f"LoRA layer type {bad[0]!r} is not one of {', '.join(LAYER_TYPES)}")


def lora_targets(model: nn.Module, types: Sequence[str], pattern: str | None, head_name: str = "head") -> list[str]:
    """Names of the modules LoRA will wrap. Inside a targeted MultiheadAttention nothing else is
    targeted: peft's MHA layer adapts both its in_proj and its out_proj."""
    wanted = tuple(cls for t in types for cls in LAYER_TYPES[t])
    regex = compile_pattern(model, pattern)
    names: list[str] = []
    mha_prefixes: list[str] = []
    for name, module in model.named_modules():
        if name == head_name or name.startswith(head_name + "."):
            continue
        if any(name.startswith(p + ".") for p in mha_prefixes):
            continue
        if isinstance(module, nn.MultiheadAttention) and "mha" in types and (regex is None or regex.search(name)):
            mha_prefixes.append(name)
        if isinstance(module, wanted) and (regex is None or regex.search(name)):
            names.append(name)
    if not names:
        raise InvalidInputError(f"no layer of type {'/'.join(types)} matches LoRA pattern {pattern!r}")
    return names


class _RowMask(nn.Module):
    """`B -> B * row_mask`: LoRA's update may not touch pruned output channels."""

    def __init__(self, rows: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("rows", rows)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.rows.view(-1, *([1] * (weight.ndim - 1)))


def _channel_rows(mask: torch.Tensor) -> torch.Tensor:
    """1 for output channels that keep any weight, 0 for channels pruned whole."""
    return (mask.flatten(1) != 0).any(dim=1).to(mask.dtype)


def add_lora(model: nn.Module, settings: LoraSettings, masks: dict[str, torch.Tensor] | None = None,
             keep_sparsity: bool = True):
    """Wrap `model` in a peft LoRA model; only adapters (and the head, if `train_head`) train.

    With `masks` and `keep_sparsity`, each adapter's update is masked on the pruned output
    channels of its layer (and of both projections of a MultiheadAttention).
    """
    targets = lora_targets(model, settings.types, settings.pattern)
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=targets, modules_to_save=["head"] if settings.train_head else None,
                        bias="none")
    peft_model = get_peft_model(model, config)
    if masks and keep_sparsity:
        _mask_lora_updates(peft_model, masks)
    return peft_model


def _mask_lora_updates(peft_model, masks: dict[str, torch.Tensor]) -> None:
    # Adapted layers by their name in the plain model: peft nests some under `base_layer` (the
    # out_proj of a MultiheadAttention lives at `attn.base_layer.out_proj`).
    adapted = {name.replace(".base_layer", ""): module
               for name, module in peft_model.get_base_model().named_modules() if hasattr(module, "lora_B")}
    for key, mask in masks.items():
        module_name = key.rsplit(".", 1)[0] if "." in key else ""
        layer = adapted.get(module_name)
        if layer is None:
            continue  # pruned but not adapted: its zeros stay since the base weight is frozen
        rows = _channel_rows(mask)
        for adapter_b in layer.lora_B.values():
            parametrize.register_parametrization(adapter_b, "weight", _RowMask(rows.to(adapter_b.weight.device)))


def merge_lora(peft_model, masks: dict[str, torch.Tensor] | None = None, keep_sparsity: bool = True) -> nn.Module:
    """Merge the adapters into a plain model; with `keep_sparsity`, pruned weights stay exactly zero."""
    model = peft_model.merge_and_unload()
    if masks and keep_sparsity:
        # Exact for structured masks already (the update was masked); for unstructured masks this
        # is where the zeros come back.
        multiply_masks(model, masks)
    return model


@dataclass
class AdapterSnapshot:
    """The trained adapter weights and peft config, taken before the merge discards them."""

    state: dict[str, torch.Tensor]
    config: object

    @classmethod
    def of(cls, peft_model) -> AdapterSnapshot:
        from peft import get_peft_model_state_dict

        state = {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(peft_model).items()}
        return cls(state, peft_model.peft_config["default"])


def save_adapter(snapshot: AdapterSnapshot, out: str | Path) -> Path:
    """Save the adapter alone, in peft's format (adapter_model.safetensors + adapter_config.json).

    Warns: the original base weights plus this adapter still hold what was to be forgotten.
    """
    from safetensors.torch import save_file

    from prunelora.training.distributed import barrier, is_main_process

    out = Path(out)
    if not is_main_process():
        barrier()
        return out
    warnings.warn(
        "saving the LoRA adapter alone: the original base weights plus this adapter still contain the "
        "information that was to be forgotten; ship the merged model to honour a deletion request",
        UserWarning, stacklevel=2,
    )
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in snapshot.state.items()}, str(out / "adapter_model.safetensors"))
    snapshot.config.save_pretrained(str(out))
    barrier()
    return out


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
