"""Checkpoints: a directory with `model.safetensors` and `meta.json`. Loading never unpickles.

meta.json records everything needed to rebuild and judge the model: architecture and its
arguments, dataset and normalisation, forget spec, training recipe, seed, metrics, wall time and
library versions. Every file is written to a temporary name in the same folder and renamed, so an
interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from prunelora.errors import CheckpointError, InvalidInputError, MissingFileError

FORMAT = "prunelora-checkpoint"
FORMAT_VERSION = 1
WEIGHTS, META = "model.safetensors", "meta.json"


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("prunelora", "torch", "torchvision", "peft", "torch-pruning", "scikit-learn", "safetensors"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def atomic_write_text(path: str | os.PathLike, text: str, *, collective: bool = True) -> None:
    """Write text to `path` through a temporary file in the same folder and a rename.

    `collective` (every process calls this): under several processes only the main one writes and
    the others wait until it has. Code that already runs on the main process alone (the report
    writer) passes `collective=False`.
    """
    from prunelora.training.distributed import barrier, is_main_process

    if not collective:
        _write_text(Path(path), text)
        return
    if is_main_process():
        _write_text(Path(path), text)
    barrier()


def _write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        Path(tmp).write_text(text)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def check_output_dir(out: str | os.PathLike, run_id: str | None = None, overwrite: bool = False) -> Path:
    """Refuse an `out` that already holds a different run unless `overwrite`. Creates nothing:
    the directory appears only when the result is saved, so a failed run leaves no trace.

    A directory holding a checkpoint whose `run_id` matches is accepted (re-running a command).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"output {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        existing = None
        if (out / META).is_file():
            try:
                existing = json.loads((out / META).read_text()).get("run_id")
            except json.JSONDecodeError:
                existing = None
        if run_id is None or existing != run_id:
            raise InvalidInputError(
                f"output directory {str(out)!r} already holds a different run; choose another --out or pass --overwrite"
            )
    return out


def state_dict_for_saving(model: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage; clone makes each tensor its own.
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def save_checkpoint(model: nn.Module, out: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Save `model` and `meta` into the directory `out`.

    Both files are fully written to temporary names before either is renamed into place, so a
    failure (disk full, a meta value JSON cannot hold, Ctrl-C) leaves a previous checkpoint intact.
    Under several processes only the main one writes; the others wait until it has.
    """
    from prunelora.training.distributed import barrier, is_main_process

    if not is_main_process():
        barrier()
        return Path(out)
    if "model" not in meta or "name" not in meta["model"]:
        raise ValueError("meta must describe the model: {'model': {'name': ..., 'num_classes': ...}}")
    out = Path(out)
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta, "versions": library_versions()}
    text = json.dumps(full, indent=2, default=_json_default) + "\n"
    tensors = state_dict_for_saving(model)
    out.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for name, write in ((WEIGHTS, lambda tmp: save_file(tensors, tmp, metadata={"format": FORMAT})),
                            (META, lambda tmp: Path(tmp).write_text(text))):
            fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".tmp")
            os.close(fd)
            staged.append((tmp, out / name))
            write(tmp)
        for tmp, final in staged:
            os.replace(tmp, final)
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
    barrier()
    return out


def _json_default(obj):
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"cannot store {type(obj).__name__} in meta.json")


def read_meta(path: str | os.PathLike) -> dict:
    """meta.json of a checkpoint directory, validated."""
    path = Path(path)
    if not path.is_dir():
        raise MissingFileError(f"checkpoint {str(path)!r} does not exist (expected a directory with {WEIGHTS} and {META})")
    meta_path = path / META
    if not meta_path.is_file():
        raise MissingFileError(f"checkpoint {str(path)!r} has no {META}")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{meta_path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path} is not a prunelora checkpoint (no format: {FORMAT})")
    return meta


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a `.safetensors` file, or of a `.pt/.pth` state dict loaded with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"weights file {str(path)!r} does not exist")
    if path.suffix in (".pt", ".pth", ".bin"):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # weights_only refuses arbitrary pickles: that is the point
            raise CheckpointError(f"{path} is not a plain state dict loadable with weights_only=True ({exc})") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise CheckpointError(f"{path} does not hold a state dict")
        # DataParallel/DDP prefixes
        return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is truncated or not a safetensors file ({exc})") from None


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Load `state` strictly, with one clear line when the architecture or class count differs."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} is of another architecture: {len(missing)} missing tensors (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise CheckpointError(
                f"{source}: tensor {key} has shape {tuple(tensor.shape)}, the model expects "
                f"{tuple(expected[key].shape)} (another architecture or number of classes)"
            )
    model.load_state_dict(state, strict=True)
    return model


def build_model_from_meta(meta: dict) -> nn.Module:
    """The registry model meta.json names; a physically pruned one gets its stored smaller modules
    (`model.pruned`, see `prunelora.pruning.physical`) without running the pruning again."""
    from prunelora.models import create_model
    from prunelora.pruning.physical import rebuild_pruned

    m = meta["model"]
    model = create_model(m["name"], num_classes=m["num_classes"], in_channels=m["in_channels"],
                         image_size=m["image_size"], **m.get("kwargs", {}))
    if m.get("pruned"):
        rebuild_pruned(model, m["pruned"])
    return model


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint directory and load its weights. Returns (model, meta)."""
    meta = read_meta(path)
    state = read_weights(Path(path) / WEIGHTS)
    model = build_model_from_meta(meta)
    load_state_into(model, state, str(path))
    return model.to(map_location).eval(), meta
