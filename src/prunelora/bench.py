"""`prunelora bench`: original -> retrain and every chosen method, over seeds and scenarios.

The orchestrator: it uses methods and evaluation (which never import each other).

Layout of the output directory (everything is written atomically, so Ctrl-C then the same
command resumes where it stopped):

    bench.json                   the configuration and its identity hash
    cache/original-<hash>/       the original model (a checkpoint), reused while its recipe holds
    cache/<scenario>-retrain-seed<k>/   retrain checkpoints (the references)
    cells/<scenario>/<method key>-<options hash>/seed<k>.json   one finished (method, seed) cell
    results.csv, results.json, report.md, plots/*.png
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from prunelora.api import apply_train_subset, run_id, train
from prunelora.checkpoint import (
    atomic_write_text,
    check_writable,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)
from prunelora.data import ForgetSpec, build_splits, check_data_identity, load_dataset
from prunelora.errors import InvalidInputError
from prunelora.evaluation.attacks import default_attacks, list_attacks
from prunelora.evaluation.evaluate import evaluate
from prunelora.evaluation.relearn import relearn_ratio
from prunelora.training import TrainConfig
from prunelora.training.distributed import barrier, broadcast_from_main, is_main_process


@dataclass
class Scenario:
    name: str
    forget_class: Any = None
    forget_fraction: float | None = None
    forget_indices: str | None = None
    forget_seed: int = 0

    def spec(self) -> ForgetSpec:
        given = [v for v in (self.forget_class, self.forget_fraction, self.forget_indices) if v is not None]
        if len(given) != 1:
            raise InvalidInputError(
                f"scenario {self.name!r} needs exactly one of forget_class, forget_fraction, forget_indices"
            )
        if self.forget_class is not None:
            value = self.forget_class
            return ForgetSpec.from_classes(",".join(map(str, value)) if isinstance(value, list) else str(value))
        if self.forget_fraction is not None:
            return ForgetSpec(kind="fraction", fraction=float(self.forget_fraction), seed=self.forget_seed)
        return ForgetSpec.from_index_file(self.forget_indices)


METHOD_LABEL = re.compile(r"[A-Za-z0-9._-]+")


def split_method_key(key: str, source: str = "config") -> tuple[str, str | None]:
    """A `methods` key -> (registered method name, variant label or None).

    `NAME` is a method; `NAME@LABEL` is a variant of it with its own options (e.g. `prunelora@1ep`),
    reported on its own row. `retrain` is the reference and has no variants.
    """
    from prunelora.methods import get_method, list_methods

    name, at, label = str(key).partition("@")
    if not at:
        get_method(name)  # unknown: one line listing the accepted names
        return name, None
    if name not in list_methods():
        raise InvalidInputError(f"{source}: unknown method {name!r} in the variant {key!r}; accepted: "
                                f"{', '.join(list_methods())}")
    if not METHOD_LABEL.fullmatch(label):
        raise InvalidInputError(f"{source}: method variant {key!r} needs a label of letters, digits, '.', '_' "
                                "or '-' after the '@' (e.g. prunelora@1ep)")
    if name == "retrain":
        raise InvalidInputError(f"{source}: method variant {key!r} is refused: retrain is the reference, "
                                "it has no variants")
    return name, label


@dataclass
class BenchConfig:
    """A benchmark: one dataset and model, an original recipe, scenarios, seeds and methods.

    `train_subset: {size: N, seed: S}` trains the original (and builds every split) on N training
    images, stratified by class, chosen by S; null uses the whole train set. A `methods` key is a
    method name or `NAME@LABEL`, a variant of that method with other options (see `split_method_key`).
    `probe: {enabled, layer, seed}` and `relearn: {enabled, <RelearnConfig fields>}` set the
    representation probe and the relearning time of every cell (both on by default).
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
    note: str = ""

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> BenchConfig:
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise InvalidInputError(f"{source}: unknown key {key!r}; accepted: {', '.join(sorted(known))}")
        config = cls(**data)
        config.validate(source)
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> BenchConfig:
        from prunelora.cli import read_yaml_mapping

        return cls.from_dict(read_yaml_mapping(path, "bench config"), str(path))

    def validate(self, source: str = "config") -> None:
        from prunelora.models import list_models

        for key, kind, what in (("train", dict, "a mapping of recipe fields"), ("model_kwargs", dict, "a mapping"),
                                ("scenarios", list, "a list of scenarios"), ("seeds", list, "a list of integers"),
                                ("methods", dict, "a mapping of method names to options"), ("mia", dict, "a mapping"),
                                ("probe", dict, "a mapping"), ("relearn", dict, "a mapping")):
            if not isinstance(getattr(self, key), kind):
                raise InvalidInputError(f"{source}: {key} must be {what}, not {getattr(self, key)!r}")
        for key in ("seeds", "retrain_seeds"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, list) or not all(isinstance(s, int) for s in value)):
                raise InvalidInputError(f"{source}: {key} must be a list of integers, not {value!r}")
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
            raise InvalidInputError(f"{source}: unknown key {sorted(unknown)[0]!r} in train")
        if not self.model.startswith("torchvision:") and self.model not in list_models():
            raise InvalidInputError(f"{source}: unknown model {self.model!r}")
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
            raise InvalidInputError(f"{source}: unknown key {sorted(unknown)[0]!r} in mia")
        attacks = self.mia.get("attacks", list(default_attacks()))
        if not isinstance(attacks, list):
            raise InvalidInputError(f"{source}: mia.attacks must be a list, not {attacks!r}")
        bad = [a for a in attacks if a not in list(list_attacks())]
        if bad:
            raise InvalidInputError(f"{source}: unknown MIA attack {bad[0]!r}; accepted: {', '.join(list_attacks())}")
        max_samples = self.mia.get("max_samples", 5000)
        if not isinstance(max_samples, int) or max_samples < 4:
            raise InvalidInputError(f"{source}: mia.max_samples {max_samples!r} must be an integer >= 4")
        self.evaluation(source)

    def evaluation(self, source: str = "config") -> dict:
        """The probe and relearning settings, checked and completed: `{"probe": {...} | None,
        "relearn": {...} | None}` (None: turned off)."""
        from prunelora.evaluation.relearn import RelearnConfig

        unknown = set(self.probe) - {"enabled", "layer", "seed"}
        if unknown:
            raise InvalidInputError(f"{source}: unknown key {sorted(unknown, key=str)[0]!r} in probe; "
                                    "accepted: enabled, layer, seed")
        probe = {"layer": self.probe.get("layer"), "seed": self.probe.get("seed", 0)}
        if self.probe.get("enabled", True) is not True and self.probe.get("enabled") is not False:
            raise InvalidInputError(f"{source}: probe.enabled {self.probe['enabled']!r} must be true or false")
        if probe["layer"] is not None and not isinstance(probe["layer"], str):
            raise InvalidInputError(f"{source}: probe.layer {probe['layer']!r} must be a module name (e.g. layers.1)")
        if isinstance(probe["seed"], bool) or not isinstance(probe["seed"], int):
            raise InvalidInputError(f"{source}: probe.seed {probe['seed']!r} must be an integer")
        relearn = dict(self.relearn)
        enabled = relearn.pop("enabled", True)
        if not isinstance(enabled, bool):
            raise InvalidInputError(f"{source}: relearn.enabled {enabled!r} must be true or false")
        relearn = RelearnConfig.from_dict(relearn, f"{source}: relearn").to_dict()
        return {"probe": probe if self.probe.get("enabled", True) else None, "relearn": relearn if enabled else None}

    @staticmethod
    def scenario(data: dict, source: str = "config") -> Scenario:
        known = {f.name for f in fields(Scenario)}
        bad = set(data) - known
        if bad:
            raise InvalidInputError(f"{source}: unknown key {sorted(bad)[0]!r} in a scenario")
        if "name" not in data:
            raise InvalidInputError(f"{source}: every scenario needs a name")
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
                                    f"not {value!r}")
        unknown = set(value) - {"size", "seed"}
        if unknown:
            raise InvalidInputError(f"{source}: unknown key {sorted(unknown, key=str)[0]!r} in train_subset; "
                                    "accepted: seed, size")
        size, seed = value.get("size"), value.get("seed", 0)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidInputError(f"{source}: train_subset.size {size!r} must be a positive integer "
                                    "(the number of training images)")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidInputError(f"{source}: train_subset.seed {seed!r} must be an integer")
        return {"size": size, "seed": seed}

    def method_options(self, method: str) -> dict:
        """A method's options (`method` is a key of `methods`, maybe `NAME@LABEL`): its preset's
        (if `preset: NAME`) overridden by the config's own."""
        from prunelora.cli import preset_path
        from prunelora.methods import get_method

        name, label = split_method_key(method)
        entry = get_method(name)
        options = dict(self.methods.get(method) or {})
        options.pop("scenarios", None)  # where it runs, not how (see `method_scenarios`)
        preset = options.pop("preset", None)
        if preset is not None:
            loaded = yaml.safe_load(preset_path(preset).read_text())
            if loaded.get("method", name) != name:
                raise InvalidInputError(f"preset {preset!r} is for method {loaded['method']!r}, not {name!r}")
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
            raise InvalidInputError(f"{source}: {method}: scenarios {chosen!r} must be a non-empty list of "
                                    f"this config's scenarios ({', '.join(names)})")
        return chosen

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def identity(self) -> str:
        """What the cached original and the cells depend on (not the seeds or the method list)."""
        payload = {k: getattr(self, k) for k in ("dataset", "model", "model_kwargs", "train", "val_fraction",
                                                  "scenarios", "mia")}
        subset = self.subset()
        if subset is not None:  # only when set: benches without one keep their identity
            payload["train_subset"] = subset
        return run_id(payload)


