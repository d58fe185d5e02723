"""A benchmark's configuration: dataset and model, the original's recipe, scenarios, seeds, methods.

Read from YAML (`BenchConfig.from_file`), checked whole before anything runs (`validate`), and
hashed into the identity that names its cache (`identity`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from prunelora.bench.executor_config import ExecutorSettings
from prunelora.bench.fields import (
    MAX_SEED,
    MAX_SKLEARN_SEED,
    check_forget_values,
    check_fraction,
    check_safe_name,
    check_seed,
    check_seed_list,
    check_text,
    is_int,
)
from prunelora.checkpoint import read_meta, run_id
from prunelora.data import ForgetSpec
from prunelora.errors import InvalidInputError, shown
from prunelora.evaluation.attacks import default_attacks, list_attacks
from prunelora.evaluation.relearn import RelearnConfig
from prunelora.factories import PREFIX, canonical
from prunelora.methods import get_method, list_methods
from prunelora.models import check_model_name
from prunelora.models.arguments import check_model_kwargs
from prunelora.models.registry import model_builder
from prunelora.presets import UNLEARN, preset_path, read_yaml_mapping
from prunelora.training import TrainConfig


@dataclass
class Scenario:
    name: str
    forget_class: Any = None
    forget_fraction: float | None = None
    forget_indices: str | None = None
    forget_seed: int = 0

    def spec(self) -> ForgetSpec:
        return ForgetSpec.from_options(vars(self), owner=f"scenario {self.name!r}")


METHOD_LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")  # part of a folder name under --out


def split_method_key(key: str, source: str = "config") -> tuple[str, str | None]:
    """A `methods` key -> (registered method name, variant label or None).

    `NAME` is a method; `NAME@LABEL` is a variant of it with its own options (e.g. `prunelora@1ep`),
    reported on its own row. `retrain` is the reference and has no variants.
    """
    if not isinstance(key, str):  # a YAML key such as 3 or true
        raise InvalidInputError(f"{source}: a methods key must be a method name, not {shown(key)}")
    name, at, label = key.partition("@")
    if not at:
        get_method(name)  # unknown: one line listing the accepted names
        return name, None
    if name not in list_methods():
        raise InvalidInputError(f"{source}: unknown method {shown(name)} in the variant {shown(key)}; accepted: "
                                f"{', '.join(list_methods())}")
    if not METHOD_LABEL.fullmatch(label):
        raise InvalidInputError(f"{source}: method variant {shown(key)} needs a label of letters, digits, '.', "
                                "'_' or '-' after the '@' (e.g. prunelora@1ep)")
    if name == "retrain":
        raise InvalidInputError(f"{source}: method variant {key!r} is refused: retrain is the reference, "
                                "it has no variants")
    return name, label


@dataclass(frozen=True)
class EvaluationSettings:
    """How every cell of a benchmark is judged: the membership attacks, the probe and relearning.

    `probe` is `{"layer", "seed"}` and `relearn` a `RelearnConfig.to_dict()`; None turns either off.
    """

    attacks: tuple[str, ...]
    mia_max_samples: int = 5000
    mia_seed: int = 0
    probe: dict | None = None
    relearn: dict | None = None

    def key(self) -> dict:
        """What names a cell besides its method options (a cell judged otherwise is another cell)."""
        return {"probe": self.probe, "relearn": self.relearn}

    def relearn_config(self) -> RelearnConfig | None:
        return RelearnConfig(**self.relearn) if self.relearn is not None else None

    def evaluate_options(self) -> dict:
        """`evaluate()`'s keyword arguments for these settings (the relearning target aside)."""
        return {"attacks": self.attacks, "mia_seed": self.mia_seed, "mia_max_samples": self.mia_max_samples,
                "probe": self.probe is not None, "probe_layer": (self.probe or {}).get("layer"),
                "probe_seed": (self.probe or {}).get("seed", 0), "relearn": self.relearn_config()}


@dataclass(frozen=True)
class MethodPlan:
    """One `methods` entry: its key (`NAME` or `NAME@LABEL`, the row's method), the registered
    method, its options (preset applied) and the scenarios it runs in."""

    key: str
    name: str
    options: dict
    scenarios: tuple[str, ...]


