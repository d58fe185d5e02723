"""The method registry and the one interface every unlearning method follows.

A method is a function `run(model, splits, config, ctx) -> (model, record)` registered with a
typed config dataclass. `unlearn()` wraps every method alike: it copies the model (the caller's is
never changed), measures wall time and peak memory, and reports sparsity.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from torch import nn

from prunelora.data import Splits, resolve_splits
from prunelora.errors import InvalidInputError
from prunelora.models.classifier import classifier_outputs, find_classifier
from prunelora.pruning import sparsity_report
from prunelora.training import TrainConfig, resolve_device, seed_everything
from prunelora.training.memory import PeakMemory
from prunelora.typecheck import check_field_types, check_values


@dataclass
class MethodConfig:
    """Fields every training-based method shares. Defaults: the paper's Adam, lr 1e-3, 5 epochs."""

    epochs: float = 5
    steps: int | None = None
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    bn_mode: str = "update"
    mixed_precision: str = "no"
    seed: int = 0

    def __post_init__(self) -> None:
        check_field_types(self)  # every field of the concrete method's config
        if self.bn_mode not in ("update", "freeze"):
            raise InvalidInputError(f"bn_mode {self.bn_mode!r} is not 'update' or 'freeze'")
        # the training recipe validates the rest, with the same messages (optimizer, schedule,
        # epochs, steps, lr, batch size, weight decay, mixed precision)
        self.train_config()

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, steps=self.steps, batch_size=self.batch_size,
                           optimizer=self.optimizer, lr=self.lr, momentum=self.momentum,
                           weight_decay=self.weight_decay, schedule=self.schedule, seed=self.seed,
                           mixed_precision=self.mixed_precision)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass
class MethodContext:
    """What a method may need beyond model, data and config."""

    device: Any = None
    progress: bool = True
    original_meta: dict | None = None  # the original checkpoint's meta.json (retrain needs its recipe)
    artifacts: dict = field(default_factory=dict)  # e.g. the peft model, for adapter export
    model_factory: Callable[[], nn.Module] | None = None  # retrain of a user's model: builds a fresh one
    recipe: Any = None  # ... and the TrainConfig it is trained with
    classifier: str | None = None  # the classifier's module name (`head`, `fc`, ...): trained whole, never pruned


MethodFn = Callable[[nn.Module, Splits, Any, MethodContext], tuple[nn.Module, dict]]


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type
    run: MethodFn
    summary: str
    needs_forget_samples: bool = False

    def make_config(self, **overrides) -> Any:
        known = {f.name for f in fields(self.config_cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidInputError(
                f"method {self.name!r} does not take option {unknown[0]!r}; its options: {', '.join(sorted(known))}"
            )
        check_values(self.config_cls, overrides)
        return self.config_cls(**overrides)


_METHODS: dict[str, Method] = {}


def register_method(name: str, config_cls: type, summary: str, needs_forget_samples: bool = False):
    """Decorator: `@register_method("finetune", FinetuneConfig, "one line")` on the run function."""

    def wrap(fn: MethodFn) -> MethodFn:
        if name in _METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        _METHODS[name] = Method(name, config_cls, fn, summary, needs_forget_samples)
        return fn

    return wrap


def get_method(name: str) -> Method:
    if name not in _METHODS:
        raise InvalidInputError(f"unknown method {name!r}; accepted: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def list_methods() -> dict[str, str]:
    """Registered method names with their one-line summaries."""
    return {name: m.summary for name, m in sorted(_METHODS.items())}


@dataclass
class UnlearnResult:
    """The plain merged model, a JSON-able record of the run, and live objects (e.g. the peft model)."""

    model: nn.Module
    record: dict
    artifacts: dict = field(default_factory=dict)


def unlearn(model: nn.Module, splits: Splits | None = None, method: str = "prunelora", config: Any = None, *,
            retain=None, forget=None, test=None, forget_classes=None, device: str | None = None,
            progress: bool = True, original_meta: dict | None = None, model_factory=None, recipe=None,
            classifier: str | None = None, **overrides) -> UnlearnResult:
    """Run an unlearning method on a copy of `model`; returns the plain merged model and a record.

    The data: `splits` (see `build_splits`), or your own datasets as `retain=` (D_r) and `forget=`
    (D_f), optionally `test=` and, for class-wise forgetting, `forget_classes=` (see
    `Splits.from_datasets`). `config` is the method's config dataclass, or pass its fields as keyword
    arguments. `retrain` rebuilds the model from a checkpoint's `original_meta`, or from your
    `model_factory()` trained with `recipe` (a `TrainConfig`). `classifier` names the classifier
    module (e.g. `"fc"`); by default it is found (`head`, timm's `get_classifier()`, else the last
    `nn.Linear`). The record holds the method, its config, wall time, peak memory, trainable
    parameters and the sparsity report.
    """
    splits = resolve_splits(splits, retain, forget, test, forget_classes, num_classes=classifier_outputs(model, classifier))

    entry = get_method(method)
    if config is None:
        config = entry.make_config(**overrides)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    if not isinstance(config, entry.config_cls):
        raise InvalidInputError(f"method {method!r} takes a {entry.config_cls.__name__}, not {type(config).__name__}")
    if entry.needs_forget_samples and len(splits.forget) == 0:
        raise InvalidInputError(f"method {method!r} needs forget samples, but the forget set is empty")
    dev = resolve_device(device)
    classifier_name, _ = find_classifier(model, classifier)  # one clear line for a model without one
    ctx = MethodContext(device=dev, progress=progress, original_meta=original_meta, model_factory=model_factory,
                        recipe=recipe, classifier=classifier_name)
    work = copy.deepcopy(model).to(dev)
    # Everything a method draws (LoRA's A matrices, a retrain's initial weights) follows its seed.
    seed_everything(getattr(config, "seed", 0))
    with PeakMemory(dev) as peak:
        start = time.perf_counter()
        result, record = entry.run(work, splits, config, ctx)
        wall = time.perf_counter() - start
    result.eval()
    # A method may diverge without a training loss to notice it (SSD divides by importances):
    # NaN weights would score UA 100 (argmax over NaN) and be saved as a success.
    bad = next((k for k, v in result.state_dict().items() if v.is_floating_point() and not bool(v.isfinite().all())),
               None)
    if bad is not None:
        raise InvalidInputError(f"method {method!r} produced NaN or infinite weights (e.g. {bad}); nothing is "
                                "saved or scored: lower the learning rate or change the method's options")
    masks = ctx.artifacts.get("masks")
    record = {
        "method": {"name": method, "config": config.to_dict()},
        "cost": {"wall_time_s": wall, "peak_memory_mb": peak.mb, **record.pop("cost", {})},
        "sparsity": sparsity_report(result, masks),
        **record,
    }
    return UnlearnResult(result, record, ctx.artifacts)