def _silent(*args, **kwargs) -> None:
    pass


def _prepare_bench_dir(out: Path, ident: str, overwrite: bool) -> str | None:
    """Create `out`, clearing a different configuration's results when `overwrite`; else the problem."""
    stamp = _load_json(out / "bench.json") if (out / "bench.json").is_file() else None
    if out.exists() and any(out.iterdir()) and (stamp is None or stamp.get("identity") != ident):
        if not overwrite:
            return (f"output directory {str(out)!r} holds another run (a different configuration or not a bench); "
                    "choose another --out or pass --overwrite")
        for name in ("cache", "cells", "plots"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("bench.json", "results.csv", "results.json", "report.md"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return None


def _cell_key(method: str, options: dict, evaluation: dict) -> str:
    """The cell's folder: the method and a hash of its options and of the probe and relearning
    settings (a cell evaluated otherwise is another cell)."""
    return f"{method}-{run_id({'options': options, 'evaluation': evaluation})[:8]}"


def _load_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def run_bench(config: BenchConfig, out: str | Path, *, overwrite: bool = False, device: str | None = None,
              progress: bool = True, log=print, counts: dict | None = None) -> tuple[list[dict], dict]:
    """Run (or resume) the benchmark into `out`.

    Returns one row per (scenario, method, seed) and the cells' payloads keyed the same way.
    `counts["run"]`, when given, is incremented for every cell run now (not reused).
    """
    out = check_writable(out, "--out")
    ident = config.identity()
    recipe = TrainConfig.from_dict(config.train)
    subset = config.subset()
    # loaded first, so that a train subset the dataset cannot give writes nothing
    bundle = apply_train_subset(load_dataset(config.dataset, data_dir=config.data_dir, augment=recipe.augment),
                                subset)
    layer = (config.evaluation()["probe"] or {}).get("layer")
    if layer is not None:  # a module the model lacks fails before anything is trained or written
        from prunelora.models import create_model
        from prunelora.models.classifier import find_module

        find_module(create_model(config.model, bundle.num_classes, bundle.in_channels, bundle.image_size,
                                 **config.model_kwargs), layer)
    # every scenario's splits before any work (a forget class outside the dataset, or one that
    # would leave nothing to retain, is refused before the original is trained or anything written)
    for scenario_data in config.scenarios:  # checked here; the original's recorded split is used below
        build_splits(bundle, config.scenario(scenario_data).spec(), val_fraction=config.val_fraction, seed=0)
    _check_lora_ranks(config, bundle)
    # The main process decides and prepares the directory; every process learns the verdict.
    problem = broadcast_from_main(_prepare_bench_dir(out, ident, overwrite) if is_main_process() else None)
    if problem:
        raise InvalidInputError(problem)
    if not is_main_process():
        log = _silent
    atomic_write_text(out / "bench.json", json.dumps({"identity": ident, "config": config.to_dict()}, indent=2))

    original_dir = out / "cache" / f"original-{ident}"
    if (original_dir / "meta.json").is_file():
        original, original_meta = load_checkpoint(original_dir)
        check_data_identity(bundle, original_meta["dataset"], str(original_dir))  # the data may have changed since
        log(f"original: reusing {original_dir}")
    else:
        log(f"original: training {config.model} on {config.dataset}")
        result = train(config.dataset, config.model, recipe, model_kwargs=config.model_kwargs,
                       data_dir=config.data_dir, val_fraction=config.val_fraction, device=device,
                       progress=progress, train_subset=subset["size"] if subset else None,
                       subset_seed=subset["seed"] if subset else 0)
        save_checkpoint(result.model, original_dir, result.meta)
        original, original_meta = load_checkpoint(original_dir)
    judge = {"attacks": tuple(config.mia.get("attacks", default_attacks())), "mia_max_samples": config.mia.get("max_samples", 5000),
           "mia_seed": config.mia.get("seed", 0), "settings": config.evaluation()}
    retrain_seeds = config.retrain_seeds or config.seeds
    # The noise floor needs two retrains: with one reference seed, one more retrain is run for it alone.
    floor_seeds = retrain_seeds if len(retrain_seeds) > 1 else [*retrain_seeds, max(retrain_seeds) + 1]
    rows: list[dict] = []
    payloads: dict[tuple[str, str, int], dict] = {}
    for scenario_data in config.scenarios:
        scenario = config.scenario(scenario_data)
        spec = scenario.spec()
        splits = build_splits(bundle, spec, val_fraction=config.val_fraction, seed=0,
                              val_indices=original_meta["dataset"].get("val_indices"))
        judge["relearn_target"] = _relearn_target(original, splits, judge["settings"]["relearn"], device)
        references: dict[int, dict] = {}
        for seed in floor_seeds:
            payload = _run_cell(out, scenario.name, "retrain", config.method_options("retrain")
                                if "retrain" in config.methods else {}, seed, original, original_meta, splits, None, judge,
                                device, progress, log, cache_model=True, counts=counts)
            payloads[(scenario.name, "retrain", seed)] = payload
            row = payload["row"]
            references[seed] = row
            if seed in retrain_seeds:  # a retrain run for the noise floor alone shows only there
                rows.append(row)
        retrain_wall = sum(references[s]["wall_time_s"] for s in retrain_seeds) / len(retrain_seeds)
        for row in rows:
            if row["scenario"] == scenario.name and row["method"] == "retrain":
                row["Avg.Gap"], row["time_ratio"] = 0.0, row["wall_time_s"] / retrain_wall
                row["reference_seed"] = row["seed"]
        for row in noise_floor_rows([references[s] for s in floor_seeds]):
            row["time_ratio"] = row["wall_time_s"] / retrain_wall
            rows.append(row)
        for method in config.methods:  # a key: a method name or NAME@LABEL
            if split_method_key(method)[0] == "retrain" or scenario.name not in config.method_scenarios(method):
                continue
            options = config.method_options(method)
            for i, seed in enumerate(config.seeds):
                reference_seed = retrain_seeds[i % len(retrain_seeds)]
                reference = references[reference_seed]
                payload = _run_cell(out, scenario.name, method, options, seed, original, original_meta, splits,
                                    reference, judge, device, progress, log, counts=counts)
                payloads[(scenario.name, method, seed)] = payload
                row = payload["row"]
                row["time_ratio"] = row["wall_time_s"] / retrain_wall
                row["reference_seed"] = reference_seed
                rows.append(row)
    return rows, payloads


NOISE_FLOOR = "retrain-vs-retrain"


def noise_floor_rows(retrains: list[dict]) -> list[dict]:
    """One row per pair of retrains of different seeds: the later one's metrics, its Avg.Gap
    against the earlier one. Their mean is the noise floor of Avg.Gap: a method closer to its
    retrain than two exact retrains are to each other is as good as retraining here."""
    from prunelora.evaluation.metrics import avg_gap
    from prunelora.evaluation.relearn import relearn_ratio

    out = []
    for i, first in enumerate(retrains):
        for second in retrains[i + 1:]:
            row = {**second, "method": NOISE_FLOOR, "reference_seed": first["seed"],
                   "Avg.Gap": avg_gap(second, first) if "MIA" in first and "MIA" in second else float("nan")}
            for key in [k for k in second if k.startswith("Probe-FA")]:
                row[key.replace("Probe-FA", "Probe.Gap")] = abs(second[key] - first.get(key, math.nan))
            if "relearn_steps" in second and "relearn_steps" in first:
                row["relearn_ratio"] = relearn_ratio(second["relearn_steps"], first["relearn_steps"],
                                                     bool(second["relearn_capped"]), bool(first["relearn_capped"]))
            out.append(row)
    return out


def _check_lora_ranks(config: BenchConfig, bundle) -> None:
    """A LoRA rank that a targeted layer cannot take is refused before the original is trained
    (checked on the model built on the `meta` device: no memory)."""
    import torch

    from prunelora.methods import get_method
    from prunelora.methods.common import check_lora_rank
    from prunelora.models import create_model

    model = None
    for method in config.methods:
        options = get_method(split_method_key(method)[0]).make_config(**config.method_options(method))
        if not get_method(split_method_key(method)[0]).capabilities.uses_lora:
            continue
        if model is None:
            with torch.device("meta"):
                model = create_model(config.model, bundle.num_classes, bundle.in_channels, bundle.image_size,
                                     **config.model_kwargs)
        try:
            check_lora_rank(model, options.lora_settings())
        except InvalidInputError as exc:
            raise InvalidInputError(f"{method}: {exc}") from None


def _run_cell(out: Path, scenario: str, method: str, options: dict, seed: int, original, original_meta: dict,
              splits, reference: dict | None, judge: dict, device, progress: bool, log, cache_model: bool = False,
              counts: dict | None = None) -> dict:
    """Run one (method, seed) cell, or read it back if it finished earlier. Returns its payload.

    `method` is the config's key (maybe `NAME@LABEL`): it names the cell and the row's method.
    `judge`: how to evaluate (MIA options, probe and relearning settings, the relearn target).
    """
    from prunelora.methods import get_method, unlearn

    counts = {} if counts is None else counts
    name, _ = split_method_key(method)
    settings = judge["settings"]
    cell = out / "cells" / scenario / _cell_key(method, options, settings) / f"seed{seed}.json"
    done = _load_json(cell) if cell.is_file() else None
    if done is not None:
        log(f"{scenario} {method} seed {seed}: done earlier, reusing")
        return done
    counts["run"] = counts.get("run", 0) + 1
    log(f"{scenario} {method} seed {seed}: running")
    config = get_method(name).make_config(**(options | {"seed": seed}))
    result = unlearn(original, splits, name, config, device=device, progress=progress, original_meta=original_meta)
    model_dir = None
    if cache_model:
        model_dir = out / "cache" / f"{scenario}-{method}-seed{seed}"
        save_checkpoint(result.model, model_dir, {
            "kind": name, "model": original_meta["model"], "dataset": original_meta["dataset"],
            "recipe": original_meta.get("recipe"), "forget": splits.spec.to_dict(), "seed": seed,
            "method": result.record["method"], "cost": result.record["cost"],
            "original": {"run_id": original_meta.get("run_id")}})
    from prunelora.evaluation.relearn import RelearnConfig

    probe, relearn = settings["probe"], settings["relearn"]
    evaluation = evaluate(result.model, splits, reference=reference, device=device,
                          attacks=judge["attacks"], mia_seed=judge["mia_seed"], mia_max_samples=judge["mia_max_samples"],
                          probe=probe is not None, probe_layer=(probe or {}).get("layer"),
                          probe_seed=(probe or {}).get("seed", 0),
                          relearn=RelearnConfig(**relearn) if relearn is not None else None,
                          relearn_target=judge["relearn_target"])
    cost = result.record["cost"]
    row = {"scenario": scenario, "method": method, "seed": seed, **evaluation.metrics,
           "wall_time_s": cost["wall_time_s"], "peak_memory_mb": cost["peak_memory_mb"],
           "trainable_params": cost.get("trainable_params", 0), "steps": cost.get("steps", 0)}
    if reference is None:  # the retrain: its own reference
        row["Avg.Gap"] = 0.0
        for key in [k for k in row if k.startswith("Probe-FA")]:
            row[key.replace("Probe-FA", "Probe.Gap")] = 0.0 if math.isfinite(row[key]) else float("nan")
        if "relearn_steps" in row:
            row["relearn_ratio"] = relearn_ratio(row["relearn_steps"], row["relearn_steps"],
                                                 bool(row["relearn_capped"]), bool(row["relearn_capped"]))
    payload = {"row": row, "mia": evaluation.mia, "losses": evaluation.losses, "probe": evaluation.probe,
               "relearn": evaluation.relearn, "record": {
        k: v for k, v in result.record.items() if k in ("method", "cost", "sparsity")},
        "sizes": splits.sizes(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    cell.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cell, json.dumps(payload, default=float) + "\n")
    return payload


def _relearn_target(original, splits, relearn: dict | None, device) -> float | None:
    """The original's accuracy on the held-out part of D_f: the level relearning must regain."""
    from prunelora.evaluation.relearn import RelearnConfig, heldout_accuracy

    if relearn is None or len(splits.forget) < 2:
        return None
    return broadcast_from_main(heldout_accuracy(original, splits, RelearnConfig(**relearn), device=device)
                               if is_main_process() else None)


def original_checkpoint(out: str | Path) -> Path | None:
    matches = sorted(Path(out).glob("cache/original-*/meta.json"))
    return matches[0].parent if matches else None


# --------------------------------------------------------------------------- commands


def bench(config: BenchConfig, out: str | Path, *, overwrite: bool = False, device: str | None = None,
          progress: bool = True, command: str = "", log=print) -> tuple[list[dict], Path]:
    """Run or resume the benchmark, then write results.csv/json, plots and report.md."""
    from prunelora.evaluation.report import write_report

    start = time.perf_counter()
    counts: dict = {}
    rows, payloads = run_bench(config, out, overwrite=overwrite, device=device, progress=progress, log=log,
                               counts=counts)
    report = Path(out) / "report.md"
    if is_main_process():
        original_meta = read_meta(original_checkpoint(out))
        write_report(Path(out), rows, payloads, config.to_dict(), original_meta, command,
                     elapsed_s=time.perf_counter() - start, cells_run=counts.get("run", 0))
    barrier()
    return rows, report


def _bench_config_from_args(args) -> BenchConfig:
    from dataclasses import replace

    config = BenchConfig.from_file(args.config)
    overrides = {}
    for flag in ("seeds", "retrain_seeds"):
        text = getattr(args, flag)
        if text:
            try:
                overrides[flag] = [int(s) for s in text.split(",")]
            except ValueError:
                raise InvalidInputError(
                    f"--{flag.replace('_', '-')} {text!r} is not a comma-separated list of integers (e.g. 0,1,2)"
                ) from None
    if args.methods:
        names = [m.strip() for m in args.methods.split(",") if m.strip()]
        for name in names:
            split_method_key(name, "--methods")  # an unknown method or a bad label first
        unknown = [m for m in names if "@" in m and m not in config.methods]
        if unknown:  # a typo would run the method's defaults under the variant's name
            raise InvalidInputError(f"--methods: variant {unknown[0]!r} is not in {args.config}; its variants: "
                                    f"{', '.join(m for m in config.methods if '@' in m) or 'none'}")
        overrides["methods"] = {m: config.methods.get(m, {}) for m in names}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if overrides:
        config = replace(config, **overrides)
        config.validate(args.config)
    return config


def _print_summary(rows: list[dict], report: Path) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from prunelora.evaluation.report import summarize

    console = Console()
    if console.width < 100:  # piped output defaults to 80 columns, which would cut the numbers
        console = Console(width=100)
    # compact enough for an 80-column terminal; report.md has every column
    terminal = {"UA": "UA", "RA": "RA", "TA": "TA", "MIA": "MIA-Eff", "Avg.Gap": "Avg.Gap",
                "time_ratio": "t/retrain"}
    for scenario, methods in summarize(rows).items():
        present = [k for k in terminal if any(k in m for m in methods.values())]
        table = Table(title=f"scenario {scenario}: mean±std over seeds, %", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("method")
        for key in present:
            table.add_column(terminal[key], justify="right")
        for method, metrics in methods.items():
            cells = []
            for key in present:
                mean, std = metrics.get(key, (float("nan"), float("nan")))
                cells.append(f"{mean:.2f}±{std:.2f}" if key == "time_ratio" else f"{mean:.1f}±{std:.1f}")
            table.add_row(method, *cells)
        console.print(table)
    console.print(f"report: {report}")


def _add_bench_overrides(p) -> None:
    p.add_argument("--seeds", default=None, help="comma-separated seeds (overrides the config)")
    p.add_argument("--retrain-seeds", default=None, help="comma-separated retrain seeds (default: --seeds)")
    p.add_argument("--methods", default=None, help="comma-separated methods (overrides the config)")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset files")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--overwrite", action="store_true", help="replace a different run already in --out")


def cmd_bench(args) -> int:
    """Benchmark methods against retrain over seeds: results.csv/json, report.md and plots."""
    import shlex

    from prunelora.cli import check_device

    config = _bench_config_from_args(args)
    command = "prunelora " + " ".join(shlex.quote(str(a)) for a in args._argv)
    rows, report = bench(config, args.out, overwrite=args.overwrite, device=check_device(args.device),
                         progress=not args.no_progress, command=command)
    _print_summary(rows, report)
    return 0


def cmd_demo(args) -> int:
    """The embedded illustration: the paper's five methods on digits, 3 seeds, table and report."""
    import shlex

    from prunelora.cli import check_device, preset_path

    args.config = str(preset_path("demo-digits"))
    start = time.perf_counter()
    config = _bench_config_from_args(args)
    rows, report = bench(config, args.out, overwrite=args.overwrite, device=check_device(args.device),
                         progress=not args.no_progress,
                         command="prunelora " + " ".join(shlex.quote(str(a)) for a in args._argv))
    _print_summary(rows, report)
    print(f"demo finished in {time.perf_counter() - start:.0f} s (digits is an illustration, not evidence: see the report)")
    return 0


def _setup_bench(p) -> None:
    p.add_argument("--config", required=True, help="bench YAML (see configs/, e.g. configs/demo-digits.yaml)")
    p.add_argument("--out", required=True, help="output directory (resumable)")
    _add_bench_overrides(p)
    p.set_defaults(_options_config=False)


def _setup_demo(p) -> None:
    p.add_argument("--out", default="demo-out", help="output directory (default: %(default)s)")
    _add_bench_overrides(p)


def _register() -> None:
    from prunelora.cli import register_command

    register_command("bench", cmd_bench, _setup_bench)
    register_command("demo", cmd_demo, _setup_demo)


_register()
