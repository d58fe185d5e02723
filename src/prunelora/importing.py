"""Bring your own trained model in: weights trained elsewhere become a checkpoint.

`import_model` writes the same checkpoint `train` does (model.safetensors + meta.json), for a state
dict that a user trained with their own loop, so that `unlearn`, `retrain`, `eval`, `info` and
`bench` (`original:`) take it. The weights must load strictly into the model the registry or the
user's factory builds; the test accuracy is measured and recorded. What prunelora cannot know is
recorded as declared: which training records were held out (the validation split, none by default)
and the recipe a retrain repeats.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from prunelora.api import RunResult, dataset_record, model_spec, split_metrics
from prunelora.checkpoint import (
    CheckpointMeta,
    check_finite,
    check_model_size,
    check_output_dir,
    load_state_into,
    read_weights,
    run_id,
    save_checkpoint,
    timestamp,
)
from prunelora.data import build_splits, load_dataset
from prunelora.data.generic import targets_of
from prunelora.data.splits import read_index_file
from prunelora.errors import CheckpointError, InvalidInputError
from prunelora.factories import PREFIX, load_factory, trust_callable
from prunelora.models import check_model_name, create_model
from prunelora.training import TrainConfig, accuracy_on

# A model trained elsewhere most likely saw the whole training set: holding records out as
# "validation" that it did train on would wrongly shield them from every later deletion request.
DEFAULT_VAL_FRACTION = 0.0
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


def _name_of(value: str | Callable, what: str) -> str:
    """The name meta.json records for a model or dataset given as a registry name, `FILE.py:FUNC`
    (`factory:` too) or a Python function (trusted: the caller named it)."""
    if callable(value) and not isinstance(value, str):
        return trust_callable(value, what)
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{what} {value!r} must be a name, FILE.py:FUNCTION or a function")
    if value.startswith(PREFIX) or ".py:" in value:
        return load_factory(value)
    if what == "model":
        check_model_name(value)
    return value


def _weights_of(weights: str | os.PathLike | Mapping | nn.Module) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict to import and how messages name where it came from."""
    if isinstance(weights, nn.Module):
        return {k: v.detach().cpu() for k, v in weights.state_dict().items()}, "the nn.Module given"
    if isinstance(weights, Mapping):
        bad = next((k for k, v in weights.items() if not isinstance(v, torch.Tensor)), None)
        if bad is not None:
            raise InvalidInputError(f"weights: {bad!r} is not a tensor; give a state dict (model.state_dict())")
        return {str(k).removeprefix("module."): v.detach().cpu() for k, v in weights.items()}, "the state dict given"
    path = Path(weights)
    if path.suffix not in WEIGHT_SUFFIXES:
        raise InvalidInputError(f"weights file {str(path)!r}: accepted: a state dict in {', '.join(WEIGHT_SUFFIXES)} "
                                "(.pt/.pth/.bin are read with torch.load(weights_only=True): no pickled code runs)")
    return read_weights(path), str(path)


def _digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes: the weights' identity."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _validation(val_fraction: float | None, val_indices, n: int) -> tuple[float, list[int] | None]:
    """The validation split asked for: a fraction (seeded, stratified) or the user's own indices."""
    if val_indices is not None and val_fraction is not None:
        raise InvalidInputError("give the validation split as val_fraction or as val_indices, not both "
                                "(--val-fraction or --val-indices)")
    if val_indices is None:
        fraction = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction < 1.0:
            raise InvalidInputError(f"--val-fraction {fraction!r} is outside [0, 1) (0: no validation split)")
        return float(fraction), None
    if isinstance(val_indices, (str, os.PathLike)):
        val_indices = read_index_file(val_indices, "--val-indices")  # ASCII digits, as a deletion request
    try:
        indices = sorted({int(i) for i in val_indices})
    except (TypeError, ValueError):
        raise InvalidInputError("val_indices must be training indices (integers) or a file of them") from None
    bad = [i for i in indices if not 0 <= i < n]
    if bad:
        raise InvalidInputError(f"--val-indices: index {bad[0]} is outside the training set [0, {n}) "
                                f"({len(bad)} such)")
    if len(indices) == n:
        raise InvalidInputError(f"--val-indices names all {n} training records; the model trained on none of them")
    return len(indices) / n, indices


