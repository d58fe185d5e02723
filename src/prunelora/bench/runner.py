"""Run or resume a benchmark: original -> retrain and every chosen method, over seeds and scenarios.

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
import shutil
import time
from pathlib import Path

import torch

from prunelora.api import apply_train_subset, train
from prunelora.bench.config import BenchConfig, split_method_key
from prunelora.checkpoint import (
    CheckpointMeta,
    atomic_write_text,
    check_writable,
    load_checkpoint,
    read_meta,
    run_id,
    save_checkpoint,
)
from prunelora.data import build_splits, check_data_identity, load_dataset
from prunelora.errors import InvalidInputError
from prunelora.evaluation.attacks import default_attacks
from prunelora.evaluation.evaluate import evaluate
from prunelora.evaluation.metrics import avg_gap
from prunelora.evaluation.relearn import RelearnConfig, heldout_accuracy, relearn_ratio
from prunelora.evaluation.report import write_report
from prunelora.methods import get_method, unlearn
from prunelora.methods.common import check_lora_rank
from prunelora.models import create_model
from prunelora.models.classifier import find_module
from prunelora.training import TrainConfig
from prunelora.training.distributed import barrier, broadcast_from_main, is_main_process


def _silent(*args, **kwargs) -> None:
    pass


def _without_reuse_lines(log):
    """`log` less the "done earlier, reusing" lines (after a parallel pass every cell reads back)."""
    def filtered(message: str, *args, **kwargs) -> None:
        if not str(message).endswith("done earlier, reusing"):
            log(message, *args, **kwargs)
    return filtered


def time_ratio(row: dict, retrains: list[dict]) -> float:
    """`row`'s wall time over the mean of its scenario's retrains run with the same torch threads
    per cell (NaN where none was: times under other thread counts do not compare)."""
    same = [r["wall_time_s"] for r in retrains if r.get("threads") == row.get("threads")]
    return row["wall_time_s"] / (sum(same) / len(same)) if same else float("nan")


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
              progress: bool = True, log=print, counts: dict | None = None,
              executor=None) -> tuple[list[dict], dict]:
    """Run (or resume) the benchmark into `out`.

    Returns one row per (scenario, method, seed) and the cells' payloads keyed the same way.
    `counts["run"]`, when given, is incremented for every cell run now (not reused).
    `executor` (`prunelora.bench.executors`): where the cells run; None, one in this process.
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
           "mia_seed": config.mia.get("seed", 0), "settings": config.evaluation(),
           "threads": executor.threads if executor is not None else None}
    if executor is not None and executor.parallel:
        # Every missing cell runs first, spread over the executor's workers; the loop below then
        # reads them back in order and builds the rows exactly as after a sequential run.
        executor.run_cells(config, out, bundle, original, original_meta, judge, device, log, counts)
        log = _without_reuse_lines(log)
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
        retrains = [references[s] for s in retrain_seeds]
        for row in rows:
            if row["scenario"] == scenario.name and row["method"] == "retrain":
                row["Avg.Gap"], row["time_ratio"] = 0.0, time_ratio(row, retrains)
                row["reference_seed"] = row["seed"]
        for row in noise_floor_rows([references[s] for s in floor_seeds]):
            row["time_ratio"] = time_ratio(row, retrains)
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
                row["time_ratio"] = time_ratio(row, retrains)
                row["reference_seed"] = reference_seed
                rows.append(row)
    return rows, payloads


NOISE_FLOOR = "retrain-vs-retrain"


def noise_floor_rows(retrains: list[dict]) -> list[dict]:
    """One row per pair of retrains of different seeds: the later one's metrics, its Avg.Gap
    against the earlier one. Their mean is the noise floor of Avg.Gap: a method closer to its
    retrain than two exact retrains are to each other is as good as retraining here."""
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


def cell_path(out: Path, scenario: str, method: str, options: dict, settings: dict, seed: int) -> Path:
    """Where the (scenario, method, seed) cell is recorded (see the module docstring)."""
    return out / "cells" / scenario / _cell_key(method, options, settings) / f"seed{seed}.json"


def _run_cell(out: Path, scenario: str, method: str, options: dict, seed: int, original, original_meta: dict,
              splits, reference: dict | None, judge: dict, device, progress: bool, log, cache_model: bool = False,
              counts: dict | None = None) -> dict:
    """Run one (method, seed) cell, or read it back if it finished earlier. Returns its payload.

    `method` is the config's key (maybe `NAME@LABEL`): it names the cell and the row's method.
    `judge`: how to evaluate (MIA options, probe and relearning settings, the relearn target).
    """
    counts = {} if counts is None else counts
    cell = cell_path(out, scenario, method, options, judge["settings"], seed)
    done = _load_json(cell) if cell.is_file() else None
    if done is not None:
        log(f"{scenario} {method} seed {seed}: done earlier, reusing")
        return done
    counts["run"] = counts.get("run", 0) + 1
    log(f"{scenario} {method} seed {seed}: running")
    payload, checkpoint = compute_cell(scenario, method, options, seed, original, original_meta, splits, reference,
                                       judge, device, progress, cache_model, threads=judge.get("threads"))
    record_cell(out, cell, payload, checkpoint)
    return payload