@dataclass(frozen=True)
class BenchPlan:
    """A `BenchConfig` parsed once into what the runner uses: typed, checked, defaults filled."""

    recipe: TrainConfig
    subset: dict | None
    scenarios: tuple[Scenario, ...]
    methods: tuple[MethodPlan, ...]
    retrain: MethodPlan
    seeds: tuple[int, ...]
    retrain_seeds: tuple[int, ...]
    evaluation: EvaluationSettings
    noise_floor: bool = True

    @property
    def floor_seeds(self) -> tuple[int, ...]:
        """Every retrain seed run: the references, plus one more retrain for the noise floor alone
        when there is a single reference seed and `noise_floor` is on (the floor needs two retrains)."""
        seeds = self.retrain_seeds
        if len(seeds) > 1 or not self.noise_floor:
            return seeds
        extra = max(seeds) + 1  # the next seed, or the one before where the next leaves [0, 2^63)
        return (*seeds, extra if extra < 2**63 else min(seeds) - 1)

    @property
    def noise_floor_seed(self) -> int | None:
        """The seed of the retrain run for the noise floor alone (None when none is)."""
        extra = set(self.floor_seeds) - set(self.retrain_seeds)
        return extra.pop() if extra else None


FACTORY_KEYS = {"model_factory": "model", "dataset_factory": "dataset"}  # the same as model/dataset: factory:...
# what an `original:` checkpoint brings (its meta.json), so that a config cannot contradict it
ORIGINAL_BRINGS = ("dataset", "model", "model_kwargs", "train", "val_fraction", "train_subset")


def _factory_at(ref: Any, base: Path, source: str, key: str) -> str:
    """`factory:/abs/path.py:FUNC` for a config's `FILE.py:FUNC` (relative to `base`, the config's folder)."""
    if not isinstance(ref, str):
        raise InvalidInputError(f"{source}: {key} {ref!r} must be FILE.py:FUNCTION")
    text = ref[len(PREFIX):] if ref.startswith(PREFIX) else ref
    path, sep, func = text.rpartition(":")
    if sep and path and not Path(path).is_absolute():
        path = str(base / path)
    try:
        return canonical(f"{path}{sep}{func}")
    except InvalidInputError as exc:
        raise InvalidInputError(f"{source}: {key}: {exc}") from None


def resolve_references(data: dict, source: str, base: Path) -> dict:
    """A config mapping with its references made absolute: `model_factory:` / `dataset_factory:`
    folded into `model` / `dataset` as `factory:/abs/path.py:FUNC`, and `original:` read (its
    meta.json fills the dataset, model, recipe and validation split)."""
    for alias, key in FACTORY_KEYS.items():
        if alias in data:
            if key in data:
                raise InvalidInputError(f"{source}: {key} and {alias} both name the {key}; give one")
            ref = data.pop(alias)
            data[key] = PREFIX + ref if isinstance(ref, str) and not ref.startswith(PREFIX) else ref
    for key in ("model", "dataset"):
        if isinstance(data.get(key), str) and data[key].startswith(PREFIX):
            data[key] = _factory_at(data[key], base, source, key)
    if data.get("original") is None:
        return data
    if not isinstance(data["original"], str):
        raise InvalidInputError(f"{source}: original {data['original']!r} must be a checkpoint directory")
    clash = [key for key in ORIGINAL_BRINGS if key in data]
    if clash:
        raise InvalidInputError(f"{source}: original: {data['original']} brings its {clash[0]} (from its meta.json); "
                                f"remove {clash[0]}")
    path = Path(data["original"])
    path = (path if path.is_absolute() else base / path).resolve()
    meta = read_meta(path)
    if meta.kind != "original" or meta.forget:
        raise InvalidInputError(f"{source}: original: {str(path)!r} is a {meta.kind} checkpoint; give the original "
                                "the methods start from (written by prunelora train or prunelora import)")
    ds = meta.dataset
    if ds is None or not ds.name or not meta.recipe:
        raise InvalidInputError(f"{source}: original: {str(path)!r} records no dataset or recipe in its meta.json")
    subset = ds.train_subset
    data.update(original=str(path), dataset=ds.name, model=meta.model.name, model_kwargs=dict(meta.model.kwargs),
                train=dict(meta.recipe), val_fraction=ds.val_fraction,
                train_subset={"size": subset["size"], "seed": subset.get("seed", 0)} if subset else None)
    if data.get("data_dir") is None and ds.data_dir:
        data["data_dir"] = ds.data_dir
    return data


