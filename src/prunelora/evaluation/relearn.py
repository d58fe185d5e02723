"""Relearning time: how fast does a model regain the forgotten data's accuracy?

Knowledge that was only hidden comes back in a few steps; knowledge that was removed has to be
learned again. A copy of the model is fine-tuned on a small, fixed, seeded part of D_f (the
*relearn set*: `fraction` of D_f, at least `min_images`), each step also seeing as many D_r images
(so that predicting the forgotten class everywhere is no shortcut), and after every step its
accuracy is measured on a held-out part of the rest of D_f (at most `max_eval` images). The
answer is the number of optimizer steps until that accuracy reaches `target_fraction` times the
original model's accuracy on the same images (0 when it already does), capped at `max_steps`:
a model that never reaches the target within the cap gets the cap and is marked *capped*
(its true time is at least the cap).

The **relearn ratio** is steps(model) / steps(retrain), the anamnesis index of Chundawat et al.
(2023, "Zero-Shot Machine Unlearning"): ≈ 1 relearns like a model that never saw D_f, ≪ 1 means
the knowledge was only hidden. Every model gets the same optimiser, learning rate, batches and cap.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from prunelora.data import Splits
from prunelora.data.generic import fetch
from prunelora.errors import InvalidInputError
from prunelora.training.loop import resolve_device, top1_accuracy


@dataclass(frozen=True)
class RelearnConfig:
    """The relearning protocol (the same for every model compared).

    Attributes:
        fraction: size of the relearn set, with `min_images`: `max(min_images, ceil(fraction * |D_f|))`.
        min_images: the relearn set's smallest size.
        max_steps: the cap on relearning steps.
        lr: SGD's learning rate.
        momentum: SGD's momentum.
        batch_size: relearn images per step (all of them when fewer).
        retain_ratio: D_r images per relearn image in each step.
        target_fraction: the share of the original's accuracy to regain.
        max_eval: held-out D_f images measured after each step.
        seed: which images and batches (everything else is deterministic).
    """

    fraction: float = 0.01
    min_images: int = 10
    max_steps: int = 100
    lr: float = 0.01
    momentum: float = 0.9
    batch_size: int = 32
    retain_ratio: float = 1.0
    target_fraction: float = 0.9
    max_eval: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction < 1.0:
            raise InvalidInputError(f"relearn fraction {self.fraction} is outside [0, 1)")
        for name in ("min_images", "max_steps", "batch_size", "max_eval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"relearn {name} {value!r} must be a positive integer")
        if not self.lr > 0:
            raise InvalidInputError(f"relearn lr {self.lr} must be > 0")
        if not 0.0 <= self.momentum < 1.0:
            raise InvalidInputError(f"relearn momentum {self.momentum} is outside [0, 1)")
        if not self.retain_ratio >= 0:
            raise InvalidInputError(f"relearn retain_ratio {self.retain_ratio} must be >= 0")
        if not 0.0 < self.target_fraction <= 1.0:
            raise InvalidInputError(f"relearn target_fraction {self.target_fraction} is outside (0, 1]")

    @classmethod
    def from_dict(cls, data: dict, source: str = "relearn") -> RelearnConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidInputError(f"{source}: unknown key {sorted(unknown)[0]!r}; accepted: {', '.join(sorted(known))}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise InvalidInputError(f"{source}: a value has the wrong type ({exc})") from None

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_RELEARN = RelearnConfig()
"""The default protocol (frozen, so safe to share)."""


@dataclass(frozen=True)
class RelearnResult:
    """`steps` until the target was reached (the cap when `capped`); `target`: the accuracy (%) to
    reach; `curve`: held-out D_f accuracy before training and after each step."""

    steps: int
    capped: bool
    target: float
    n_relearn: int
    n_eval: int
    curve: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def relearn_parts(splits: Splits, config: RelearnConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(relearn, held-out) indices into `splits.forget`, fixed by `config.seed`."""
    n = len(splits.forget)
    if n < 2:
        raise InvalidInputError(f"relearning needs at least 2 forget images (one to train, one to measure); got {n}")
    k = min(max(config.min_images, math.ceil(config.fraction * n)), n - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed))
    return order[:k], order[k:k + config.max_eval]


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Accuracy (%) on images already on the model's device (`predict` would move them there at
    every one of up to `max_steps` steps)."""
    model.eval()
    logits = torch.cat([model(x[i:i + batch_size]) for i in range(0, len(y), batch_size)]) if len(y) else x[:0]
    return top1_accuracy(logits, y)


def heldout_accuracy(model: nn.Module, splits: Splits, config: RelearnConfig = DEFAULT_RELEARN,
                     device: str | torch.device | None = None) -> float:
    """Accuracy (%) of `model` on the held-out part of D_f: the original's is the level to regain.

    Args:
        model: usually the original model.
        splits: the splits whose D_f is measured.
        config: the relearning protocol (it decides which part of D_f is held out).
        device: `"cpu"`, `"cuda"`, ...; None picks a GPU when there is one.

    Returns:
        The accuracy in percent; pass it to `evaluate(relearn_target=...)`.
    """
    _, heldout = relearn_parts(splits, config)
    device = resolve_device(device)
    x, y = fetch(splits.forget, heldout.tolist())
    was_training = model.training
    model.to(device)
    try:
        return _accuracy(model, x.to(device), y.to(device))
    finally:
        model.train(was_training)


def relearn_steps(model: nn.Module, splits: Splits, original_accuracy: float,
                  config: RelearnConfig = DEFAULT_RELEARN, device: str | torch.device | None = None) -> RelearnResult:
    """Fine-tune a copy of `model` on the relearn set; count steps until the held-out D_f accuracy
    reaches `config.target_fraction * original_accuracy`. `model` itself is left unchanged."""
    if not math.isfinite(original_accuracy):
        raise InvalidInputError(f"the original's accuracy to regain must be a number; got {original_accuracy}")
    device = resolve_device(device)
    relearn_idx, heldout = relearn_parts(splits, config)
    target = config.target_fraction * original_accuracy
    x_eval, y_eval = (t.to(device) for t in fetch(splits.forget, heldout.tolist()))
    x_relearn, y_relearn = fetch(splits.forget, relearn_idx.tolist())
    generator = torch.Generator().manual_seed(config.seed)
    per_step = min(config.batch_size, len(relearn_idx))
    n_retain = min(round(config.retain_ratio * per_step), len(splits.retain))

    student = copy.deepcopy(model).to(device)
    for p in student.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.SGD(student.parameters(), lr=config.lr, momentum=config.momentum)
    criterion = nn.CrossEntropyLoss()
    curve = [_accuracy(student, x_eval, y_eval)]
    steps = 0
    # Dropout and any other sampling inside the model draw from a forked, seeded generator: the
    # caller's random state is untouched and the result depends on `config.seed` alone.
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        while curve[-1] < target and steps < config.max_steps:
            pick = torch.randperm(len(relearn_idx), generator=generator)[:per_step]
            x, y = x_relearn[pick], y_relearn[pick]
            if n_retain:
                rx, ry = fetch(splits.retain, torch.randperm(len(splits.retain), generator=generator)[:n_retain].tolist())
                x, y = torch.cat([x, rx]), torch.cat([y, ry])
            student.train()
            loss = criterion(student(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            curve.append(_accuracy(student, x_eval, y_eval))
    return RelearnResult(steps=steps, capped=curve[-1] < target, target=target, n_relearn=len(relearn_idx),
                         n_eval=len(heldout), curve=curve)


def relearn_ratio(steps: float, reference_steps: float, capped: bool = False,
                  reference_capped: bool = False) -> float:
    """steps / reference_steps (the anamnesis index). Both at the target before any step → 1.0;
    only the reference → nan (no ratio to a zero; the steps themselves still tell), as when both
    are capped (the cap was too small to tell them apart). A capped model's ratio is a lower
    bound, a capped reference's an upper bound."""
    if capped and reference_capped:
        return float("nan")
    if reference_steps == 0:
        return 1.0 if steps == 0 else float("nan")
    return steps / reference_steps
