"""THE training loop: `train`, `retrain` and every unlearning method call `fit`.

Device placement happens in one place (`resolve_device`), the loop only consumes a DataLoader and
only the caller writes files; on several processes (or with mixed precision on a GPU) it runs
under Hugging Face Accelerate (`prunelora.training.distributed`).
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from torch import nn

from prunelora.data.generic import eval_view, make_loader, subset
from prunelora.errors import InvalidInputError
from prunelora.training.distributed import (
    MIXED_PRECISION,
    accelerator,
    gather_in_order,
    is_distributed,
    is_main_process,
    process_device,
    rank,
    uses_accelerate,
    world_size,
)
from prunelora.typecheck import check_field_types, check_seed

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant")


@dataclass
class TrainConfig:
    """A training recipe. Stored in every checkpoint so that `retrain` can repeat it exactly.

    The budget is `epochs`, or `steps` (optimizer steps) when given: small datasets need budgets
    in steps because an epoch of 1,000 images is only a handful of updates. `prunelora train`'s
    recipe flags are generated from these fields (their defaults, help and choices).

    Attributes:
        epochs: training epochs (fractions allowed).
        steps: optimizer steps; overrides `epochs`.
        batch_size: images per training batch.
        optimizer: `sgd`, `adam` or `adamw`.
        lr: peak learning rate.
        momentum: SGD momentum.
        weight_decay: weight decay.
        schedule: `cosine` or `constant`.
        warmup_fraction: share of steps for linear warm-up.
        grad_clip: clip the gradient norm to this value (None: no clipping).
        label_smoothing: label smoothing of the cross-entropy.
        augment: random crop and flip (32x32 colour data).
        seed: random seed.
        mixed_precision: `no`, `bf16` or `fp16` autocast on a GPU; the CPU always trains in fp32.

    Raises:
        InvalidInputError: a value of the wrong type or out of range, naming the field.

    Example:
        ```python
        recipe = TrainConfig(epochs=30, optimizer="adam", lr=1e-3, seed=0)
        ```
    """

    epochs: float = field(default=30, metadata={"help": "training epochs"})
    steps: int | None = field(default=None, metadata={"help": "optimizer steps; overrides --epochs"})
    batch_size: int = field(default=128, metadata={"help": "images per training batch"})
    optimizer: str = field(default="sgd", metadata={"help": "optimizer (sgd, adam or adamw)", "choices": OPTIMIZERS})
    lr: float = field(default=0.05, metadata={"help": "peak learning rate"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    weight_decay: float = field(default=5e-4, metadata={"help": "weight decay"})
    schedule: str = field(default="cosine", metadata={"help": "learning-rate schedule", "choices": SCHEDULES})
    warmup_fraction: float = field(default=0.0, metadata={"help": "share of steps for linear warm-up"})
    grad_clip: float | None = field(default=None, metadata={"help": "clip the gradient norm to this value"})
    label_smoothing: float = 0.0
    augment: bool = field(default=False, metadata={"help": "random crop + flip (32x32 colour data)"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    mixed_precision: str = field(default="no", metadata={
        "help": "bf16 or fp16 autocast on a GPU; the CPU always trains in fp32", "choices": MIXED_PRECISION})

    def __post_init__(self) -> None:
        check_field_types(self)  # `epochs: true` is not one epoch, `batch_size: 1.5` not one image
        if self.optimizer not in OPTIMIZERS:
            raise InvalidInputError(f"optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise InvalidInputError(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        if self.steps is None and not 0 < self.epochs < math.inf:
            raise InvalidInputError(f"epochs {self.epochs} must be > 0 and finite")
        if self.steps is not None and self.steps < 1:
            raise InvalidInputError(f"steps {self.steps} must be >= 1")
        if self.batch_size < 1:
            raise InvalidInputError(f"batch size {self.batch_size} must be >= 1")
        if not self.lr > 0:
            raise InvalidInputError(f"learning rate {self.lr} must be > 0")
        if self.weight_decay < 0:
            raise InvalidInputError(f"weight decay {self.weight_decay} must be >= 0")
        if not 0 <= self.momentum < 1:  # a negative or >= 1 momentum makes SGD diverge or raise
            raise InvalidInputError(f"momentum {self.momentum} is outside [0, 1)")
        check_seed(self.seed)
        if not 0 <= self.warmup_fraction < 1:
            raise InvalidInputError(f"warm-up fraction {self.warmup_fraction} is outside [0, 1)")
        if not 0 <= self.label_smoothing < 1:
            raise InvalidInputError(f"label smoothing {self.label_smoothing} is outside [0, 1)")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise InvalidInputError(f"gradient clip {self.grad_clip} must be > 0")
        if self.mixed_precision not in MIXED_PRECISION:
            raise InvalidInputError(f"mixed precision {self.mixed_precision!r} is not one of {', '.join(MIXED_PRECISION)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def total_steps(self, num_samples: int) -> int:
        if self.steps is not None:
            return self.steps
        per_epoch = max(1, math.ceil(num_samples / self.batch_size))
        return max(1, int(round(self.epochs * per_epoch)))


@dataclass
class TrainResult:
    steps: int
    wall_time_s: float
    history: list[dict] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        return self.history[-1]["loss"] if self.history else float("nan")


class TrainingDivergedError(InvalidInputError):
    """The loss became NaN or infinite: the recipe (usually the learning rate) is unstable."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that CPU runs are bit-for-bit repeatable."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The one place that decides where tensors live: CUDA when present unless told otherwise.

    A device this machine does not have (`"cuda:3"` on one GPU, `"gpu"`) is refused in one line
    listing the available ones, instead of torch's traceback at the first tensor moved.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = _available_device(device)
    if dev is None:
        raise InvalidInputError(f"device {str(device)[:40]!r} is not available here; available: "
                                f"{', '.join(_available_names())}")
    return dev


