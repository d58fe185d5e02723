"""LoRA through peft, with a sparsity-preserving update and merge. Every option is checked in one
place, `LoraSettings`."""

from prunelora.adapters.lora import (
    AdapterSnapshot,
    LoraSettings,
    add_lora,
    check_lora_rank,
    lora_targets,
    max_lora_rank,
    merge_lora,
    save_adapter,
)

__all__ = ["AdapterSnapshot", "LoraSettings", "add_lora", "check_lora_rank", "lora_targets", "max_lora_rank",
           "merge_lora", "save_adapter"]
