"""The method registry and the one contract every unlearning method follows.

A method is a function `run(model, splits, config, ctx) -> (model, MethodRecord)` registered with
a typed config dataclass (derived from `MethodConfig`) and its declared `Capabilities`.
`unlearn()` wraps every method alike: it copies the model (the caller's is never changed),
measures wall time and peak memory, and reports sparsity.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from torch import nn

from prunelora.data import Splits, resolve_splits
from prunelora.errors import InvalidInputError
from prunelora.models.classifier import classifier_outputs, find_classifier
from prunelora.pruning import sparsity_report
from prunelora.training import (
    TrainConfig,
    TrainResult,
    fit,
    resolve_device,
    seed_everything,
    trainable_parameters,
)
from prunelora.training.memory import PeakMemory
from prunelora.typecheck import check_field_types, check_values

# --------------------------------------------------------------------------- configs


@dataclass
class MethodConfig:
    """The base of every method's config: a seed, strict field types, a JSON form.

    Subclasses add fields, each with `metadata={"help": ...}` (the command line's help text), and
    put their checks in `validate()` (calling `super().validate()`).
    """

    seed: int = field(default=0, metadata={"help": (
        "seed of everything the method draws (data order, LoRA's initial matrices, random labels, ...)")})

    def __post_init__(self) -> None:
        check_field_types(self)  # every field of the concrete method's config, before any range check
        self.validate()

    def validate(self) -> None:
        """Refuse bad values with one line naming them; may normalise (a comma-separated list
        becomes a tuple). Overrides call `super().validate()`."""

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


def option(config_cls: type, name: str, default: Any, help: str | None = None) -> Any:
    """A field of `config_cls` with another default (and help, if given): what a method's config
    writes to change a shared option's default without losing its help text."""
    (base,) = [f for f in fields(config_cls) if f.name == name]
    return field(default=default, metadata={**base.metadata, **({"help": help} if help else {})})


@dataclass
class TrainingOptions(MethodConfig):
    """The training recipe of a method that trains. Defaults: the paper's Adam, lr 1e-3, 5 epochs."""

    # the fields TrainConfig also has take its help and choices (one text for `train` and `unlearn`)
    epochs: float = option(TrainConfig, "epochs", 5, (
        "passes over the method's training data (fractions allowed); --steps replaces it"))
    steps: int | None = option(TrainConfig, "steps", None, (
        "a budget in optimizer steps instead of epochs (small data sets need one)"))
    batch_size: int = option(TrainConfig, "batch_size", 128)
    optimizer: str = option(TrainConfig, "optimizer", "adam")
    lr: float = option(TrainConfig, "lr", 1e-3, "learning rate")
    momentum: float = option(TrainConfig, "momentum", 0.9)
    weight_decay: float = option(TrainConfig, "weight_decay", 0.0)
    schedule: str = option(TrainConfig, "schedule", "constant")
    bn_mode: str = field(default="update", metadata={"help": (
        "update (BatchNorm running statistics follow the training data) or freeze (kept as they are)")})
    mixed_precision: str = option(TrainConfig, "mixed_precision", "no")

    def validate(self) -> None:
        super().validate()
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

    def fit(self, model: nn.Module, dataset, ctx: MethodContext, description: str, *,
            recipe: TrainConfig | None = None, **options) -> TrainResult:
        """`prunelora.training.fit` with this config's recipe (or `recipe`), its BatchNorm mode, and
        the run's device and progress bar; `options` (`loss_fn`, `params`, ...) go to `fit`."""
        return fit(model, dataset, self.train_config() if recipe is None else recipe,
                   freeze_batchnorm=self.bn_mode == "freeze", device=ctx.device, progress=ctx.progress,
                   description=description, **options)

    def train(self, model: nn.Module, dataset, ctx: MethodContext, description: str, *,
              trainable: int | None = None, **options) -> MethodRecord:
        """One `fit` as a method's record: its steps and history, and the parameters it trained
        (those of `model` that require a gradient, unless `trainable` says otherwise)."""
        result = self.fit(model, dataset, ctx, description, **options)
        return MethodRecord(trainable_parameters(model) if trainable is None else trainable, result.steps,
                            result.history)


# --------------------------------------------------------------------------- records


@dataclass
class MethodRecord:
    """What a method reports of its run: the parameters it trained, its optimizer steps, its
    training history, the pruning it chose (methods that prune) and method-specific `details`
    (e.g. SSD's selected weights, SalUn's saliency mask size, retrain's recipe).

    `to_dict()` is its JSON, as meta.json and bench cells hold it: `cost` {trainable_params,
    steps}, `history`, `pruning` (when set) and each detail under its own key.
    """

    trainable_params: int
    steps: int
    history: list[dict] = field(default_factory=list)
    pruning: dict | None = None
    details: dict[str, Any] = field(default_factory=dict)

    RESERVED: ClassVar[tuple[str, ...]] = ("method", "cost", "sparsity", "history", "pruning")

    def __post_init__(self) -> None:
        clash = [k for k in self.details if k in self.RESERVED]
        if clash:
            raise ValueError(f"method record detail {clash[0]!r} would overwrite the record's own key")

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"cost": {"trainable_params": self.trainable_params, "steps": self.steps},
                               "history": self.history}
        if self.pruning is not None:
            out["pruning"] = self.pruning
        return out | self.details

    @classmethod
    def from_dict(cls, data: dict) -> MethodRecord:
        """The inverse of `to_dict`."""
        rest = dict(data)
        cost = rest.pop("cost")
        return cls(trainable_params=cost["trainable_params"], steps=cost["steps"], history=rest.pop("history", []),
                   pruning=rest.pop("pruning", None), details=rest)


