"""A method the package does not ship: noise every weight, then fine-tune on D_r. It is here only to
show that a method registered by a test module gets the whole contract matrix."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from extra_methods import register_test_method
from prunelora.errors import InvalidInputError
from prunelora.methods import Capabilities, TrainingOptions

NAME = "test-noisy-finetune"


@dataclass
class NoisyFinetuneConfig(TrainingOptions):
    noise: float = field(default=1e-3, metadata={"help": "standard deviation of the noise added to every weight"})

    def validate(self) -> None:
        super().validate()
        if not self.noise >= 0:
            raise InvalidInputError(f"noise {self.noise} must be >= 0")


@register_test_method(NAME, NoisyFinetuneConfig, "test only: noise every weight, then fine-tune on D_r",
                      capabilities=Capabilities(needs_forget_samples=False, trains=True, uses_pruning=False,
                                                uses_lora=False, from_scratch=False))
def run(model, splits, config, ctx):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(config.noise * torch.randn_like(p))  # unlearn() seeded the global generator
    return model, config.train(model, splits.retain, ctx, "noisy finetune")