def compute_cell(scenario: str, method: str, options: dict, seed: int, original, original_meta: dict, splits,
                 reference: dict | None, judge: dict, device, progress: bool, cache_model: bool = False,
                 threads: int | None = None) -> tuple[dict, tuple | None]:
    """Run and evaluate one cell without writing anything (a worker process runs this too: the
    caller records it). Returns its payload and, when `cache_model`, the (model, meta) to save.
    `threads`: torch threads for this cell (None: leave the current setting); recorded in the row."""
    name, _ = split_method_key(method)
    settings = judge["settings"]
    previous = torch.get_num_threads()
    if threads is not None:  # CPU reductions depend on the thread count: fixed per cell, and recorded
        torch.set_num_threads(threads)
    try:
        config = get_method(name).make_config(**(options | {"seed": seed}))
        result = unlearn(original, splits, name, config, device=device, progress=progress,
                         original_meta=original_meta)
        checkpoint = None
        if cache_model:
            checkpoint = (result.model, CheckpointMeta.unlearned(
                original_meta, forget=splits.spec.to_dict(), method=result.method_dict(),
                cost=result.cost.to_dict(), seed=seed, sparsity=result.sparsity, history=result.record.history,
                architecture=result.architecture))
        probe, relearn = settings["probe"], settings["relearn"]
        evaluation = evaluate(result.model, splits, reference=reference, device=device,
                              attacks=judge["attacks"], mia_seed=judge["mia_seed"],
                              mia_max_samples=judge["mia_max_samples"],
                              probe=probe is not None, probe_layer=(probe or {}).get("layer"),
                              probe_seed=(probe or {}).get("seed", 0),
                              relearn=RelearnConfig(**relearn) if relearn is not None else None,
                              relearn_target=judge["relearn_target"])
        ran_with = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
    cost = result.cost
    row = {"scenario": scenario, "method": method, "seed": seed, **evaluation.metrics,
           "wall_time_s": cost.wall_time_s, "peak_memory_mb": cost.peak_memory_mb,
           "trainable_params": cost.trainable_params, "steps": cost.steps, "threads": ran_with}
    if reference is None:  # the retrain: its own reference
        row["Avg.Gap"] = 0.0
        for key in [k for k in row if k.startswith("Probe-FA")]:
            row[key.replace("Probe-FA", "Probe.Gap")] = 0.0 if math.isfinite(row[key]) else float("nan")
        if "relearn_steps" in row:
            row["relearn_ratio"] = relearn_ratio(row["relearn_steps"], row["relearn_steps"],
                                                 bool(row["relearn_capped"]), bool(row["relearn_capped"]))
    payload = {"row": row, "mia": evaluation.mia, "losses": evaluation.losses, "probe": evaluation.probe,
               "relearn": evaluation.relearn, "record": {
        k: v for k, v in result.to_dict().items() if k in ("method", "cost", "sparsity")},
        "sizes": splits.sizes(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return payload, checkpoint


def record_cell(out: Path, cell: Path, payload: dict, checkpoint: tuple | None = None) -> None:
    """Write a finished cell: its model first (a retrain, the reference), then its JSON, each
    atomically; so a cell file always means a complete cell."""
    if checkpoint is not None:
        row = payload["row"]
        model, meta = checkpoint
        save_checkpoint(model, out / "cache" / f"{row['scenario']}-{row['method']}-seed{row['seed']}", meta)
    cell.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cell, json.dumps(payload, default=float) + "\n")


def _relearn_target(original, splits, relearn: dict | None, device) -> float | None:
    """The original's accuracy on the held-out part of D_f: the level relearning must regain."""
    if relearn is None or len(splits.forget) < 2:
        return None
    return broadcast_from_main(heldout_accuracy(original, splits, RelearnConfig(**relearn), device=device)
                               if is_main_process() else None)


def original_checkpoint(out: str | Path) -> Path | None:
    matches = sorted(Path(out).glob("cache/original-*/meta.json"))
    return matches[0].parent if matches else None


def bench(config: BenchConfig, out: str | Path, *, overwrite: bool = False, device: str | None = None,
          progress: bool = True, command: str = "", log=print, executor=None) -> tuple[list[dict], Path]:
    """Run or resume the benchmark, then write results.csv/json, plots and report.md.
    `executor`: where the cells run (see `run_bench`)."""
    start = time.perf_counter()
    counts: dict = {}
    rows, payloads = run_bench(config, out, overwrite=overwrite, device=device, progress=progress, log=log,
                               counts=counts, executor=executor)
    report = Path(out) / "report.md"
    if is_main_process():
        original_meta = read_meta(original_checkpoint(out))
        write_report(Path(out), rows, payloads, config.to_dict(), original_meta, command,
                     elapsed_s=time.perf_counter() - start, cells_run=counts.get("run", 0))
    barrier()
    return rows, report
