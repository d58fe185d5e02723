"""The method registry and the one contract every unlearning method follows.

A method is a function `run(model, splits, config, ctx) -> (model, MethodRecord)` registered with
a typed config dataclass (derived from `MethodConfig`) and its declared `Capabilities`.
`unlearn()` wraps every method alike: it copies the model (the caller's is never changed),
measures wall time and peak memory, and reports sparsity. What a method produces besides the model
(masks, an adapter, ...) travels in its typed record, never on the side.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from torch import nn

from prunelora.adapters.lora import load_peft
from prunelora.data import Splits, resolve_splits
from prunelora.errors import InvalidInputError, did_you_mean
from prunelora.methods.budget import warn_if_far_below
from prunelora.models.checks import check_classifier, check_model, check_scores, model_scores
from prunelora.presets import method_preset
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
from prunelora.typecheck import check_field_types, check_seed, check_values

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
        check_seed(self.seed)
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


def options_from(source: type, names: dict[str, str], *, defaults: dict[str, Any] | None = None,
                 helps: dict[str, str] | None = None) -> Callable[[type], type]:
    """Class decorator, placed under `@dataclass`: one field per field of the dataclass `source`
    that `names` maps to an option name, with the source's type, default and metadata (help,
    choices) unless `defaults`/`helps` (keyed by option name) say otherwise. The option fields
    come before the class's own, in `names`' order.

    So each option is declared once, where it is checked (`TrainConfig`, `PruneSettings`,
    `LoraSettings`), and a method's config, its command-line flags and its help follow it.

    Args:
        source: the dataclass whose fields are copied.
        names: {source field: option name}.
        defaults: other defaults, by option name.
        helps: other help texts, by option name.

    Returns:
        The decorator.
    """
    defaults, helps = defaults or {}, helps or {}

    def wrap(cls: type) -> type:
        by_name = {f.name: f for f in fields(source)}
        hints = typing.get_type_hints(source)
        added: dict[str, Any] = {}
        for src, name in names.items():
            base = by_name[src]
            metadata = {**base.metadata, **({"help": helps[name]} if name in helps else {})}
            setattr(cls, name, field(default=defaults.get(name, base.default), metadata=metadata))
            added[name] = hints[src]
        cls.__annotations__ = {**added, **cls.__dict__.get("__annotations__", {})}
        return cls

    return wrap


def settings_from(options: Any, settings_cls: type, names: dict[str, str]) -> Any:
    """The `settings_cls` instance whose fields are `options`' fields named by `names` (the inverse
    of `options_from`); constructing it checks them."""
    return settings_cls(**{src: getattr(options, name) for src, name in names.items()})


# the training recipe's fields a method's config takes (the rest keep TrainConfig's defaults)
RECIPE_OPTIONS = {n: n for n in ("epochs", "steps", "batch_size", "optimizer", "lr", "momentum", "weight_decay",
                                 "schedule", "mixed_precision")}


@dataclass
@options_from(TrainConfig, RECIPE_OPTIONS,
              defaults={"epochs": 5, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "constant"},
              helps={"epochs": "passes over the method's training data (fractions allowed); --steps replaces it",
                     "steps": "a budget in optimizer steps instead of epochs (small data sets need one)",
                     "lr": "learning rate"})
class TrainingOptions(MethodConfig):
    """The training recipe of a method that trains. Defaults: the paper's Adam, lr 1e-3, 5 epochs.

    Its recipe fields are `TrainConfig`'s (`RECIPE_OPTIONS`: one text and one check for `train` and
    `unlearn`), with the paper's defaults.
    """

    bn_mode: str = field(default="update", metadata={"help": (
        "update (BatchNorm running statistics follow the training data) or freeze (kept as they are)")})

    def validate(self) -> None:
        super().validate()
        if self.bn_mode not in ("update", "freeze"):
            raise InvalidInputError(f"bn_mode {self.bn_mode!r} is not 'update' or 'freeze'")
        # the training recipe validates the rest, with the same messages (optimizer, schedule,
        # epochs, steps, lr, batch size, weight decay, mixed precision)
        self.train_config()

    def train_config(self) -> TrainConfig:
        return TrainConfig(**{name: getattr(self, name) for name in RECIPE_OPTIONS}, seed=self.seed)

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


@dataclass(frozen=True)
class PruningChoice:
    """The pruning a method chose: its criterion, scope and amount (the automatic amount when
    `prune_forget_accuracy` set one)."""

    criterion: str
    scope: str
    amount: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class MethodRecord:
    """What a method reports of its run: the parameters it trained, its optimizer steps, its
    training history, the pruning it chose (methods that prune) and method-specific `details`
    (e.g. SSD's selected weights, SalUn's saliency mask size, retrain's recipe); and, not part of
    its JSON, what it produced beside the model: the pruning `masks` (mask mode), the
    `architecture` change (physical mode), the LoRA `adapter` snapshot, SalUn's `saliency_mask`,
    and the `config` it actually ran with when it had to change the caller's (e.g. PruneLoRA on a
    physically pruned attention).

    `to_dict()` is its JSON, as meta.json and bench cells hold it: `cost` {trainable_params,
    steps}, `history`, `pruning` (when set) and each detail under its own key.
    """

    trainable_params: int
    steps: int
    history: list[dict] = field(default_factory=list)
    pruning: PruningChoice | None = None
    details: dict[str, Any] = field(default_factory=dict)
    masks: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    architecture: dict | None = field(default=None, compare=False, repr=False)
    adapter: Any = field(default=None, compare=False, repr=False)  # an adapters.AdapterSnapshot
    saliency_mask: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    config: Any = field(default=None, compare=False, repr=False)  # a MethodConfig, when not the caller's

    RESERVED: ClassVar[tuple[str, ...]] = ("method", "cost", "sparsity", "history", "pruning")

    def __post_init__(self) -> None:
        clash = [k for k in self.details if k in self.RESERVED]
        if clash:
            raise ValueError(f"method record detail {clash[0]!r} would overwrite the record's own key")

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"cost": {"trainable_params": self.trainable_params, "steps": self.steps},
                               "history": self.history}
        if self.pruning is not None:
            out["pruning"] = self.pruning.to_dict()
        return out | self.details

    @classmethod
    def from_dict(cls, data: dict) -> MethodRecord:
        """The inverse of `to_dict`."""
        rest = dict(data)
        cost = rest.pop("cost")
        pruning = rest.pop("pruning", None)
        return cls(trainable_params=cost["trainable_params"], steps=cost["steps"], history=rest.pop("history", []),
                   pruning=PruningChoice(**pruning) if pruning is not None else None, details=rest)


@dataclass(frozen=True)
class RunCost:
    """What a run cost: wall time and peak memory (measured around the method by `unlearn`), the
    parameters it trained and its optimizer steps (the method's record)."""

    wall_time_s: float
    peak_memory_mb: float
    trainable_params: int
    steps: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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
                f"method {self.name!r} does not take option {unknown[0]!r}{did_you_mean(unknown[0], known)}; "
                f"its options: {', '.join(sorted(known))}"
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
        raise InvalidInputError(f"unknown method {name!r}{did_you_mean(name, _METHODS)}; "
                                f"accepted: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def list_methods() -> dict[str, str]:
    """Registered method names with their one-line summaries.

    Returns:
        `{name: summary}`, sorted by name.
    """
    return {name: m.summary for name, m in sorted(_METHODS.items())}


@dataclass
class UnlearnResult:
    """What `unlearn` returns: the plain merged model, the method's record, the run's cost and
    sparsity report, and the configs.

    `config` is the config the method ran with (`requested` is the caller's; they differ only
    when the method had to change it, e.g. PruneLoRA's LoRA targets on a physically pruned
    attention). The method's live outputs — `masks`, `architecture`, `adapter`, `saliency_mask`,
    `pruning` — are read from its record. `to_dict()` is the JSON meta.json and bench cells hold.
    """

    model: nn.Module
    record: MethodRecord
    method: str
    config: Any
    requested: Any
    cost: RunCost
    sparsity: dict

    @property
    def masks(self) -> dict | None:
        return self.record.masks

    @property
    def architecture(self) -> dict | None:
        return self.record.architecture

    @property
    def adapter(self) -> Any:
        return self.record.adapter

    @property
    def saliency_mask(self) -> dict | None:
        return self.record.saliency_mask

    @property
    def pruning(self) -> PruningChoice | None:
        return self.record.pruning

    def method_dict(self) -> dict:
        """`{"name", "config"}` as run, plus `requested` (the caller's config) when it differs."""
        out = {"name": self.method, "config": self.config.to_dict()}
        if self.requested.to_dict() != out["config"]:
            out["requested"] = self.requested.to_dict()
        return out

    def to_dict(self) -> dict:
        """The run's record as JSON: `method`, `cost`, `sparsity`, then the method's own part."""
        own = self.record.to_dict()
        own.pop("cost")
        return {"method": self.method_dict(), "cost": self.cost.to_dict(), "sparsity": self.sparsity, **own}


def apply_preset(method: str | None, preset: str | None, overrides: dict, config: Any = None) -> tuple[str, dict]:
    """The method and options of a call with `preset=`: the preset's options under the caller's
    `overrides` (no preset: `method`, or `"prunelora"`, and `overrides` as given).

    Args:
        method: the method asked for, or None.
        preset: a shipped recipe's name, or None.
        overrides: the caller's options.
        config: the caller's config object (a preset and a config object do not combine).

    Returns:
        `(method, options)`.

    Raises:
        InvalidInputError: an unknown preset, one for another method, or a preset with `config`.
    """
    if preset is None:
        return method or "prunelora", overrides
    if config is not None:
        raise InvalidInputError(f"preset={preset!r} and config= both set the options; give one "
                                "(options given as keywords override the preset's)")
    method, options = method_preset(preset, method)
    return method, {**options, **overrides}


def unlearn(model: nn.Module, splits: Splits | None = None, method: str | None = None, config: Any = None, *,
            retain=None, forget=None, test=None, forget_classes=None, device: str | None = None,
            progress: bool = True, original_meta: dict | None = None, model_factory=None, recipe=None,
            classifier: str | None = None, preset: str | None = None, **overrides) -> UnlearnResult:
    """Run an unlearning method on a copy of `model`; returns the plain merged model and a record.

    The caller's model is never changed. `retrain` rebuilds the model from a checkpoint's
    `original_meta`, or from your `model_factory` trained with `recipe`.

    Args:
        model: the trained classifier (any `nn.Module` whose classifier is an `nn.Linear`).
        splits: the data (see `build_splits`); or give your own datasets as `retain=` etc.
        method: a registered method name (`prunelora.list_methods()`); None: the `preset`'s
            method, else `"prunelora"`.
        config: the method's config dataclass; or pass its fields as keyword arguments.
        retain: your D_r, a map-style Dataset of `(image, label)` (instead of `splits`).
        forget: your D_f.
        test: your test set (optional).
        forget_classes: the forgotten classes, for class-wise forgetting (see
            `Splits.from_datasets`).
        device: `"cpu"`, `"cuda"`, ...; None picks a GPU when there is one.
        progress: show progress bars.
        original_meta: the original checkpoint's meta.json (`retrain` repeats its recipe).
        model_factory: for `retrain` of your own model: builds a fresh, untrained one. `f()` or
            the command line's `f(num_classes, in_channels, image_size)` (any of the three by name).
        recipe: for `retrain` of your own model: the `TrainConfig` it is trained with.
        classifier: the classifier module's name (e.g. `"fc"`); by default it is found (`head`,
            timm's `get_classifier()`, else the last `nn.Linear`). It must be an `nn.Linear` with as
            many outputs as the model scores classes; the one used is `.record.details["classifier"]`.
        preset: a shipped recipe by name, as `prunelora unlearn --preset` takes (e.g.
            `"prunelora-digits-resnet"`); `overrides` win over its options.
        **overrides: the method's options (fields of its config), e.g. `epochs=5, prune_amount=0.5`.

    Returns:
        An `UnlearnResult`: `.model`, a plain merged `nn.Module`; `.record`, the method's
        `MethodRecord` (steps, history, pruning choice, and its masks, architecture change, adapter,
        saliency mask); `.config`, the config as run (`.requested`, as asked); `.cost` (wall time,
        peak memory, trainable parameters, steps); `.sparsity`, the sparsity report.

    Raises:
        InvalidInputError: an unknown method, an option it does not take or a bad value, an empty
            forget set for a method that reads it, a model without a classifier (or whose classifier
            does not score the model's classes), a model that is not a float32 `nn.Module` with
            values, data it cannot score, retain and forget sets that share records, or a device
            this machine does not have.

    Example:
        ```python
        result = prunelora.unlearn(model, splits, "prunelora", epochs=30, prune_amount=0.5, seed=0)
        result = prunelora.unlearn(my_model, method="random-label", retain=retain, forget=forget)
        ```
    """
    check_model(model)  # a string, a meta-device or float64 model: one line, before any work
    dev = resolve_device(device)  # an unavailable device too
    width = None  # with the user's own datasets, the classes are what the model scores
    if splits is None and retain is not None:
        width = model_scores(model, retain, what_data="the retain set").shape[1]
    splits = resolve_splits(splits, retain, forget, test, forget_classes, num_classes=width)
    for part, label in (("retain", "the retain set"), ("forget", "the forget set")):
        if len(getattr(splits, part)):  # inputs the model cannot take fail here, not in the method
            check_scores(model, getattr(splits, part), splits.num_classes, what_data=label)

    method, overrides = apply_preset(method, preset, overrides, config)
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
    # one clear line for a model without a classifier, or whose classifier cannot be the head
    classifier_name, _ = check_classifier(model, classifier, splits.num_classes)
    ctx = MethodContext(device=dev, progress=progress, original_meta=original_meta, model_factory=model_factory,
                        recipe=recipe, classifier=classifier_name)
    work = copy.deepcopy(model).to(dev)
    if entry.capabilities.uses_lora:
        load_peft()  # peft is imported on first use: not inside the timed run (its import takes seconds)
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
    if entry.capabilities.uses_pruning and record.pruning is None:
        raise TypeError(f"method {method!r} prunes but its record names no pruning choice")
    warn_if_far_below(method, record.config or config, record.steps)  # a recipe run for its epochs on small data
    record = dataclasses.replace(record, details={**record.details, "classifier": classifier_name})
    return UnlearnResult(result, record, method, record.config or config, config,
                         RunCost(wall, peak.mb, record.trainable_params, record.steps),
                         sparsity_report(result, record.masks))
