"""SCRUB (Kurmanji, Triantafillou, Hayes and Triantafillou, "Towards Unbounded Machine Unlearning",
NeurIPS 2023, arXiv 2302.09880).

The original model is a frozen teacher; the student (the model being unlearned) alternates
- max steps on D_f: maximise KL(teacher ‖ student) at temperature T, i.e. move away from the
  teacher on the forget set, and
- min steps on D_r: gamma·CE(student, y) + alpha·KL(teacher ‖ student), i.e. stay close to the
  teacher and accurate on the retain set.
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
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from prunelora.errors import InvalidInputError
from prunelora.methods.base import MethodConfig, register_method
from prunelora.training import TrainConfig, fit


@dataclass
class ScrubConfig(MethodConfig):
    """Defaults from the authors' public code (meghdadk/SCRUB, large_scale_unlearning.ipynb, the
    CIFAR-10 ResNet setting): SGD, lr 5e-4, momentum 0.9, weight decay 5e-4; 3 rounds (`epochs`)
    of which `msteps` 2 include a max pass; temperature 4; `gamma` 0.99 on the cross-entropy and
    `alpha` 0.001 on the KL term of the min steps; batch size 256 on D_r and 512 on D_f. Their
    learning-rate decay (after epoch 3) never triggers within 3 rounds: constant schedule.

    `steps`, when given, replaces each one-epoch pass by that many optimizer steps (so a run takes
    `steps` × (`epochs` + `msteps`) steps). `schedule="cosine"` decays the learning rate per round.
    """

    epochs: float = 3
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "constant"
    msteps: int = 2
    temperature: float = 4.0
    alpha: float = 0.001
    gamma: float = 0.99
    forget_batch_size: int = 512

    def __post_init__(self) -> None:
        if not (float(self.epochs).is_integer() and self.epochs >= 1):
            raise InvalidInputError(f"epochs {self.epochs} is not a whole number of rounds >= 1 (scrub)")
        if not 1 <= self.msteps <= self.epochs:
            raise InvalidInputError(f"msteps {self.msteps} is outside [1, epochs={self.epochs:g}]")
        if not self.temperature > 0:
            raise InvalidInputError(f"temperature {self.temperature} must be > 0")
        if self.alpha < 0:
            raise InvalidInputError(f"alpha {self.alpha} must be >= 0")
        if self.gamma < 0:
            raise InvalidInputError(f"gamma {self.gamma} must be >= 0")
        if self.alpha == 0 and self.gamma == 0:
            raise InvalidInputError("alpha and gamma are both 0: the min steps would have no objective")
        if self.forget_batch_size < 1:
            raise InvalidInputError(f"forget_batch_size {self.forget_batch_size} must be >= 1")
        super().__post_init__()

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
                 "(Kurmanji et al. 2023)", needs_forget_samples=True)
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
        return config.gamma * ce(logits, y) + config.alpha * distill_kl(logits, target, config.temperature)

    rounds = int(config.epochs)
    history, steps = [], 0
    for round_ in range(1, rounds + 1):
        passes = [("max", splits.forget, max_loss)] if round_ <= config.msteps else []
        passes.append(("min", splits.retain, min_loss))
        for phase, dataset, loss_fn in passes:
            result = fit(model, dataset, config.pass_config(round_, forget=phase == "max"), loss_fn=loss_fn,
                         freeze_batchnorm=config.bn_mode == "freeze", device=ctx.device, progress=ctx.progress,
                         description=f"scrub {phase} {round_}/{rounds}")
            steps += result.steps
            history.append({"round": round_, "phase": phase, "steps": steps, "loss": result.final_loss})
    model.zero_grad(set_to_none=True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return model, {"cost": {"trainable_params": trainable, "steps": steps}, "history": history}


def _frozen_copy(model: nn.Module) -> nn.Module:
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
