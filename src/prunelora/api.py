"""The Python API behind the CLI: train an original model, unlearn or retrain a checkpoint, inspect one.

The workflow layer: it composes data, models, training, the methods and checkpoints, and sits
above all of them (the methods never import it); the benchmark and the command line sit above it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import SafetensorError
from torch import nn

from prunelora.adapters import save_adapter as export_adapter
from prunelora.checkpoint import (
    CheckpointMeta,
    DatasetRecord,
    atomic_write_text,
    check_model_size,
    check_output_dir,
    load_checkpoint,
    load_model,
    read_meta,
    run_id,
    save_checkpoint,
    timestamp,
    unlearned_run_id,
)
from prunelora.data import (
    DatasetBundle,
    ForgetSpec,
    Splits,
    build_splits,
    check_data_identity,
    data_digest,
    load_dataset,
    stratified_subset,
)
from prunelora.errors import CheckpointError, InvalidInputError, OutputError
from prunelora.evaluation.compare import compare
from prunelora.evaluation.evaluate import (
    Evaluation,
    check_reference,
    evaluate,
    forgotten_classes,
    original_for_relearning,
)
from prunelora.evaluation.metrics import split_accuracies
from prunelora.evaluation.relearn import DEFAULT_RELEARN, RelearnConfig, heldout_accuracy
from prunelora.methods import UnlearnResult, get_method, unlearn
from prunelora.methods.base import apply_preset
from prunelora.models import create_model
from prunelora.models.checks import check_classifier, check_model, check_scores
from prunelora.models.classifier import find_module
from prunelora.training import (
    TrainConfig,
    accuracy_on,
    fit,
    predict,
    resolve_device,
    seed_everything,
    trainable_parameters,
)
from prunelora.training.memory import PeakMemory


@dataclass
class RunResult:
    """A trained or unlearned model, its meta.json content and where it was saved (if it was).

    Attributes:
        model: the model, a plain `nn.Module`.
        meta: what the checkpoint's meta.json holds (architecture, data, recipe, method, metrics, cost).
        path: the checkpoint directory, or None when nothing was saved.
        splits: the splits the model was trained or unlearned on.
        classifier: the model's classifier module (`head`, `fc`, ...): the one a method trained as
            the head and never pruned; for `train`, the one unlearning will find (None: none found).
    """

    model: nn.Module
    meta: CheckpointMeta
    path: Path | None = None
    splits: Splits | None = field(default=None, repr=False)
    classifier: str | None = None


def model_spec(name: str, bundle: DatasetBundle, kwargs: dict | None = None) -> dict:
    return {"name": name, "num_classes": bundle.num_classes, "in_channels": bundle.in_channels,
            "image_size": bundle.image_size, "kwargs": dict(kwargs or {})}


def dataset_record(bundle: DatasetBundle, data_dir, val_fraction: float, split_seed: int,
                   train_subset: dict | None = None, val_indices=None) -> dict:
    """meta.json's `dataset` entry. `digest`: the data's identity (see `data_digest`), checked
    before any later deletion request. `val_indices`: the validation split the original held out
    (indices into its training set), recorded so that every later forget set and evaluation uses
    exactly the records the original did not train on."""
    record = {**bundle.describe(), "digest": data_digest(bundle), "data_dir": str(data_dir) if data_dir else None,
              "val_fraction": val_fraction, "split_seed": split_seed, "train_subset": train_subset}
    if val_indices is not None:
        record["val_indices"] = [int(i) for i in val_indices]
    return record


def apply_train_subset(bundle: DatasetBundle, subset: dict | None) -> DatasetBundle:
    """`bundle` with its train set cut to the stratified subset `{"size", "seed"}`; test is kept.

    `subset` is what meta.json records under `dataset.train_subset` (None: the whole train set).
    Its `of`, when recorded, is the full train size, which the dataset loaded now must match.
    """
    if not subset:
        return bundle
    of = subset.get("of")
    if of is not None and of != len(bundle.train):
        raise InvalidInputError(
            f"the checkpoint was trained on a subset of the {of} training images of {bundle.name}, but the "
            f"{bundle.name} found now has {len(bundle.train)}; pass --data-dir with the original's data"
        )
    return dataclasses.replace(bundle, train=stratified_subset(bundle.train, subset["size"], subset.get("seed", 0)))


def split_metrics(model: nn.Module, splits: Splits, device=None) -> dict[str, float]:
    """The accuracies a checkpoint records (percent, `split_accuracies`): RA, val, TA, then UA when
    something is forgotten and FA when a class is. After class-wise forgetting `val` counts the
    retained classes' validation images only (the forgotten class's are meant to be wrong now)."""
    parts = ["retain", "val", "test_retain"] + (["forget"] if splits.spec is not None else []) \
        + (["test_forget"] if len(splits.test_forget) else [])
    return split_accuracies({part: predict(model, getattr(splits, part), device=device) for part in parts},
                            forgotten_classes(splits))


def train(
    dataset: str = "digits",
    model: str = "resnet20",
    config: TrainConfig | None = None,
    *,
    model_kwargs: dict | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    val_fraction: float = 0.1,
    forget: ForgetSpec | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    device: str | None = None,
    progress: bool = True,
    train_subset: int | None = None,
    subset_seed: int = 0,
    image_size: int = 32,
) -> RunResult:
    """Train `model` from scratch on `dataset` (minus its validation split and any forget set).

    With `forget` this is exact unlearning: a model trained only on D_r. When `out` is given the
    result is saved as a checkpoint directory; an `out` holding a different run is refused.
    `train_subset` first cuts the train set to that many images, stratified by class and chosen
    by `subset_seed` (the validation split is then carved from the subset; the test set is whole).
    The checkpoint records it, so unlearning and evaluation rebuild the same data.

    Args:
        dataset: a registered dataset name (`prunelora.list_datasets()`), e.g. `"digits"`.
        model: a registered model name (`prunelora.list_models()`), e.g. `"resnet8"`.
        config: the training recipe; `TrainConfig()` (30 epochs of SGD) when None.
        model_kwargs: extra arguments of the model's builder, e.g. `{"width": 2}`.
        data_dir: folder holding the dataset's files (default: the dataset's own place).
        download: let torchvision download the dataset (needs the internet).
        val_fraction: share of the training set held out for validation (seeded, stratified).
        forget: what to leave out of training (exact unlearning); None trains on all of it.
        out: checkpoint directory to write; None keeps the model in memory only.
        overwrite: replace a different run already in `out`.
        device: `"cpu"`, `"cuda"`, `"cuda:1"`...; None picks a GPU when there is one.
        progress: show progress bars.
        train_subset: train on this many images of the train set, stratified by class.
        subset_seed: which images `train_subset` picks.
        image_size: the side an image folder's images are resized to.

    Returns:
        The trained model, its meta.json content, the checkpoint path (or None) and the splits.

    Raises:
        InvalidInputError: an unknown dataset or model, or a bad option value.
        MissingFileError: the dataset's files are not where they should be.
        OutputError: `out` cannot be written.

    Example:
        ```python
        original = prunelora.train("digits", "resnet8", TrainConfig(epochs=15), out="runs/original")
        ```
    """
    config = config or TrainConfig()
    bundle = load_dataset(dataset, data_dir=data_dir, download=download, augment=config.augment,
                          image_size=image_size)
    subset = None if train_subset is None else {"size": train_subset, "seed": subset_seed}
    full_train_size = len(bundle.train)
    bundle = apply_train_subset(bundle, subset)
    spec = model_spec(model, bundle, model_kwargs)
    check_model_size(lambda: create_model(model, bundle.num_classes, bundle.in_channels, bundle.image_size,
                                          **spec["kwargs"]), f"model {model} {spec['kwargs'] or ''}".strip())
    seed_everything(config.seed)  # the initial weights depend on the seed alone
    net = create_model(model, bundle.num_classes, bundle.in_channels, bundle.image_size, **spec["kwargs"])
    splits = build_splits(bundle, forget, val_fraction=val_fraction, seed=0)
    # what a factory (or any builder) made must score this data before any training
    shown = f"model factory {model[len('factory:'):]}" if model.startswith("factory:") else f"model {model}"
    data = f"dataset factory {bundle.name[len('factory:'):]}" if bundle.name.startswith("factory:") else bundle.name
    check_model(net, shown)
    check_scores(net, splits.retain, bundle.num_classes, what=shown, what_data=f"the training set of {data}")
    identity = {"kind": "original", "dataset": bundle.name, "model": spec, "recipe": config.to_dict(),
                "forget": forget.to_dict() if forget else None, "val_fraction": val_fraction,
                **({"train_subset": subset} if subset else {})}
    rid = run_id(identity)
    if out is not None:
        check_output_dir(out, rid, overwrite)  # refuse before spending any time training
    with PeakMemory(resolve_device(device)) as peak:
        result = fit(net, splits.retain, config, device=device, progress=progress,
                     description=f"original {model} on {bundle.name}")
    metrics = split_metrics(net, splits, device)
    if forget is None:
        metrics["test"] = accuracy_on(net, bundle.test, device)
    meta = CheckpointMeta(
        kind="original", run_id=rid, model=spec,
        dataset=dataset_record(bundle, data_dir, val_fraction, 0,
                               None if subset is None else {**subset, "of": full_train_size},
                               val_indices=splits.val_indices.tolist()),
        forget=forget.to_dict() if forget else None, recipe=config.to_dict(), seed=config.seed, metrics=metrics,
        cost={"wall_time_s": result.wall_time_s, "steps": result.steps, "peak_memory_mb": peak.mb,
              "trainable_params": trainable_parameters(net)},
        history=result.history, created=timestamp(),
    )
    path = save_checkpoint(net, out, meta) if out is not None else None
    return RunResult(net.eval(), meta, path, splits, classifier=_classifier_of(net, bundle.num_classes))


def _classifier_of(model: nn.Module, num_classes: int) -> str | None:
    """The classifier unlearning will find in a trained model, or None (it will ask for one by name)."""
    try:
        return check_classifier(model, None, num_classes)[0]
    except InvalidInputError:
        return None


def load_for_unlearning(checkpoint: str | os.PathLike, forget: ForgetSpec, data_dir=None,
                        download: bool = False) -> tuple[nn.Module, CheckpointMeta, DatasetBundle, Splits]:
    """Load an original checkpoint, its dataset (from meta.json) and the splits for `forget`.

    The dataset is rebuilt as the original saw it: the same train subset (if any), val split and seed.
    """
    model, meta = load_checkpoint(checkpoint)
    bundle, _ = _checkpoint_data(meta, checkpoint, data_dir, download)
    return model, meta, bundle, _splits_of(bundle, meta, forget)


def _checkpoint_data(meta: CheckpointMeta, checkpoint, data_dir, download: bool) -> tuple[DatasetBundle, str | None]:
    """The dataset a checkpoint's meta.json names, as its original saw it, checked against the
    recorded digest; and that digest (None for an older checkpoint that records none)."""
    ds = meta.dataset
    if ds is None or not ds.name:
        raise CheckpointError(f"{checkpoint}: meta.json records no dataset.name")
    recipe = meta.recipe or {}
    size = ds.image_size if str(ds.name).startswith("imagefolder:") else 32
    bundle = load_dataset(ds.name, data_dir=data_dir or ds.data_dir, download=download,
                          augment=bool(recipe.get("augment", False)), image_size=size)
    bundle = apply_train_subset(bundle, ds.train_subset)  # the original's training data
    digest = data_digest(bundle) if ds.digest is not None else None
    _check_data(bundle, digest, meta, checkpoint)
    return bundle, digest


def _check_data(bundle: DatasetBundle, digest: str | None, meta: CheckpointMeta, checkpoint) -> None:
    """A deletion request or an evaluation must hit the records the model saw: refuse changed data
    (`digest`: the bundle's, computed once) or another number of classes."""
    ds = meta.dataset or DatasetRecord({})
    if not check_data_identity(bundle, ds, str(checkpoint), digest=digest):
        warnings.warn(f"{checkpoint} records no digest of its data (an older checkpoint): not checked that "
                      f"the {ds.name} found now is the data it was trained on", UserWarning, stacklevel=3)
    if bundle.num_classes != meta.model.num_classes:
        raise InvalidInputError(
            f"dataset {ds.name} has {bundle.num_classes} classes but the checkpoint's model has "
            f"{meta.model.num_classes}"
        )


def _splits_of(bundle: DatasetBundle, meta: CheckpointMeta, forget: ForgetSpec) -> Splits:
    """The splits for `forget` with the validation split the original held out."""
    ds = meta.dataset or DatasetRecord({})
    return build_splits(bundle, forget, val_fraction=ds.val_fraction, seed=ds.split_seed, val_indices=ds.val_indices)


@dataclass
class CheckpointEvaluation:
    """What `evaluate_checkpoint` found: the flat metrics (the model's, its recorded cost and the
    comparison with the reference), the details of `evaluate` and which checkpoints were used.

    Attributes:
        checkpoint: the evaluated checkpoint directory.
        forget: the forget request the evaluation used.
        metrics: flat metrics: UA/RA/TA/FA, attacks, probe, relearning, the recorded cost, and the
            comparison with the reference (Avg.Gap, Probe.Gap, relearn ratio, time ratio).
        evaluation: what `evaluate` returned (attacks, losses, probe and relearning details).
        meta: the evaluated checkpoint's meta.json.
        reference: the reference checkpoint directory, if one was given.
        original: the original checkpoint used as the relearning target, if found.
        original_missing: why relearning was skipped when the original could not be found.
        reference_metrics: the reference's own metrics (same settings), if one was given.
    """

    checkpoint: str
    forget: ForgetSpec
    metrics: dict[str, float]
    evaluation: Evaluation = field(repr=False)
    meta: CheckpointMeta = field(repr=False)
    reference: str | None = None
    original: str | None = None
    original_missing: str | None = None
    reference_metrics: dict[str, float] | None = None

    @property
    def deltas(self) -> dict[str, float] | None:
        """`metrics[k] - reference_metrics[k]` for every number both have (None without a reference)."""
        if self.reference_metrics is None:
            return None
        return {key: float(value) - float(self.reference_metrics[key]) for key, value in self.metrics.items()
                if isinstance(self.reference_metrics.get(key), (int, float)) and isinstance(value, (int, float))}

    def to_dict(self) -> dict:
        """The JSON report `prunelora eval --json` writes (with the reference's metrics and the
        deltas to them when a reference was given)."""
        return {"checkpoint": self.checkpoint, "forget": self.forget.to_dict(), "metrics": self.metrics,
                "mia": self.evaluation.mia, "attacks_at_chance": self.evaluation.attacks_at_chance,
                "probe": self.evaluation.probe, "relearn": self.evaluation.relearn,
                "representation": self.evaluation.representation, "reference": self.reference,
                "reference_metrics": self.reference_metrics, "deltas": self.deltas, "original": self.original}


COST_KEYS = ("wall_time_s", "peak_memory_mb", "trainable_params")  # a checkpoint's recorded cost, as metrics


def evaluate_checkpoint(checkpoint: str | os.PathLike, forget: ForgetSpec | None = None, *,
                        reference: str | os.PathLike | None = None, original: str | os.PathLike | None = None,
                        data_dir: str | os.PathLike | None = None, download: bool = False, device: str | None = None,
                        attacks: tuple[str, ...] | None = None, probe: bool = True, probe_layer: str | None = None,
                        relearn: RelearnConfig | None = DEFAULT_RELEARN,
                        on_stage: Callable[[str], None] | None = None) -> CheckpointEvaluation:
    """Evaluate a saved checkpoint on the data it was trained on, against a retrain if given.

    The whole workflow of `prunelora eval`: the checkpoint is loaded and checked, its dataset
    rebuilt as its original saw it (loaded and digested once, whatever else is loaded), the
    original found for the relearning target, the reference loaded and evaluated with the same
    settings, and the model compared with it (`prunelora.evaluation.compare.compare`). Each
    meta.json is read once.

    Args:
        checkpoint: the checkpoint directory to evaluate.
        forget: what to evaluate against; None: the forget set the checkpoint records.
        reference: a retrain checkpoint of the same original and forget set; adds Avg.Gap,
            Probe.Gap, relearn_ratio and time_ratio.
        original: the original checkpoint (relearning's target is its accuracy on D_f); None: the
            checkpoint itself when it is an original, else the path its meta.json records.
        data_dir: where the dataset lies, when not where the checkpoint recorded it.
        download: fetch a registered dataset that is missing.
        device: where to evaluate (None: the best available).
        attacks: membership-inference attacks (None: every attack that needs no shadow models).
        probe: fit the representation probe (Probe-FA, Probe-TA).
        probe_layer: also probe this module's output (e.g. `layers.1`).
        relearn: the relearning protocol; None skips relearning.
        on_stage: called with a few words as each stage starts (loading, the reference, the
            model), e.g. to show progress.

    Returns:
        The metrics (with the recorded cost and the comparison keys) and `evaluate`'s details.

    Raises:
        InvalidInputError: nothing to evaluate against (no `forget`, none recorded), a reference
            of another original or forget set, an `original` that is not the checkpoint's, a probe
            layer the model lacks, or data other than the checkpoint's.
        MissingFileError: a checkpoint directory or file is missing.
        CheckpointError: a checkpoint cannot be trusted or does not load.
    """
    checkpoint = str(checkpoint)
    meta = read_meta(checkpoint)
    if forget is None:
        if not meta.forget:
            raise InvalidInputError(f"{checkpoint} forgot nothing; say what to evaluate against with --forget-class, "
                                    "--forget-fraction or --forget-indices (forget= in Python)")
        forget = ForgetSpec.from_dict(meta.forget)
    reference_meta = None
    if reference is not None:  # refused before anything is loaded
        reference = str(reference)
        reference_meta = read_meta(reference)
        check_reference({**meta, "forget": forget.to_dict()}, reference_meta)
    original_path, original_meta, missing = (original_for_relearning(meta, checkpoint, None if original is None
                                                                     else str(original))
                                             if relearn is not None else (None, None, None))
    stage = on_stage or (lambda text: None)
    stage(f"loading {checkpoint} and its data")
    model = load_model(checkpoint, meta)
    if probe and probe_layer is not None:
        find_module(model, probe_layer)  # a wrong name fails before any work
    bundle, digest = _checkpoint_data(meta, checkpoint, data_dir, download)
    splits = _splits_of(bundle, meta, forget)
    target, original_model, reference_model = None, None, None
    if original_path is not None:
        if original_path == checkpoint:
            original_model = model
        else:
            _check_data(bundle, digest, original_meta, original_path)
            original_model = load_model(original_path, original_meta)
        if len(splits.forget) >= 2:  # fewer: `evaluate` records why relearning is skipped
            stage(f"the original's accuracy on D_f (relearning's target): {original_path}")
            target = heldout_accuracy(original_model, splits, relearn, device=device)
    options = {"probe": probe, "probe_layer": probe_layer, "relearn": relearn, "relearn_target": target,
               "device": device, "attacks": attacks}
    reference_metrics = None
    if reference_meta is not None:
        _check_data(bundle, digest, reference_meta, reference)
        reference_model = load_model(reference, reference_meta)
        stage(f"evaluating the reference {reference}")
        reference_metrics = _with_cost(evaluate(reference_model, splits, throughput=False, **options).metrics,
                                       reference_meta)
    stage(f"evaluating {checkpoint}")
    # The original and the retrain, where loaded, are the CKA references of the representation metrics.
    result = evaluate(model, splits, original_model=original_model, reference_model=reference_model, **options)
    if missing:
        result.relearn = {"skipped": missing}
    metrics = _with_cost(result.metrics, meta)
    if reference_metrics is not None:
        metrics.update(compare(metrics, reference_metrics))
    return CheckpointEvaluation(checkpoint, forget, metrics, result, meta, reference,
                                None if original_path is None else str(original_path), missing, reference_metrics)


def _with_cost(metrics: dict[str, float], meta: CheckpointMeta) -> dict[str, float]:
    """`metrics` and the cost meta.json records (wall time, peak memory, trainable parameters)."""
    cost = meta.cost or {}
    return {**metrics, **{key: float(cost[key]) for key in COST_KEYS if key in cost}}


def retrain(checkpoint: str | os.PathLike, forget: ForgetSpec, *, out: str | os.PathLike | None = None,
            seed: int = 0, overwrite: bool = False, data_dir=None, download: bool = False,
            device: str | None = None, progress: bool = True) -> RunResult:
    """Exact unlearning: train from scratch on D_r with the original's recipe (from its meta.json).

    The same as `unlearn_checkpoint(..., method="retrain")`: the checkpoint is loaded and checked
    (weights, architecture, classes) before any training.

    Args:
        checkpoint: the original's checkpoint directory.
        forget: what to forget (`ForgetSpec.from_classes(3)`, ...).
        out: checkpoint directory to write; None keeps the model in memory only.
        seed: the retrain's seed.
        overwrite: replace a different run already in `out`.
        data_dir: folder holding the dataset's files (default: the dataset's own place).
        download: let torchvision download the dataset (needs the internet).
        device: `"cpu"`, `"cuda"`, ...; None picks a GPU when there is one.
        progress: show progress bars.

    Returns:
        The retrained model, its meta.json content (metrics included), the path and the splits.

    Raises:
        CheckpointError: the checkpoint is missing parts, foreign, or does not fit its meta.json.
        InvalidInputError: the forget spec does not fit the data, or a bad option value.
        OutputError: `out` cannot be written.
    """
    return unlearn_checkpoint(checkpoint, forget, "retrain", out=out, overwrite=overwrite, data_dir=data_dir,
                              download=download, device=device, progress=progress, seed=seed)


def info(checkpoint: str | os.PathLike) -> CheckpointMeta:
    """meta.json of a checkpoint, after checking that its weights load into its architecture.

    Args:
        checkpoint: a checkpoint directory.

    Returns:
        The checkpoint's meta.json as a `CheckpointMeta`: model, data, forget spec, recipe, method,
        metrics, cost.

    Raises:
        CheckpointError: the checkpoint is missing parts, foreign, or does not fit its meta.json.
    """
    _, meta = load_checkpoint(checkpoint)
    return meta


def unlearn_checkpoint(checkpoint: str | os.PathLike, forget: ForgetSpec, method: str | None = None, *,
                       out: str | os.PathLike | None = None, overwrite: bool = False, data_dir=None,
                       download: bool = False, device: str | None = None, progress: bool = True,
                       save_adapter: str | os.PathLike | None = None, classifier: str | None = None,
                       preset: str | None = None, skip_heldout: bool = False, **method_options) -> RunResult:
    """Load a checkpoint, make it forget `forget` with `method`, evaluate the splits, save the result.

    The saved model is always a plain merged model.

    Args:
        checkpoint: the original's checkpoint directory.
        forget: what to forget (`ForgetSpec.from_classes(3)`, `ForgetSpec.from_index_file(path)`, ...).
        method: a registered method name (`prunelora.list_methods()`); None: the `preset`'s
            method, else `"prunelora"`.
        out: checkpoint directory to write; None keeps the model in memory only.
        overwrite: replace a different run already in `out`.
        data_dir: folder holding the dataset's files (default: the dataset's own place).
        download: let torchvision download the dataset (needs the internet).
        device: `"cpu"`, `"cuda"`, ...; None picks a GPU when there is one.
        progress: show progress bars.
        save_adapter: also export the LoRA adapter alone into this directory, with a warning (the
            base weights plus the adapter still hold the forgotten data).
        classifier: the classifier module's name when it is not found by itself (see `unlearn`).
        preset: a shipped recipe by name, as `prunelora unlearn --preset` takes; `method_options`
            win over its options.
        skip_heldout: a deletion request (`ForgetSpec.from_index_file`) naming records of the
            original's validation split drops them instead of being refused; the result's
            meta.json records which (`forget.skipped`).
        **method_options: the method's options (fields of its config), e.g. `epochs=5, lora_rank=8`.

    Returns:
        The unlearned model, its meta.json content (metrics and cost included), the path and the
        splits.

    Raises:
        CheckpointError: the checkpoint is missing parts, foreign, or does not fit its meta.json.
        InvalidInputError: an unknown method, an option it does not take, or a bad value.
        OutputError: `out` or `save_adapter` cannot be written.

    Example:
        ```python
        result = prunelora.unlearn_checkpoint("runs/original", ForgetSpec.from_classes(3), "prunelora",
                                              out="runs/prunelora", epochs=30)
        ```
    """
    method, method_options = apply_preset(method, preset, method_options)
    if skip_heldout:
        forget = dataclasses.replace(forget, skip_heldout=True)
    entry = get_method(method)
    config = entry.make_config(**method_options)  # validate options before loading anything
    if save_adapter is not None and not entry.capabilities.uses_lora:
        raise InvalidInputError(f"--save-adapter: method {method!r} trains no adapter")
    model, meta, bundle, splits = load_for_unlearning(checkpoint, forget, data_dir, download)
    rid = unlearned_run_id(meta.run_id, forget.to_dict(), method, config.to_dict())
    if out is not None:
        check_output_dir(out, rid, overwrite)
    if save_adapter is not None:
        if out is not None and os.path.abspath(save_adapter) == os.path.abspath(out):
            raise InvalidInputError(f"--save-adapter {str(save_adapter)!r} is the --out directory; give the adapter "
                                    "its own directory")
        # the same rule as --out: never add files to another run's directory
        check_output_dir(save_adapter, rid, overwrite, label="--save-adapter", marker=ADAPTER_RUN)
    result = unlearn(model, splits, method, config, device=device, progress=progress, original_meta=meta,
                     classifier=classifier)
    out_meta = result_meta(result, meta, splits, seed=getattr(config, "seed", None), original_path=checkpoint,
                           device=device)
    path = None
    if out is not None:
        path = _save_outputs(result, out, out_meta, save_adapter, rid)
    return RunResult(result.model, out_meta, path, splits, classifier=result.record.details.get("classifier"))


def result_meta(result: UnlearnResult, original_meta: CheckpointMeta, splits: Splits, *, seed: int | None,
                original_path: str | os.PathLike | None = None, device: str | None = None) -> CheckpointMeta:
    """The meta.json of a method's result: how every unlearned or retrained checkpoint is recorded
    (`unlearn_checkpoint`, `retrain` and the benchmark's cached retrains).

    Args:
        result: what `unlearn` returned.
        original_meta: meta.json of the checkpoint the method started from.
        splits: the splits it ran on (their forget spec is recorded; their accuracies are measured).
        seed: the method's seed.
        original_path: where the original lies (for `prunelora eval`'s relearning target).
        device: where the accuracies are measured.

    Returns:
        The record to save with `save_checkpoint(result.model, out, meta)`.
    """
    return CheckpointMeta.unlearned(
        original_meta, forget=splits.spec.to_dict(), method=result.method_dict(), cost=result.cost.to_dict(),
        seed=seed, sparsity=result.sparsity, history=result.record.history,
        metrics=split_metrics(result.model, splits, device), architecture=result.architecture,
        original_path=original_path)


ADAPTER_RUN = "prunelora-run.json"  # in a --save-adapter directory: which run wrote it


def _save_outputs(result, out, out_meta: CheckpointMeta, save_adapter, rid: str) -> Path:
    """The adapter (if asked) then the checkpoint; if either fails, an adapter directory this run
    created is removed again, so a failed command leaves no partial output."""
    if save_adapter is None:
        return save_checkpoint(result.model, out, out_meta)
    adapter_dir = Path(save_adapter)
    created = not adapter_dir.exists()
    try:
        export_adapter(result.adapter, adapter_dir)
        atomic_write_text(adapter_dir / ADAPTER_RUN, json.dumps({"run_id": rid, "checkpoint": str(out)}) + "\n")
        return save_checkpoint(result.model, out, out_meta)
    except BaseException as exc:
        if created:
            shutil.rmtree(adapter_dir, ignore_errors=True)
        if isinstance(exc, (OSError, SafetensorError)) and not isinstance(exc, OutputError):
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise OutputError(f"cannot write --save-adapter {str(adapter_dir)!r}: {reason}") from None
        raise