def _available_names() -> list[str]:
    available = ["auto", "cpu"]
    if torch.cuda.is_available():
        available += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        available.append("mps")
    return available


def _available_device(device) -> torch.device | None:
    """`torch.device(device)` when this machine has it, else None."""
    if isinstance(device, torch.device):
        dev = device
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, ValueError, TypeError):
            return None
    ok = (dev.type == "cpu"
          or (dev.type == "cuda" and torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count())
          or (dev.type == "mps" and "mps" in _available_names()))
    return dev if ok else None


def check_device(device: str) -> str | None:
    """A user's `--device` checked against what this machine has (None for `auto`); one line listing
    the available devices otherwise, instead of torch's traceback at the first tensor moved."""
    if device == "auto":
        return None
    if _available_device(device) is None:
        raise InvalidInputError(f"--device {device!r} is not available here; available: "
                                f"{', '.join(_available_names())}")
    return device


def make_optimizer(params: Iterable[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise InvalidInputError("nothing to train: no parameter requires a gradient")
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total: int):
    warmup = int(config.warmup_fraction * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def fit(
    model: nn.Module,
    dataset,
    config: TrainConfig,
    *,
    params: Iterable[nn.Parameter] | None = None,
    loss_fn: LossFn | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    freeze_batchnorm: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    description: str = "train",
) -> TrainResult:
    """Train `model` on `dataset` for the budget in `config`, in place.

    Every method and retrain train through this one loop; under a distributed launcher it runs
    data-parallel (each global batch split over the processes).

    Args:
        model: the model to train; changed in place.
        dataset: a map-style Dataset of `(image, label)`.
        config: the recipe (budget, optimizer, schedule, seed, ...).
        params: what is optimised (default: every parameter that requires a gradient).
        loss_fn: `loss_fn(model, x, y)` replaces cross-entropy (methods with their own objectives
            use it).
        after_step: `after_step(model)` runs after each optimizer step (e.g. to re-apply a
            constraint).
        freeze_batchnorm: keep BatchNorm running statistics fixed (BN layers in eval mode).
        device: `"cpu"`, `"cuda"`, ...; None picks a GPU when there is one.
        progress: show a progress bar.
        description: the progress bar's label.

    Returns:
        A `TrainResult`: the optimizer steps taken, the wall time and the loss history.

    Raises:
        InvalidInputError: an empty dataset, or a device this machine does not have.
    """
    device = resolve_device(device)
    # On the CPU, mixed precision is ignored: fp32 keeps CPU runs exact and repeatable.
    precision = config.mixed_precision if device.type == "cuda" else "no"
    acc = accelerator(precision, cpu=device.type == "cpu") if uses_accelerate(device, precision) else None
    if acc is not None:
        device = acc.device
        if config.batch_size % world_size():
            raise InvalidInputError(f"batch size {config.batch_size} is not divisible by the {world_size()} processes")
    model.to(device).train()
    if freeze_batchnorm:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    seed_everything(config.seed)
    loader = make_loader(dataset, batch_size=config.batch_size, shuffle=True, seed=config.seed)
    total = config.total_steps(len(dataset))
    optimizer = make_optimizer(model.parameters() if params is None else params, config)
    scheduler = make_scheduler(optimizer, config, total)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    if loss_fn is None:
        def loss_fn(m, x, y):
            return criterion(m(x), y)
    trained = [p for g in optimizer.param_groups for p in g["params"]]
    runner = model  # what computes the loss: the model itself, or its DDP / autocast wrapper
    if acc is not None:
        # each process gets 1/N of every global batch; gradients are averaged across processes
        runner, optimizer, loader = acc.prepare(model, optimizer, loader)
    progress = progress and is_main_process()

    history: list[dict] = []
    step, epoch = 0, 0
    start = time.perf_counter()
    # The filter lives only as long as this loop: the caller's warning filters are left as they were.
    with warnings.catch_warnings(), _progress(progress, description, total) as bar:
        if acc is not None:
            # DDP's notice about 1x1-conv gradient strides is about speed, not correctness
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        while step < total:
            epoch += 1
            loss_sum, seen = 0.0, 0
            for x, y in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                loss = loss_fn(runner, x, y)
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(
                        f"{description}: loss became {loss.item()} at epoch {epoch}, step {step + 1}; "
                        f"lower the learning rate (now {config.lr}) or set a gradient clip"
                    )
                optimizer.zero_grad(set_to_none=True)
                if acc is not None:
                    acc.backward(loss)
                else:
                    loss.backward()
                if config.grad_clip is not None:
                    if acc is not None:
                        acc.clip_grad_norm_(trained, config.grad_clip)
                    else:
                        nn.utils.clip_grad_norm_(trained, config.grad_clip)
                optimizer.step()
                scheduler.step()
                if after_step is not None:
                    after_step(model)
                step += 1
                loss_sum += loss.item() * len(y)
                seen += len(y)
                bar(step, loss_sum / seen, epoch)
                if step >= total:
                    break
            history.append({"epoch": epoch, "steps": step, "loss": loss_sum / max(seen, 1)})
    return TrainResult(steps=step, wall_time_s=time.perf_counter() - start, history=history)


class _progress:
    """A rich progress bar (to stderr) with loss; silent when disabled."""

    def __init__(self, enabled: bool, description: str, total: int) -> None:
        self.enabled, self.description, self.total = enabled, description, total

    def __enter__(self):
        if not self.enabled:
            return lambda step, loss, epoch: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("epoch {task.fields[epoch]} loss {task.fields[loss]:.4f}"), TimeElapsedColumn(),
            console=Console(stderr=True), transient=False,
        )
        self._progress.start()
        task = self._progress.add_task(self.description, total=self.total, loss=float("nan"), epoch=0)

        def update(step: int, loss: float, epoch: int) -> None:
            self._progress.update(task, completed=step, loss=loss, epoch=epoch)

        return update

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._progress.stop()


@torch.no_grad()
def predict(model: nn.Module, dataset, batch_size: int = 256,
            device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets of `dataset` in eval mode (on the CPU), on un-augmented images.

    Under several processes each predicts its share of the samples and the shares are gathered,
    so every process returns the full, ordered result.
    """
    dataset = eval_view(dataset)  # a training split's random crops and flips never reach evaluation
    device = process_device(resolve_device(device))
    model.to(device)
    was_training = model.training
    model.eval()
    indices = torch.arange(rank(), len(dataset), world_size()) if is_distributed() else None
    shard = subset(dataset, indices) if indices is not None else dataset
    logits, targets = [], []
    for x, y in make_loader(shard, batch_size=batch_size):
        logits.append(model(x.to(device)).float().cpu())
        targets.append(y)
    model.train(was_training)
    out_logits = torch.cat(logits) if logits else torch.empty(0, 0)
    out_targets = torch.cat(targets) if targets else torch.empty(0, dtype=torch.long)
    if indices is not None:
        out_logits, out_targets = gather_in_order(indices, out_logits, out_targets)
    return out_logits, out_targets


def trainable_parameters(model: nn.Module) -> int:
    """The number of parameters that require a gradient (what an optimizer over `model` trains)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def top1_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Top-1 accuracy in percent: ``100 * mean(argmax(logits) == targets)``, the mean taken in float64.

    The one place the formula lives: `accuracy_on` (the pruning criteria's forget accuracy, an
    original's test accuracy), the evaluation's UA/RA/TA/FA (`prunelora.evaluation.metrics`) and
    relearning all call it. It lives here, below evaluation, because training's callers need it too.

    Args:
        logits: model outputs, shape ``(N, C)``.
        targets: class indices, shape ``(N,)``.

    Returns:
        The accuracy in ``[0, 100]``; NaN when there is no sample (an empty split has no accuracy).
    """
    if targets.numel() == 0:
        return float("nan")
    return 100.0 * float((logits.argmax(1) == targets).to(torch.float64).mean())


def accuracy_on(model: nn.Module, dataset, device: str | torch.device | None = None) -> float:
    """Top-1 accuracy of `model` on `dataset` in percent (`top1_accuracy`); NaN for an empty dataset."""
    if len(dataset) == 0:
        return float("nan")
    return top1_accuracy(*predict(model, dataset, device=device))
