"""SCRUB (Kurmanji, Triantafillou, Hayes and Triantafillou, "Towards Unbounded Machine Unlearning",
NeurIPS 2023, arXiv 2302.09880).

The original model is a frozen teacher; the student (the model being unlearned) alternates
- max steps on D_f: maximise KL(teacher ‖ student) at temperature T, i.e. move away from the
  teacher on the forget set, and
- min steps on D_r: gamma·CE(student, y) + alpha·KL(teacher ‖ student) (`scrub_gamma`,
  `scrub_alpha`), i.e. stay close to the teacher and accurate on the retain set.
Each of the `epochs` rounds is one max pass over D_f (only in the first `msteps` rounds) followed
by one min pass over D_r; the last rounds are min-only, which the paper uses to repair retain
performance after the max steps.

Each pass is one call of the shared training loop (`fit`), so every pass starts with a fresh
optimizer state (the authors' notebooks keep one SGD momentum buffer across passes); with the small
default learning rate the difference is small, and the passes stay repeatable and seeded.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from prunelora.errors import InvalidInputError
from prunelora.methods.base import (
    Capabilities,
    MethodRecord,
    TrainingOptions,
    option,
    register_method,
)
from prunelora.training import TrainConfig, trainable_parameters


@dataclass
class ScrubConfig(TrainingOptions):
    """Defaults from the authors' public code (meghdadk/SCRUB, large_scale_unlearning.ipynb, the
    CIFAR-10 ResNet setting): SGD, lr 5e-4, momentum 0.9, weight decay 5e-4; 3 rounds (`epochs`)
    of which `msteps` 2 include a max pass; temperature 4; `scrub_gamma` 0.99 on the cross-entropy
    and `scrub_alpha` 0.001 on the KL term of the min steps; batch size 256 on D_r and 512 on D_f. Their
    learning-rate decay (after epoch 3) never triggers within 3 rounds: constant schedule.

    `steps`, when given, replaces each one-epoch pass by that many optimizer steps (so a run takes
    `steps` × (`epochs` + `msteps`) steps). `schedule="cosine"` decays the learning rate per round.
    """

    epochs: float = option(TrainingOptions, "epochs", 3, help=(
        "rounds (scrub: each a max pass over D_f, in the first --msteps rounds, then a min pass over D_r)"))
    batch_size: int = option(TrainingOptions, "batch_size", 256)
    optimizer: str = option(TrainingOptions, "optimizer", "sgd")
    lr: float = option(TrainingOptions, "lr", 5e-4)
    momentum: float = option(TrainingOptions, "momentum", 0.9)
    weight_decay: float = option(TrainingOptions, "weight_decay", 5e-4)
    schedule: str = option(TrainingOptions, "schedule", "constant")
    msteps: int = field(default=2, metadata={"help": "the first rounds that include a max pass over D_f"})
    temperature: float = field(default=4.0, metadata={"help": "softmax temperature of the KL to the teacher"})
    scrub_alpha: float = field(default=0.001, metadata={"help": (
        "SCRUB's weight on KL(teacher || student) in the min steps on D_r, >= 0")})
    scrub_gamma: float = field(default=0.99, metadata={"help": (
        "SCRUB's weight on the cross-entropy in the min steps on D_r, >= 0")})
    forget_batch_size: int = field(default=512, metadata={"help": "images per batch of the max passes on D_f"})


    def validate(self) -> None:
        if not (float(self.epochs).is_integer() and self.epochs >= 1):
            raise InvalidInputError(f"epochs {self.epochs} is not a whole number of rounds >= 1 (scrub)")
        if not 1 <= self.msteps <= self.epochs:
            raise InvalidInputError(f"msteps {self.msteps} is outside [1, epochs={self.epochs:g}]")
        if not self.temperature > 0:
            raise InvalidInputError(f"temperature {self.temperature} must be > 0")
        if self.scrub_alpha < 0:
            raise InvalidInputError(f"scrub_alpha {self.scrub_alpha} must be >= 0")
        if self.scrub_gamma < 0:
            raise InvalidInputError(f"scrub_gamma {self.scrub_gamma} must be >= 0")
        if self.scrub_alpha == 0 and self.scrub_gamma == 0:
            raise InvalidInputError("scrub_alpha and scrub_gamma are both 0: the min steps would have no objective")
        if self.forget_batch_size < 1:
            raise InvalidInputError(f"forget_batch_size {self.forget_batch_size} must be >= 1")
        super().validate()

    def pass_config(self, round_: int, forget: bool) -> TrainConfig:
        """The recipe of one pass: one epoch (or `steps` steps), its own seed, the round's lr."""
        factor = 1.0
        if self.schedule == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * (round_ - 1) / int(self.epochs)))
        # every other recipe field (momentum, weight decay, mixed precision ...) is the config's own
        return dataclasses.replace(self.train_config(), epochs=1,
                                   batch_size=self.forget_batch_size if forget else self.batch_size,
                                   lr=self.lr * factor, schedule="constant",
                                   seed=self.seed + 2 * round_ + (0 if forget else 1))


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) of the temperature-softened outputs, × T² (Hinton et al. 2015), averaged over the batch."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    teacher = F.softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_student, teacher, reduction="batchmean") * temperature ** 2


@register_method("scrub", ScrubConfig, "SCRUB: student moves away from the original on D_f, stays close on D_r "
                 "(Kurmanji et al. 2023)",
                 capabilities=Capabilities(needs_forget_samples=True, trains=True, uses_pruning=False,
                                           uses_lora=False, from_scratch=False))
def scrub(model, splits, config: ScrubConfig, ctx):
    teacher = _frozen_copy(model)
    ce = nn.CrossEntropyLoss()

    def max_loss(student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = teacher(x)
        return -distill_kl(student(x), target, config.temperature)

    def min_loss(student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = student(x)
        with torch.no_grad():
            target = teacher(x)
        return config.scrub_gamma * ce(logits, y) + config.scrub_alpha * distill_kl(logits, target, config.temperature)

    rounds = int(config.epochs)
    history, steps = [], 0
    for round_ in range(1, rounds + 1):
        passes = [("max", splits.forget, max_loss)] if round_ <= config.msteps else []
        passes.append(("min", splits.retain, min_loss))
        for phase, dataset, loss_fn in passes:
            result = config.fit(model, dataset, ctx, f"scrub {phase} {round_}/{rounds}", loss_fn=loss_fn,
                                recipe=config.pass_config(round_, forget=phase == "max"))
            steps += result.steps
            history.append({"round": round_, "phase": phase, "steps": steps, "loss": result.final_loss})
    model.zero_grad(set_to_none=True)
    return model, MethodRecord(trainable_parameters(model), steps, history)


def _frozen_copy(model: nn.Module) -> nn.Module:
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
