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

Two choices make the measure consistent (a model that still recognises more of the class never
needs more steps than one that recognises less):

- **BatchNorm statistics frozen** (`batchnorm="frozen"`, the default): the copy is fine-tuned in
  eval mode, so only its weights learn. With BatchNorm in train mode, every step's batch (half of
  it from the forgotten class) moves the running statistics away from what the weights expect:
  on the Fashion-MNIST ResNet-8, fine-tuning that still recognised 64% of D_f rose to 80-90% in
  3 steps and then fell, hitting the cap, while the retrain needed 19 steps; on digits the
  original itself loses 6 points of held-out D_f accuracy in 30 steps. `"train"` is that older
  protocol, kept for comparison.
- **Averaged over relearn seeds** (`repeats`): each repeat draws its own relearn set (10 images by
  default: which ten matters) and batches; `steps` is their mean, capped when any repeat was.
  `budgets` adds the held-out accuracy after a fixed number of steps (`relearn_acc@<k>`, mean over
  repeats), a measure with no threshold and no cap.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields, replace

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
        batchnorm: "frozen" (fine-tune in eval mode: running statistics and dropout fixed) or
            "train" (the older protocol, under which batches half made of the forgotten class drift
            BatchNorm's statistics and relearning can erase what a model knew).
        repeats: relearn seeds averaged (`seed`, `seed + 1`, ...).
        budgets: step counts after which the held-out accuracy is also reported (each repeat runs
            at least that long; a budget above `max_steps` is not measured).
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
    batchnorm: str = "frozen"
    repeats: int = 3
    budgets: tuple[int, ...] = (10,)

    def __post_init__(self) -> None:
        # YAML and JSON give lists; the config is frozen and hashed into cell keys, so keep a tuple.
        if isinstance(self.budgets, list):
            object.__setattr__(self, "budgets", tuple(self.budgets))
        if not isinstance(self.budgets, tuple) or any(isinstance(b, bool) or not isinstance(b, int) or b < 1
                                                      for b in self.budgets):
            raise InvalidInputError(f"relearn budgets {self.budgets!r} must be a list of positive step counts")
        if self.batchnorm not in ("frozen", "train"):
            raise InvalidInputError(f"relearn batchnorm {self.batchnorm!r} must be 'frozen' or 'train'")
        if not 0.0 <= self.fraction < 1.0:
            raise InvalidInputError(f"relearn fraction {self.fraction} is outside [0, 1)")
        for name in ("min_images", "max_steps", "batch_size", "max_eval", "repeats"):
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
        return asdict(self) | {"budgets": list(self.budgets)}


DEFAULT_RELEARN = RelearnConfig()
"""The default protocol (frozen, so safe to share)."""


@dataclass(frozen=True)
class RelearnResult:
    """`steps` until the target was reached, the mean over repeats (a repeat that never reached it
    counts the cap, and `capped` is set); `target`: the accuracy (%) to reach; `curve`: the first
    repeat's held-out D_f accuracy before training and after each step until it reached the target;
    `per_seed_steps` / `curves`: every repeat's steps and whole curve; `budget_accuracy`: budget
    (as text) -> held-out accuracy after that many steps, mean over repeats."""

    steps: float
    capped: bool
    target: float
    n_relearn: int
    n_eval: int
    curve: list[float]
    per_seed_steps: list[int] = field(default_factory=list)
    curves: list[list[float]] = field(default_factory=list)
    budget_accuracy: dict[str, float] = field(default_factory=dict)

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


def _repeat_configs(config: RelearnConfig) -> list[RelearnConfig]:
    return [replace(config, seed=config.seed + r) for r in range(config.repeats)]


def heldout_accuracy(model: nn.Module, splits: Splits, config: RelearnConfig = DEFAULT_RELEARN,
                     device: str | torch.device | None = None) -> float:
    """Accuracy (%) of `model` on the held-out part of D_f (the mean over the repeats' held-out
    parts): the original's is the level to regain.

    Args:
        model: usually the original model.
        splits: the splits whose D_f is measured.
        config: the relearning protocol (it decides which parts of D_f are held out).
        device: `"cpu"`, `"cuda"`, ...; None picks a GPU when there is one.

    Returns:
        The accuracy in percent; pass it to `relearn_steps` and `evaluate(relearn_target=...)`.
    """
    device = resolve_device(device)
    was_training = model.training
    model.to(device)
    try:
        values = []
        for repeat in _repeat_configs(config):
            _, heldout = relearn_parts(splits, repeat)
            x, y = fetch(splits.forget, heldout.tolist())
            values.append(_accuracy(model, x.to(device), y.to(device)))
        return sum(values) / len(values)
    finally:
        model.train(was_training)


def _relearn_once(model: nn.Module, splits: Splits, target: float, config: RelearnConfig,
                  device: torch.device) -> tuple[int, bool, list[float], int, int]:
    """One repeat: (steps to the target, capped, the whole curve, relearn images, held-out images).
    Runs until the target is reached and the largest budget is spent, or until the cap."""
    relearn_idx, heldout = relearn_parts(splits, config)
    x_eval, y_eval = (t.to(device) for t in fetch(splits.forget, heldout.tolist()))
    x_relearn, y_relearn = fetch(splits.forget, relearn_idx.tolist())
    generator = torch.Generator().manual_seed(config.seed)
    per_step = min(config.batch_size, len(relearn_idx))
    n_retain = min(round(config.retain_ratio * per_step), len(splits.retain))
    run_at_least = max([b for b in config.budgets if b <= config.max_steps], default=0)

    student = copy.deepcopy(model).to(device)
    for p in student.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.SGD(student.parameters(), lr=config.lr, momentum=config.momentum)
    criterion = nn.CrossEntropyLoss()
    curve = [_accuracy(student, x_eval, y_eval)]
    reached = 0 if curve[0] >= target else None
    # Dropout and any other sampling inside the model draw from a forked, seeded generator: the
    # caller's random state is untouched and the result depends on `config.seed` alone.
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        while (reached is None or len(curve) - 1 < run_at_least) and len(curve) - 1 < config.max_steps:
            pick = torch.randperm(len(relearn_idx), generator=generator)[:per_step]
            x, y = x_relearn[pick], y_relearn[pick]
            if n_retain:
                rx, ry = fetch(splits.retain, torch.randperm(len(splits.retain), generator=generator)[:n_retain].tolist())
                x, y = torch.cat([x, rx]), torch.cat([y, ry])
            # Frozen: BatchNorm keeps the statistics the weights were trained with (see the module docstring).
            student.train(config.batchnorm == "train")
            loss = criterion(student(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            curve.append(_accuracy(student, x_eval, y_eval))
            if reached is None and curve[-1] >= target:
                reached = len(curve) - 1
    capped = reached is None
    return (config.max_steps if capped else reached), capped, curve, len(relearn_idx), len(heldout)


def relearn_steps(model: nn.Module, splits: Splits, original_accuracy: float,
                  config: RelearnConfig = DEFAULT_RELEARN, device: str | torch.device | None = None) -> RelearnResult:
    """Fine-tune copies of `model` on relearn sets (one per repeat); count steps until the held-out
    D_f accuracy reaches `config.target_fraction * original_accuracy`, averaged over the repeats.
    `model` itself is left unchanged.

    Args:
        model: the model to relearn from.
        splits: its splits (D_f gives the relearn and held-out images, D_r the mixed-in ones).
        original_accuracy: the original model's held-out D_f accuracy (`heldout_accuracy`).
        config: the protocol.
        device: where to train.

    Returns:
        The mean steps, whether any repeat hit the cap, every repeat's curve and the budget accuracies.

    Raises:
        InvalidInputError: `original_accuracy` is not a number, or D_f has fewer than 2 images.
    """
    if not math.isfinite(original_accuracy):
        raise InvalidInputError(f"the original's accuracy to regain must be a number; got {original_accuracy}")
    device = resolve_device(device)
    target = config.target_fraction * original_accuracy
    runs = [_relearn_once(model, splits, target, repeat, device) for repeat in _repeat_configs(config)]
    steps = [run[0] for run in runs]
    curves = [run[2] for run in runs]
    budgets = {str(b): sum(c[b] for c in curves) / len(curves) for b in config.budgets if b <= config.max_steps}
    return RelearnResult(steps=sum(steps) / len(steps), capped=any(run[1] for run in runs), target=target,
                         n_relearn=runs[0][3], n_eval=runs[0][4], curve=curves[0][:steps[0] + 1],
                         per_seed_steps=steps, curves=curves, budget_accuracy=budgets)


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