@dataclass
class BenchConfig:
    """A benchmark: one dataset and model, an original recipe, scenarios, seeds and methods.

    `train_subset: {size: N, seed: S}` trains the original (and builds every split) on N training
    images, stratified by class, chosen by S; null uses the whole train set. A `methods` key is a
    method name or `NAME@LABEL`, a variant of that method with other options (see `split_method_key`).
    `probe: {enabled, layer, seed}` and `relearn: {enabled, <RelearnConfig fields>}` set the
    representation probe and the relearning time of every cell (both on by default).
    `noise_floor: false` runs no retrain for the noise floor alone (with one retrain seed the
    report then says the floor was not measured; with two or more it is measured between them).
    `executor: {kind, workers, threads, cpus_per_task, gpus_per_task, address}` says where the
    cells run (`prunelora.bench.executor_config`; by default one at a time in this process); it
    does not enter the identity, so a run resumes under another executor.

    Your own model and data: `model: factory:FILE.py:FUNC` (or `model_factory: FILE.py:FUNC`) and
    `dataset: factory:FILE.py:FUNC` (or `dataset_factory:`), paths relative to the config file.
    A config never runs code on its own: the same factory must be named on the command line
    (`--model-factory`, `--dataset-factory`; see `require_trusted`). `original: DIR` benchmarks
    an existing original checkpoint (e.g. one `prunelora import` wrote) instead of training one:
    its meta.json then gives the dataset, model, recipe and validation split.
    """

    name: str = "bench"
    dataset: str = "digits"
    data_dir: str | None = None
    model: str = "resnet8"
    model_kwargs: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    val_fraction: float = 0.1
    train_subset: dict | None = None
    scenarios: list = field(default_factory=lambda: [{"name": "class3", "forget_class": 3}])
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    retrain_seeds: list | None = None
    methods: dict = field(default_factory=lambda: {"finetune": {}, "prunelora": {}})
    mia: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)
    relearn: dict = field(default_factory=dict)
    executor: dict | None = None
    noise_floor: bool = True
    note: str = ""
    original: str | None = None

    @classmethod
    def from_dict(cls, data: dict, source: str = "config", base: str | Path | None = None) -> BenchConfig:
        """A checked config from a mapping; `base` is the folder relative paths (factories,
        `original`) start from (default: the working directory)."""
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known and key not in FACTORY_KEYS:
                raise InvalidInputError(f"{source}: unknown key {shown(key)}; accepted: "
                                        f"{', '.join(sorted(known | set(FACTORY_KEYS)))}")
        config = cls(**resolve_references(dict(data), source, Path.cwd() if base is None else Path(base)))
        config.validate(source)
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> BenchConfig:
        return cls.from_dict(read_yaml_mapping(path, "bench config"), str(path), Path(path).resolve().parent)

    def factories(self) -> dict[str, str]:
        """The user factories this benchmark runs, by the flag that trusts each:
        `{"--model-factory": "factory:/abs/f.py:FUNC", ...}` (empty for registry models and data)."""
        named = {"--model-factory": self.model, "--dataset-factory": self.dataset}
        return {flag: name for flag, name in named.items() if isinstance(name, str) and name.startswith(PREFIX)}

    def require_trusted(self, model_factory: str | None, dataset_factory: str | None,
                        source: str = "config") -> None:
        """The trust rule: a factory of this config runs only when the command line names the same
        file and function (`--model-factory`, `--dataset-factory`); a factory named on the command
        line must be this config's. Each refusal is one line naming the flag to give.

        Raises:
            InvalidInputError: a factory of the config not named on the command line, or one named
                there that the config does not use.
        """
        needed = self.factories()
        for flag, given, what in (("--model-factory", model_factory, "model"),
                                  ("--dataset-factory", dataset_factory, "dataset")):
            want = needed.get(flag)
            if given is None:
                if want is not None:
                    shown = want[len(PREFIX):]
                    raise InvalidInputError(f"{source}: the {what} is your factory {shown}; pass {flag} {shown} to "
                                            "run that file (a bench config never runs code on its own)")
                continue
            if canonical(given) != want:
                raise InvalidInputError(f"{flag} {given} is not the {what} of {source} "
                                        f"({getattr(self, what)}); name the same factory in the config "
                                        f"({what}_factory: FILE.py:FUNC) and on the command line")

    def validate(self, source: str = "config") -> None:
        self.check_fields(source)
        for key, kind, what in (("train", dict, "a mapping of recipe fields"), ("model_kwargs", dict, "a mapping"),
                                ("scenarios", list, "a list of scenarios"), ("seeds", list, "a list of integers"),
                                ("methods", dict, "a mapping of method names to options"), ("mia", dict, "a mapping"),
                                ("probe", dict, "a mapping"), ("relearn", dict, "a mapping")):
            if not isinstance(getattr(self, key), kind):
                raise InvalidInputError(f"{source}: {key} must be {what}, not {shown(getattr(self, key))}")
        for key in ("seeds", "retrain_seeds"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, list) or not all(isinstance(s, int) for s in value)):
                raise InvalidInputError(f"{source}: {key} must be a list of integers, not {shown(value)}")
        if not isinstance(self.noise_floor, bool):
            raise InvalidInputError(f"{source}: noise_floor must be true or false, not {shown(self.noise_floor)}")
        if any(not isinstance(s, dict) for s in self.scenarios):
            raise InvalidInputError(f"{source}: every scenario must be a mapping (name, forget_class, ...)")
        if any(opts is not None and not isinstance(opts, dict) for opts in self.methods.values()):
            raise InvalidInputError(f"{source}: the options of each method must be a mapping")
        self.subset(source)
        try:
            TrainConfig.from_dict(self.train)  # raises on bad values
        except TypeError as exc:
            raise InvalidInputError(f"{source}: a value in train has the wrong type ({exc})") from None
        unknown = set(self.train) - {f.name for f in fields(TrainConfig)}
        if unknown:
            raise InvalidInputError(f"{source}: unknown key {shown(sorted(unknown, key=str)[0])} in train")
        check_model_name(self.model)  # the registry decides, as for `prunelora train --model`
        # only the arguments the model declares, never one choosing weights or a file (before --out is made)
        check_model_kwargs(self.model, self.model_kwargs, model_builder(self.model), label=f"{source}: model_kwargs")
        if not self.seeds:
            raise InvalidInputError(f"{source}: seeds is empty")
        names = set()
        for s in self.scenarios:
            scenario = self.scenario(s, source)
            if scenario.name in names:
                raise InvalidInputError(f"{source}: scenario {scenario.name!r} appears twice")
            names.add(scenario.name)
        for method in self.methods:
            split_method_key(method, source)
            self.method_options(method)
            self.method_scenarios(method, source)
        unknown = set(self.mia) - {"attacks", "max_samples", "seed"}
        if unknown:
            raise InvalidInputError(f"{source}: unknown key {shown(sorted(unknown, key=str)[0])} in mia")
        attacks = self.mia.get("attacks", list(default_attacks()))
        if not isinstance(attacks, list):
            raise InvalidInputError(f"{source}: mia.attacks must be a list, not {shown(attacks)}")
        bad = [a for a in attacks if not isinstance(a, str) or a not in default_attacks()]
        if bad:
            why = ("needs shadow models, which the bench does not train" if bad[0] in list_attacks()
                   else "is unknown")
            raise InvalidInputError(f"{source}: MIA attack {shown(bad[0])} {why}; accepted: "
                                    f"{', '.join(default_attacks())}")
        max_samples = self.mia.get("max_samples", 5000)
        if not is_int(max_samples) or max_samples < 4:
            raise InvalidInputError(f"{source}: mia.max_samples {shown(max_samples)} must be an integer >= 4")
        check_seed(source, "mia.seed", self.mia.get("seed", 0))
        self.evaluation(source)
        self.executor_settings(source)

    def check_fields(self, source: str = "config") -> None:
        """The top-level fields' types and ranges, and the names and seeds that become folders and
        random states (`prunelora.bench.fields`); the sections are checked by `validate`."""
        check_text(source, "name", self.name)
        check_text(source, "dataset", self.dataset, empty=False)
        check_text(source, "data_dir", self.data_dir, optional=True, empty=False)
        check_text(source, "model", self.model, empty=False)
        check_text(source, "note", self.note)
        check_fraction(source, "val_fraction", self.val_fraction)
        check_seed_list(source, "seeds", self.seeds)
        check_seed_list(source, "retrain_seeds", self.retrain_seeds, optional=True)
        if not isinstance(self.scenarios, list) or not self.scenarios:
            raise InvalidInputError(f"{source}: scenarios must be a non-empty list of scenarios "
                                    f"({{name: ..., forget_class: ...}}), not {shown(self.scenarios)}")
        for i, scenario in enumerate(self.scenarios):
            if isinstance(scenario, dict) and "name" in scenario:
                check_safe_name(source, f"scenarios[{i}].name", scenario["name"])
        if isinstance(self.methods, dict):
            for key in self.methods:
                check_text(source, "a methods key", key, empty=False)
        if isinstance(self.train, dict) and "seed" in self.train:
            check_seed(source, "train.seed", self.train["seed"])
        for key in ("mia", "probe", "relearn"):
            section = getattr(self, key)
            if isinstance(section, dict) and "seed" in section:
                # the probe's seed is scikit-learn's random_state too, which takes [0, 2^32)
                check_seed(source, f"{key}.seed", section["seed"], MAX_SKLEARN_SEED if key == "probe" else MAX_SEED)

    def executor_settings(self, source: str = "config") -> ExecutorSettings:
        """The `executor:` section, checked (defaults: one local worker)."""
        return ExecutorSettings.from_dict(self.executor, source)

    def evaluation(self, source: str = "config") -> dict:
        """The probe and relearning settings, checked and completed: `{"probe": {...} | None,
        "relearn": {...} | None}` (None: turned off)."""
        unknown = set(self.probe) - {"enabled", "layer", "seed"}
        if unknown:
            raise InvalidInputError(f"{source}: unknown key {shown(sorted(unknown, key=str)[0])} in probe; "
                                    "accepted: enabled, layer, seed")
        probe = {"layer": self.probe.get("layer"), "seed": self.probe.get("seed", 0)}
        if self.probe.get("enabled", True) is not True and self.probe.get("enabled") is not False:
            raise InvalidInputError(f"{source}: probe.enabled {shown(self.probe['enabled'])} must be true or false")
        if probe["layer"] is not None and not isinstance(probe["layer"], str):
            raise InvalidInputError(f"{source}: probe.layer {shown(probe['layer'])} must be a module name "
                                    "(e.g. layers.1)")
        check_seed(source, "probe.seed", probe["seed"], MAX_SKLEARN_SEED)
        relearn = dict(self.relearn)
        enabled = relearn.pop("enabled", True)
        if not isinstance(enabled, bool):
            raise InvalidInputError(f"{source}: relearn.enabled {shown(enabled)} must be true or false")
        relearn = RelearnConfig.from_dict(relearn, f"{source}: relearn").to_dict()
        return {"probe": probe if self.probe.get("enabled", True) else None, "relearn": relearn if enabled else None}

    @staticmethod
    def scenario(data: dict, source: str = "config") -> Scenario:
        known = {f.name for f in fields(Scenario)}
        bad = set(data) - known
        if bad:
            raise InvalidInputError(f"{source}: unknown key {shown(sorted(bad, key=str)[0])} in a scenario")
        if "name" not in data:
            raise InvalidInputError(f"{source}: every scenario needs a name")
        check_safe_name(source, "scenario name", data["name"])  # a folder under --out
        owner = f"scenario {data['name']!r}"
        check_seed(source, f"{owner}: forget_seed", data.get("forget_seed", 0))
        check_forget_values(source, owner, data)
        scenario = Scenario(**data)
        scenario.spec()
        return scenario

    def subset(self, source: str = "config") -> dict | None:
        """`train_subset` checked and completed (`{"size": N, "seed": S}`), or None."""
        if self.train_subset is None:
            return None
        value = self.train_subset
        if not isinstance(value, dict):
            raise InvalidInputError(f"{source}: train_subset must be a mapping {{size: N, seed: S}} or null, "
                                    f"not {shown(value)}")
        unknown = set(value) - {"size", "seed"}
        if unknown:
            raise InvalidInputError(f"{source}: unknown key {shown(sorted(unknown, key=str)[0])} in train_subset; "
                                    "accepted: seed, size")
        size, seed = value.get("size"), value.get("seed", 0)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidInputError(f"{source}: train_subset.size {shown(size)} must be a positive integer "
                                    "(the number of training images)")
        check_seed(source, "train_subset.seed", seed)
        return {"size": size, "seed": seed}

    def method_options(self, method: str) -> dict:
        """A method's options (`method` is a key of `methods`, maybe `NAME@LABEL`): its preset's
        (if `preset: NAME`) overridden by the config's own."""
        name, label = split_method_key(method)
        entry = get_method(name)
        options = dict(self.methods.get(method) or {})
        options.pop("scenarios", None)  # where it runs, not how (see `method_scenarios`)
        preset = options.pop("preset", None)
        if preset is not None:
            loaded = read_yaml_mapping(preset_path(preset, UNLEARN), "preset")
            if loaded.get("method", name) != name:
                raise InvalidInputError(f"preset {shown(preset)} is for method {shown(loaded['method'])}, not {name!r}")
            options = {k: v for k, v in loaded.items() if k != "method"} | options
        try:
            entry.make_config(**options)  # validates names and values
        except InvalidInputError as exc:
            raise InvalidInputError(f"{method}: {exc}" if label else str(exc)) from None
        return options

    def method_scenarios(self, method: str, source: str = "config") -> list[str]:
        """The scenarios a method runs in: all, or its own `scenarios: [names]` (e.g. a budget
        sweep run only where it tells something)."""
        names = [s["name"] for s in self.scenarios]
        chosen = (self.methods.get(method) or {}).get("scenarios")
        if chosen is None:
            return names
        if method == "retrain":
            raise InvalidInputError(f"{source}: retrain runs in every scenario (it is the reference); "
                                    "remove its scenarios")
        if not isinstance(chosen, list) or not chosen or any(c not in names for c in chosen):
            raise InvalidInputError(f"{source}: {method}: scenarios {shown(chosen)} must be a non-empty list of "
                                    f"this config's scenarios ({', '.join(names)})")
        return chosen

    def settings(self, source: str = "config") -> EvaluationSettings:
        """The evaluation settings, typed (see `evaluation` for the probe and relearning parts)."""
        judged = self.evaluation(source)
        return EvaluationSettings(attacks=tuple(self.mia.get("attacks", default_attacks())),
                                  mia_max_samples=self.mia.get("max_samples", 5000), mia_seed=self.mia.get("seed", 0),
                                  probe=judged["probe"], relearn=judged["relearn"])

    def plan(self) -> BenchPlan:
        """The configuration parsed once into typed parts (it was validated when read)."""
        methods = tuple(MethodPlan(key, split_method_key(key)[0], self.method_options(key),
                                   tuple(self.method_scenarios(key)))
                        for key in self.methods if split_method_key(key)[0] != "retrain")
        names = tuple(s["name"] for s in self.scenarios)
        retrain = MethodPlan("retrain", "retrain", self.method_options("retrain") if "retrain" in self.methods else {},
                             names)
        return BenchPlan(recipe=TrainConfig.from_dict(self.train), subset=self.subset(),
                         scenarios=tuple(self.scenario(s) for s in self.scenarios), methods=methods, retrain=retrain,
                         seeds=tuple(self.seeds), retrain_seeds=tuple(self.retrain_seeds or self.seeds),
                         evaluation=self.settings(), noise_floor=self.noise_floor)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def identity(self) -> str:
        """What the cached original and the cells depend on (not the seeds or the method list)."""
        payload = {k: getattr(self, k) for k in ("dataset", "model", "model_kwargs", "train", "val_fraction",
                                                  "scenarios", "mia")}
        if "epochs" not in self.train and "steps" not in self.train:
            # the budget then comes from TrainConfig's default, which changed once (10 -> 30 epochs):
            # an original cached under the old default must not be taken for one trained under this
            payload["train_default_epochs"] = TrainConfig.epochs
        subset = self.subset()
        if subset is not None:  # only when set: benches without one keep their identity
            payload["train_subset"] = subset
        if self.original is not None:  # a given original: which one (its run id names its weights)
            payload["original"] = {"path": self.original, "run_id": read_meta(self.original).run_id}
        return run_id(payload)
