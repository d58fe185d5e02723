"""LoRA through peft, with a sparsity-preserving update and merge."""

from prunelora.adapters.lora import (
    AdapterSnapshot,
    LoraSettings,
    add_lora,
    lora_targets,
    merge_lora,
    save_adapter,
    trainable_parameters,
)

__all__ = ["AdapterSnapshot", "LoraSettings", "add_lora", "lora_targets", "merge_lora", "save_adapter",
           "trainable_parameters"]