# --------------------------------------------------------------------------- methods

FORGET_KINDS = ("class", "fraction", "indices")  # every kind a ForgetSpec can be


@dataclass(frozen=True)
class Capabilities:
    """What a method does, declared where it is registered; nothing reads it from config fields.

    `needs_forget_samples`: it reads D_f (an empty forget set is refused before any work).
    `trains`: it runs the training loop, with its own recipe (its config derives from
    `TrainingOptions`) unless `from_scratch`.
    `uses_pruning`: it prunes first (its config derives from `PruneOptions`; its record holds the
    pruning chosen). `uses_lora`: it trains LoRA adapters (`LoraOptions`; its adapter can be saved).
    `from_scratch`: it ignores the given weights and trains a fresh model on D_r with the
    original's recipe (the checkpoint's meta.json, or `model_factory=` and `recipe=`).
    `forget_kinds`: the forget requests it supports (`ForgetSpec.kind`: class, fraction, indices);
    `unlearn()` refuses any other in one line before any work.
    """

    needs_forget_samples: bool
    trains: bool
    uses_pruning: bool
    uses_lora: bool
    from_scratch: bool
    forget_kinds: tuple[str, ...] = FORGET_KINDS


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


MethodFn = Callable[[nn.Module, Splits, Any, MethodContext], tuple[nn.Module, MethodRecord]]


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type
    run: MethodFn
    summary: str
    capabilities: Capabilities

    def check_options(self, options: dict) -> None:
        """Refuse an option this method does not take or a value of the wrong type, before any
        config is built."""
        known = {f.name for f in fields(self.config_cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidInputError(
                f"method {self.name!r} does not take option {unknown[0]!r}; its options: {', '.join(sorted(known))}"
            )
        check_values(self.config_cls, options)

    def make_config(self, **overrides) -> Any:
        self.check_options(overrides)
        return self.config_cls(**overrides)


_METHODS: dict[str, Method] = {}

FORGET_KIND_NAMES = {"class": "class-wise (--forget-class)", "fraction": "a random fraction (--forget-fraction)",
                     "indices": "an index list (--forget-indices)"}


def check_forget_kind(method: Method, splits: Splits) -> None:
    """Refuse, in one line, a forget request of a kind `method` does not declare it supports."""
    kind = splits.spec.kind if splits.spec is not None else None
    if kind is not None and kind not in method.capabilities.forget_kinds:
        accepted = ", ".join(FORGET_KIND_NAMES[k] for k in method.capabilities.forget_kinds)
        raise InvalidInputError(f"method {method.name!r} does not support forgetting {FORGET_KIND_NAMES[kind]}; "
                                f"it supports: {accepted}")


def register_method(name: str, config_cls: type, summary: str, *, capabilities: Capabilities):
    """Decorator: `@register_method("finetune", FinetuneConfig, "one line", capabilities=Capabilities(...))`
    on the run function."""

    def wrap(fn: MethodFn) -> MethodFn:
        if name in _METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        if not (isinstance(config_cls, type) and issubclass(config_cls, MethodConfig)):
            raise TypeError(f"method {name!r}: its config {config_cls!r} does not derive from MethodConfig")
        own_recipe = capabilities.trains and not capabilities.from_scratch
        if own_recipe != issubclass(config_cls, TrainingOptions):
            raise TypeError(f"method {name!r}: a config derives from TrainingOptions exactly when the method "
                            "trains with its own recipe (trains, not from_scratch)")
        _METHODS[name] = Method(name, config_cls, fn, summary, capabilities)
        return fn

    return wrap


def get_method(name: str) -> Method:
    if name not in _METHODS:
        raise InvalidInputError(f"unknown method {name!r}; accepted: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def list_methods() -> dict[str, str]:
    """Registered method names with their one-line summaries.

    Returns:
        `{name: summary}`, sorted by name.
    """
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

    The caller's model is never changed. `retrain` rebuilds the model from a checkpoint's
    `original_meta`, or from your `model_factory()` trained with `recipe`.

    Args:
        model: the trained classifier (any `nn.Module` whose classifier is an `nn.Linear`).
        splits: the data (see `build_splits`); or give your own datasets as `retain=` etc.
        method: a registered method name (`prunelora.list_methods()`).
        config: the method's config dataclass; or pass its fields as keyword arguments.
        retain: your D_r, a map-style Dataset of `(image, label)` (instead of `splits`).
        forget: your D_f.
        test: your test set (optional).
        forget_classes: the forgotten classes, for class-wise forgetting (see
            `Splits.from_datasets`).
        device: `"cpu"`, `"cuda"`, ...; None picks a GPU when there is one.
        progress: show progress bars.
        original_meta: the original checkpoint's meta.json (`retrain` repeats its recipe).
        model_factory: for `retrain` of your own model: builds a fresh, untrained one.
        recipe: for `retrain` of your own model: the `TrainConfig` it is trained with.
        classifier: the classifier module's name (e.g. `"fc"`); by default it is found (`head`,
            timm's `get_classifier()`, else the last `nn.Linear`).
        **overrides: the method's options (fields of its config), e.g. `epochs=5, prune_amount=0.5`.

    Returns:
        An `UnlearnResult`: `.model`, a plain merged `nn.Module`; `.record`, the method, its config,
        wall time, peak memory, trainable parameters and the sparsity report; `.artifacts`, live
        objects such as the peft model.

    Raises:
        InvalidInputError: an unknown method, an option it does not take or a bad value, an empty
            forget set for a method that reads it, or a model without a classifier.

    Example:
        ```python
        result = prunelora.unlearn(model, splits, "prunelora", epochs=30, prune_amount=0.5, seed=0)
        result = prunelora.unlearn(my_model, method="random-label", retain=retain, forget=forget)
        ```
    """
    splits = resolve_splits(splits, retain, forget, test, forget_classes, num_classes=classifier_outputs(model, classifier))

    entry = get_method(method)
    if config is None:
        config = entry.make_config(**overrides)
    elif overrides:
        entry.check_options(overrides)
        config = dataclasses.replace(config, **overrides)
    if not isinstance(config, entry.config_cls):
        raise InvalidInputError(f"method {method!r} takes a {entry.config_cls.__name__}, not {type(config).__name__}")
    check_forget_kind(entry, splits)
    if entry.capabilities.needs_forget_samples and len(splits.forget) == 0:
        raise InvalidInputError(f"method {method!r} needs forget samples, but the forget set is empty")
    dev = resolve_device(device)
    classifier_name, _ = find_classifier(model, classifier)  # one clear line for a model without one
    ctx = MethodContext(device=dev, progress=progress, original_meta=original_meta, model_factory=model_factory,
                        recipe=recipe, classifier=classifier_name)
    work = copy.deepcopy(model).to(dev)
    # Everything a method draws (LoRA's A matrices, a retrain's initial weights) follows its seed.
    seed_everything(config.seed)
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
    if not isinstance(record, MethodRecord):
        raise TypeError(f"method {method!r} returned a {type(record).__name__}, not a MethodRecord")
    if entry.capabilities.uses_pruning:
        record = dataclasses.replace(record, pruning=ctx.artifacts["pruning"])
    own = record.to_dict()
    return UnlearnResult(result, {
        "method": {"name": method, "config": config.to_dict()},
        "cost": {"wall_time_s": wall, "peak_memory_mb": peak.mb, **own.pop("cost")},
        "sparsity": sparsity_report(result, ctx.artifacts.get("masks")),
        **own,
    }, ctx.artifacts)