def import_model(weights: str | os.PathLike | Mapping[str, torch.Tensor] | nn.Module, model: str | Callable,
                 dataset: str | Callable, *, recipe: TrainConfig | None = None, model_kwargs: dict | None = None,
                 val_fraction: float | None = None, val_indices: Sequence[int] | str | os.PathLike | None = None,
                 data_dir: str | os.PathLike | None = None, download: bool = False, image_size: int = 32,
                 out: str | os.PathLike | None = None, overwrite: bool = False,
                 device: str | None = None) -> RunResult:
    """Make a checkpoint of weights you trained elsewhere, as `train` would have written it.

    The weights must load strictly (every tensor, every shape) into the model `model` builds for
    `dataset`'s classes, channels and image size; the model's test accuracy is measured and
    recorded (`metrics.test`). The checkpoint is an original: `unlearn_checkpoint`, `retrain`,
    `evaluate_checkpoint` and the bench (`original: DIR`) take it, and the CLI commands too (a
    factory-built one with the same `--model-factory` / `--dataset-factory` named again).

    Args:
        weights: a state dict file (`.safetensors`, or `.pt`/`.pth`/`.bin` read with
            `torch.load(weights_only=True)`; a `{"state_dict": ...}` wrapper and DataParallel's
            `module.` prefixes are accepted), a state dict, or the trained `nn.Module` itself.
        model: a registered model name, `FILE.py:FUNC` (a model factory, see `prunelora.factories`)
            or a function defined at the top level of a `.py` file; a factory takes any of
            `num_classes`, `in_channels`, `image_size` by name, or nothing.
        dataset: a registered dataset name, `imagefolder:PATH`, `FILE.py:FUNC` or a top-level
            function returning `(train, test)` or `(train, test, class_names)`.
        recipe: the `TrainConfig` a retrain of this model repeats (ideally the one your weights
            were trained with); `TrainConfig()` when None.
        model_kwargs: further arguments of the model's builder (`--model-arg`).
        val_fraction: share of the training records held out for validation: records the model
            never trained on (seeded, stratified; they are never forgotten). Default 0: none, as
            a model trained elsewhere usually saw the whole training set.
        val_indices: instead of a fraction, the training indices the model never trained on (a
            list, or a file with one index per line).
        data_dir: folder holding the dataset's files.
        download: let torchvision download the dataset.
        image_size: the side an image folder's images are resized to.
        out: checkpoint directory to write; None keeps the result in memory only.
        overwrite: replace a different run already in `out`.
        device: where the accuracies are measured (None: the best available).

    Returns:
        The model with the weights loaded, its meta.json content, the checkpoint path (or None)
        and the splits (no forget set; `val` as asked).

    Raises:
        InvalidInputError: an unknown model or dataset, a bad factory, weights that are not a
            state dict, or a validation split out of range.
        MissingFileError: the weights or index file does not exist.
        CheckpointError: weights that do not load into the model (missing or unexpected tensors,
            other shapes) or hold NaN/infinity.
        OutputError: `out` cannot be written.

    Example:
        ```python
        torch.save(my_model.state_dict(), "mine.pt")
        prunelora.import_model("mine.pt", "my_models.py:build", "my_data.py:build", out="runs/mine")
        ```
    """
    recipe = TrainConfig() if recipe is None else recipe
    if not isinstance(recipe, TrainConfig):
        raise InvalidInputError(f"recipe must be a TrainConfig, not {type(recipe).__name__}")
    model_name, dataset_name = _name_of(model, "model"), _name_of(dataset, "dataset")
    state, source = _weights_of(weights)  # a missing file before the data is loaded
    if not state:
        raise CheckpointError(f"{source} holds no tensors")
    check_finite(state, source)
    bundle = load_dataset(dataset_name, data_dir=data_dir, download=download, augment=recipe.augment,
                          image_size=image_size)
    spec = model_spec(model_name, bundle, model_kwargs)
    check_model_size(lambda: create_model(model_name, bundle.num_classes, bundle.in_channels, bundle.image_size,
                                          **spec["kwargs"]), f"model {model_name}")
    net = create_model(model_name, bundle.num_classes, bundle.in_channels, bundle.image_size, **spec["kwargs"])
    load_state_into(net, state, f"weights {source} for model {model_name}")
    fraction, chosen = _validation(val_fraction, val_indices, len(targets_of(bundle.train)))
    splits = build_splits(bundle, None, val_fraction=fraction, seed=0, val_indices=chosen)
    weights_digest = _digest(state)
    rid = run_id({"kind": "imported", "weights_sha256": weights_digest, "model": spec, "dataset": bundle.name,
                  "val_indices": splits.val_indices.tolist(), "recipe": recipe.to_dict()})
    if out is not None:
        check_output_dir(out, rid, overwrite)  # refused before the accuracies are measured
    net.eval()
    metrics = {k: v for k, v in split_metrics(net, splits, device).items() if not math.isnan(v)}
    metrics["test"] = accuracy_on(net, bundle.test, device)
    meta = CheckpointMeta(
        kind="original", run_id=rid, model=spec,
        dataset=dataset_record(bundle, data_dir, fraction, 0, val_indices=splits.val_indices.tolist()),
        forget=None, recipe=recipe.to_dict(), seed=recipe.seed, metrics=metrics, created=timestamp(),
        extra={"imported": {"weights": source, "weights_sha256": weights_digest,
                            "recipe": "declared at import (what a retrain repeats)"}},
    )
    path = save_checkpoint(net, out, meta) if out is not None else None
    return RunResult(net.cpu().eval(), meta, path, splits)
