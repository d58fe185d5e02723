"""Checkpoints: a directory with `model.safetensors` and `meta.json`. Loading never unpickles.

meta.json records everything needed to rebuild and judge the model: architecture and its
arguments, dataset and normalisation, forget spec, training recipe, seed, metrics, wall time and
library versions. Every file is written to a temporary name in the same folder and renamed, so an
interrupted save leaves the previous checkpoint intact; meta.json records the SHA-256 of the weights
it belongs to, so a pair mixed by an interruption between the two renames is refused on load.

meta.json is one `CheckpointMeta`: built by `train` (an original) or `CheckpointMeta.unlearned`
(any method's result, the benchmark's cached retrains included), written by `save_checkpoint`, and
read back through `read_meta` / `CheckpointMeta.read`.

Loading treats both files as untrusted: meta.json's format version, types and sizes are checked, the
model is first built on the `meta` device (no memory) and its tensor shapes compared with the
safetensors header, and only then allocated; NaN or infinite weights are refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import stat
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from prunelora.errors import (
    CheckpointError,
    InvalidInputError,
    MissingFileError,
    OutputError,
    parse_text_file,
)
from prunelora.meta_schema import (  # meta.json's format and schema
    FORMAT,
    FORMAT_VERSION,
    MODEL_LIMITS,  # noqa: F401  (re-exported: what a meta.json may ask)
    check_meta,
    check_model_record,
    parse_meta,
    shown,
)
from prunelora.models import create_model
from prunelora.models.arguments import MAX_ARGUMENT as MAX_MODEL_KWARG  # noqa: F401  (re-exported)
from prunelora.pruning import merge_architecture, rebuild_pruned
from prunelora.training.distributed import barrier, is_main_process

WEIGHTS, META = "model.safetensors", "meta.json"

# What a meta.json may ask to be built is bounded by its schema (`prunelora.meta_schema`): a hostile
# file must not make the loader allocate without bound before the weights are compared.
MAX_META_BYTES = 64 * 2**20
# A model larger than this is refused before it is allocated (4 GB of float32 weights).
MAX_PARAMETERS = 1_000_000_000


def run_id(payload: dict) -> str:
    """A short stable hash of what defines a run (used to recognise the same run on re-execution)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def unlearned_run_id(original_run_id: str | None, forget: dict, method: str, config: dict) -> str:
    """The identity of an unlearning run: which original, what it forgets, with which method and
    options. Known before the method runs, so that an `--out` holding this very run is accepted."""
    return run_id({"kind": "unlearned", "original": original_run_id, "forget": forget, "method": method,
                   "config": config})


def timestamp() -> str:
    """Local time as meta.json's `created` records it (e.g. 2024-05-01T12:30:00)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S")


# meta.json's keys in the order they are written; the first six are written even when null.
_WRITTEN_ALWAYS = ("kind", "model", "dataset", "forget", "recipe", "seed")
_CONTENT_ORDER = ("kind", "run_id", "model", "dataset", "forget", "recipe", "seed", "method", "metrics", "cost",
                  "sparsity", "history", "original", "created")


class _RecordView(Mapping):
    """A typed record read through its attributes; also a read-only mapping of what meta.json holds
    (how earlier versions returned it, so that code indexing the dict keeps working)."""

    def _view(self) -> dict:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self._view()[key]

    def __iter__(self):
        return iter(self._view())

    def __len__(self) -> int:
        return len(self._view())


@dataclass(frozen=True, eq=False)
class ModelRecord(_RecordView):
    """meta.json's `model`: the registry name and arguments that rebuild the model, and `pruned`,
    the smaller modules of a physically pruned one. `data` is the record as written (kept whole,
    so that reading then writing a checkpoint changes nothing)."""

    data: dict

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def num_classes(self) -> int:
        return self.data["num_classes"]

    @property
    def in_channels(self) -> int:
        return self.data["in_channels"]

    @property
    def image_size(self) -> int:
        return self.data["image_size"]

    @property
    def kwargs(self) -> dict:
        return self.data.get("kwargs") or {}

    @property
    def pruned(self) -> dict | None:
        return self.data.get("pruned")

    def _view(self) -> dict:
        return self.data

    def to_dict(self) -> dict:
        return dict(self.data)


@dataclass(frozen=True, eq=False)
class DatasetRecord(_RecordView):
    """meta.json's `dataset` (see `prunelora.api.dataset_record`): the data's name and identity and
    the split the original held out. `data` is the record as written."""

    data: dict

    @property
    def name(self) -> str | None:
        return self.data.get("name")

    @property
    def classes(self) -> list | None:
        return self.data.get("classes")

    @property
    def image_size(self) -> int:
        return self.data.get("image_size", 32)

    @property
    def digest(self) -> str | None:
        return self.data.get("digest")

    @property
    def data_dir(self) -> str | None:
        return self.data.get("data_dir")

    @property
    def val_fraction(self) -> float:
        return self.data.get("val_fraction", 0.1)

    @property
    def split_seed(self) -> int:
        return self.data.get("split_seed", 0)

    @property
    def train_subset(self) -> dict | None:
        return self.data.get("train_subset")

    @property
    def val_indices(self) -> list[int] | None:
        return self.data.get("val_indices")

    def _view(self) -> dict:
        return self.data

    def to_dict(self) -> dict:
        return dict(self.data)


@dataclass(eq=False)
class CheckpointMeta(_RecordView):
    """The content of meta.json: what rebuilds a checkpoint's model and what judges it.

    `kind` is "original", "retrain" or "unlearned"; `model` the registry entry and its arguments
    (plus `pruned`, the smaller modules of a physically pruned model); `dataset` the data and its
    identity (`prunelora.api.dataset_record`); `forget` a `ForgetSpec.to_dict()` (None for an
    original); `recipe` the `TrainConfig` of the original (a retrain repeats it). `extra` holds keys
    this version does not know (a newer writer's): kept, written back.
    `format_version`, `versions` and `weights_sha256` are set by `save_checkpoint` and read back.
    """

    kind: str | None = None
    model: ModelRecord | dict = field(default_factory=dict)
    dataset: DatasetRecord | dict | None = None
    forget: dict | None = None
    recipe: dict | None = None
    seed: int | None = None
    run_id: str | None = None
    method: dict | None = None
    metrics: dict | None = None
    cost: dict | None = None
    sparsity: dict | None = None
    history: list | None = None
    original: dict | None = None
    created: str | None = None
    extra: dict = field(default_factory=dict)
    format_version: int | None = None
    versions: dict | None = None
    weights_sha256: str | None = None
    # the keys of the mapping this record was read from: `as_json` shows a file as it was written
    read_keys: frozenset | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # typed parts, whether given as records or as the dicts meta.json holds
        if isinstance(self.model, dict):
            self.model = ModelRecord(self.model)
        if isinstance(self.dataset, dict):
            self.dataset = DatasetRecord(self.dataset)

    @property
    def original_run_id(self) -> str | None:
        """The run id of the original this checkpoint descends from (its own for an original)."""
        return (self.original or {}).get("run_id") or self.run_id

    def _view(self) -> dict:
        return self.as_json()

    def as_json(self) -> dict:
        """meta.json as read: the format keys, the content and the versions and weights digest
        `save_checkpoint` added (those absent from a record not saved yet)."""
        file_keys = {"format": FORMAT} if self.format_version is not None else {}
        if self.format_version is not None:
            file_keys["format_version"] = self.format_version
        tail = {k: getattr(self, k) for k in ("versions", "weights_sha256") if getattr(self, k) is not None}
        view = {**file_keys, **self.to_dict(), **tail}
        if self.read_keys is not None:  # a key the file lacked is not shown as null
            view = {k: v for k, v in view.items() if k in self.read_keys or v is not None}
        return view

    @classmethod
    def unlearned(cls, original: Mapping, *, forget: dict, method: dict, cost: dict, seed: int | None,
                  sparsity: dict | None = None, history: list | None = None, metrics: dict | None = None,
                  architecture: dict | None = None, original_path: str | os.PathLike | None = None,
                  ) -> CheckpointMeta:
        """The meta.json of a method's result on the checkpoint whose meta.json is `original`.

        `method` is `{"name", "config"}` (the unlearning record's: the config as run, and
        `requested`, the caller's, when the method changed it; the run id is the request's);
        `architecture` the smaller
        modules of a physically pruned result (merged into `model.pruned`), `original_path` where
        the original lies (recorded for `prunelora eval`'s relearning). The run id is
        `unlearned_run_id` of the same inputs.
        """
        if not isinstance(original, CheckpointMeta):
            original = CheckpointMeta.from_dict(original)
        model = original.model.to_dict()
        if architecture:  # physically pruned: store the smaller modules to rebuild it
            model["pruned"] = merge_architecture(model.get("pruned"), architecture)
        source = {"run_id": original.run_id}
        if original_path is not None:
            source = {"path": str(original_path), **source}
        return cls(kind="retrain" if method["name"] == "retrain" else "unlearned",
                   run_id=unlearned_run_id(original.run_id, forget, method["name"],
                                           method.get("requested", method["config"])),
                   model=model, dataset=original.dataset, forget=forget, recipe=original.recipe,
                   seed=seed, method=method, metrics=metrics, cost=cost, sparsity=sparsity,
                   history=[] if history is None else history, original=source, created=timestamp())

    @classmethod
    def from_dict(cls, data: Mapping) -> CheckpointMeta:
        """A meta.json mapping as read (any format version up to this one); unknown keys go to `extra`."""
        known = {f.name for f in fields(cls)} - {"extra", "read_keys"}
        values = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known and k != "format"}
        return cls(**values, extra=extra, read_keys=frozenset(data))

    @classmethod
    def read(cls, path: str | os.PathLike) -> CheckpointMeta:
        """The checked meta.json of the checkpoint directory `path` (see `read_meta`)."""
        return read_meta(path)

    def to_dict(self) -> dict:
        """The content of meta.json (without the keys `save_checkpoint` adds), in its written order."""
        out = {key: getattr(self, key) for key in _CONTENT_ORDER
               if key in _WRITTEN_ALWAYS or getattr(self, key) is not None}
        for key in ("model", "dataset"):  # the typed parts, as the plain mappings meta.json holds
            if isinstance(out.get(key), _RecordView):
                out[key] = out[key].to_dict()
        return {**out, **self.extra}

    def file_dict(self, weights_sha256: str) -> dict:
        """What meta.json holds on disk: the format, this content, the library versions, the weights' digest."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **self.to_dict(),
                "versions": library_versions(), "weights_sha256": weights_sha256}

    @staticmethod
    def check(data: Any, source: str) -> None:
        """Refuse, with one line, a meta.json this code cannot trust: not a prunelora checkpoint, a
        format version it does not know, or any field of the wrong type, range or shape (the schema
        of `prunelora.meta_schema`: the model's declared arguments, the recipe's bounds, ...).
        Every older format version stays readable."""
        check_meta(data, source)


def library_versions() -> dict[str, str]:
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
    if not collective:
        _write_text(Path(path), text)
        return
    if is_main_process():
        _write_text(Path(path), text)
    barrier()


# The temporary name of an atomic write (`tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")`): what a
# process killed mid-write (SIGKILL, a power cut) leaves behind, and nothing a user would name.
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp|\.prunelora-probe-[a-z0-9_]{8}")


def is_leftover(entry: Path) -> bool:
    """`entry` is a temporary file or probe folder a stopped prunelora write left: a folder holding
    only these is as good as empty (the same command, run again, may use it)."""
    try:
        mode = entry.lstat().st_mode
    except OSError:
        return False
    return bool(_TEMPORARY.fullmatch(entry.name)) and (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def holds_results(folder: Path) -> bool:
    """`folder` holds anything but what `is_leftover` recognises."""
    return any(not is_leftover(entry) for entry in folder.iterdir())


def refuse_special_file(path: Path, label: str) -> None:
    """Refuse, with one line, an existing `path` that is not a regular file: a device (/dev/null,
    /dev/full), a FIFO, a socket, or a symbolic link (/dev/stdout). Replacing one by a rename
    destroys it (as root, the device itself); writing through one writes somewhere else."""
    try:
        mode = path.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # absent (a parent that is a file: the caller says so)
        return
    except OSError as exc:
        raise OutputError(f"{label} {str(path)!r} cannot be examined ({exc.strerror or exc})") from None
    if stat.S_ISLNK(mode):
        raise OutputError(f"{label} {str(path)!r} is a symbolic link; give the path of a regular file "
                          "(prunelora writes only regular files and folders)")
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise OutputError(f"{label} {str(path)!r} is a device, FIFO or socket, not a regular file; give the path "
                          "of a regular file (prunelora writes only regular files and folders)")


def _write_text(path: Path, text: str) -> None:
    refuse_special_file(path, "output")  # before the rename would replace it
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        Path(tmp).write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def check_writable(path: str | os.PathLike, label: str = "--out", kind: str = "directory") -> Path:
    """Refuse, with one line, a `path` where a `kind` ("directory" or "file") cannot be written:
    an empty path, a dangling or looping symbolic link, a parent that is a file, an existing path of
    the other kind, or a folder where nothing can be created (read-only, /proc, no permission).

    Called before any work, so that a long run never ends in a failed write. Leaves nothing behind
    (the probe is an empty folder, removed at once).
    """
    text = str(path)
    if not text.strip():
        raise InvalidInputError(f"{label} is empty; give the path of a {kind}")
    target = Path(path)
    if kind == "file":  # a file is written only as a regular file, into a folder that exists
        refuse_special_file(target, label)
        if not target.parent.exists() and not target.parent.is_symlink():  # (a dangling link: below)
            raise OutputError(f"{label} {text!r}: the folder {str(target.parent)!r} does not exist")
    probe_in = None
    for candidate in (target, *target.parents):
        try:
            dangling = candidate.is_symlink() and not candidate.exists()
            exists = candidate.exists()
        except OSError as exc:  # e.g. a name too long, or a component that cannot be examined
            raise OutputError(f"{label} {text!r} cannot be examined ({exc.strerror or exc})") from None
        if dangling:
            raise OutputError(f"{label} {text!r}: {str(candidate)!r} is a symbolic link that leads nowhere "
                              "(dangling or a loop)")
        if not exists:
            continue
        if candidate == target:
            if kind == "directory" and not candidate.is_dir():
                raise InvalidInputError(f"{label} {text!r} exists and is not a directory")
            if kind == "file" and candidate.is_dir():
                raise InvalidInputError(f"{label} {text!r} is a directory; give a file name")
            probe_in = candidate if candidate.is_dir() else candidate.parent
        elif not candidate.is_dir():
            raise InvalidInputError(f"{label} {text!r}: {str(candidate)!r} is not a directory")
        else:
            probe_in = candidate
        break
    if probe_in is None:
        probe_in = Path.cwd()
    try:
        os.rmdir(tempfile.mkdtemp(dir=probe_in, prefix=".prunelora-probe-"))
    except OSError as exc:
        raise OutputError(f"{label} {text!r} cannot be written: {exc.strerror or exc} in {str(probe_in)!r}") from None
    return target


def _run_id_in(folder: Path, marker: str) -> str | None:
    try:
        data = json.loads((folder / marker).read_text())
    except (OSError, ValueError, RecursionError):  # unreadable, not JSON (or not UTF-8), nested too deeply
        return None
    return data.get("run_id") if isinstance(data, dict) else None


def check_output_dir(out: str | os.PathLike, run_id: str | None = None, overwrite: bool = False,
                     label: str = "--out", marker: str = META) -> Path:
    """Refuse an `out` that cannot be written, or that already holds a different run unless
    `overwrite`. Creates nothing: the directory appears only when the result is saved, so a failed
    run leaves no trace.

    A directory whose `marker` file (meta.json) records the same `run_id` is accepted (re-running a
    command).
    """
    out = check_writable(out, label, "directory")
    # (temporary files a stopped save left do not make a run: the same command may run again)
    if out.is_dir() and holds_results(out) and not overwrite:
        if run_id is None or _run_id_in(out, marker) != run_id:
            raise InvalidInputError(
                f"{label} directory {str(out)!r} already holds a different run; choose another {label} or pass --overwrite"
            )
    return out


def state_dict_for_saving(model: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage; clone makes each tensor its own.
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def check_finite(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or infinity: such a model predicts nothing meaningful, and its
    metrics (e.g. UA 100 from argmax over NaN) would look like a success."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{source}: tensor {key} holds NaN or infinite values; "
                                  "such a model cannot be evaluated or unlearned")


def _sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(model: nn.Module, out: str | os.PathLike, meta: CheckpointMeta | dict[str, Any]) -> Path:
    """Save `model` and `meta` (a `CheckpointMeta`, or its `to_dict()`) into the directory `out`.

    Both files are fully written to temporary names before either is renamed into place, so a
    failure (disk full, a meta value JSON cannot hold, Ctrl-C) leaves a previous checkpoint intact,
    and a directory this call created is removed again. meta.json records the weights' SHA-256, so
    an interruption between the two renames gives a pair that refuses to load, never a mixed one.
    Under several processes only the main one writes; the others wait until it has.

    Args:
        model: the model to save (its state dict goes to `model.safetensors`).
        out: the checkpoint directory.
        meta: what meta.json holds: architecture, data, recipe, method, metrics...

    Returns:
        The checkpoint directory.

    Raises:
        CheckpointError: non-finite weights.
        OutputError: `out` cannot be written.
    """
    if not is_main_process():
        barrier()
        return Path(out)
    if not isinstance(meta, CheckpointMeta):
        meta = CheckpointMeta.from_dict(meta)
    if "name" not in meta.model:
        raise ValueError("meta must describe the model: {'model': {'name': ..., 'num_classes': ...}}")
    out = Path(out)
    tensors = state_dict_for_saving(model)
    check_finite(tensors, f"refusing to save {out}")
    first_new = next((p for p in reversed((out, *out.parents)) if not p.exists()), None)
    staged: list[tuple[str, Path]] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, weights_tmp = tempfile.mkstemp(dir=out, prefix=f".{WEIGHTS}.", suffix=".tmp")
        os.close(fd)
        staged.append((weights_tmp, out / WEIGHTS))
        save_file(tensors, weights_tmp, metadata={"format": FORMAT})
        text = json.dumps(meta.file_dict(_sha256_file(weights_tmp)), indent=2, default=_json_default) + "\n"
        fd, meta_tmp = tempfile.mkstemp(dir=out, prefix=f".{META}.", suffix=".tmp")
        os.close(fd)
        staged.append((meta_tmp, out / META))
        Path(meta_tmp).write_text(text)
        for tmp, final in staged:
            os.replace(tmp, final)
    except (OSError, SafetensorError) as exc:
        _remove_staged(staged, out, first_new)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OutputError(f"cannot write the checkpoint {str(out)!r}: {reason}") from None
    except BaseException:
        _remove_staged(staged, out, first_new)
        raise
    barrier()
    return out


def _remove_staged(staged: list[tuple[str, Path]], out: Path, first_new: Path | None) -> None:
    """After a failed save: remove the temporary files, then the folders this save created."""
    for tmp, _ in staged:
        Path(tmp).unlink(missing_ok=True)
    if first_new is None:
        return
    folder = out
    while True:
        try:
            folder.rmdir()  # only ever an empty folder
        except OSError:
            return
        if folder == first_new:
            return
        folder = folder.parent


def _json_default(obj):
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"cannot store {type(obj).__name__} in meta.json")


def read_meta(path: str | os.PathLike) -> CheckpointMeta:
    """meta.json of a checkpoint directory, after `CheckpointMeta.check`: a prunelora checkpoint of
    a format version this code knows, whose model fields have the right types and sane sizes.

    Returned typed (`meta.model.num_classes`, `meta.dataset.digest`); it also reads as the mapping
    meta.json holds (`meta["model"]["num_classes"]`), as earlier versions returned it."""
    path = Path(path)
    if not path.is_dir():
        raise MissingFileError(f"checkpoint {str(path)!r} does not exist (expected a directory with {WEIGHTS} and {META})")
    meta_path = path / META
    if not meta_path.is_file():
        raise MissingFileError(f"checkpoint {str(path)!r} has no {META}")
    if meta_path.stat().st_size > MAX_META_BYTES:
        raise CheckpointError(f"{meta_path} is {meta_path.stat().st_size} bytes; a meta.json is at most "
                              f"{MAX_META_BYTES // 2**20} MiB")
    meta = parse_text_file(meta_path, lambda text: parse_meta(text, str(meta_path)), json.JSONDecodeError,
                           lambda exc: f"not valid JSON ({exc.msg} at line {exc.lineno})", CheckpointError,
                           str(meta_path), too_deep="nested too deeply to be a meta.json")
    CheckpointMeta.check(meta, str(meta_path))
    return CheckpointMeta.from_dict(meta)


def check_model_meta(model: Any, source: str) -> None:
    """The `model` record of a meta.json: a name, integer sizes within `MODEL_LIMITS`, the
    arguments the model declares (each within bounds; never one that loads weights or a file), and
    a well-formed `pruned` architecture (see `prunelora.meta_schema`)."""
    check_model_record(model, source)


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


def read_weight_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from a safetensors header, without reading (or allocating) the tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is truncated or not a safetensors file ({exc})") from None


def check_shapes(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], source: str) -> None:
    """One clear line when the tensors of a file do not fit the model (names, then shapes)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:  # a header's names can be long: each is shortened (see meta_schema.shown)
        raise CheckpointError(
            f"{source} is of another architecture: {len(missing)} missing tensors (e.g. "
            f"{', '.join(shown(k) for k in missing[:2])}), {len(unexpected)} unexpected "
            f"(e.g. {', '.join(shown(k) for k in unexpected[:2])})"
        )
    for key, shape in found.items():
        if tuple(shape) != tuple(expected[key]):
            raise CheckpointError(
                f"{source}: tensor {key} has shape {tuple(shape)}, the model expects "
                f"{tuple(expected[key])} (another architecture or number of classes)"
            )


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Load `state` strictly, with one clear line when the architecture or class count differs."""
    check_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()},
                 {k: tuple(v.shape) for k, v in state.items()}, source)
    model.load_state_dict(state, strict=True)
    return model


def build_model_from_meta(meta: CheckpointMeta | Mapping, device: str | torch.device | None = None) -> nn.Module:
    """The registry model meta.json names; a physically pruned one gets its stored smaller modules
    (`model.pruned`, see `prunelora.pruning.architecture`) without running the pruning again.

    `device="meta"` builds it without allocating memory (to compare shapes, or count parameters).
    """
    m = meta.model if isinstance(meta, CheckpointMeta) else ModelRecord(meta["model"])
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = create_model(m.name, num_classes=m.num_classes, in_channels=m.in_channels,
                             image_size=m.image_size, **m.kwargs)
        if m.pruned:
            rebuild_pruned(model, m.pruned)
    return model


def check_model_size(build, what: str) -> None:
    """Build a model on the `meta` device with `build()` (no memory) and refuse one above
    `MAX_PARAMETERS` before anything is allocated."""
    with torch.device("meta"):
        probe = build()
    count = sum(p.numel() for p in probe.parameters()) + sum(b.numel() for b in probe.buffers())
    if count > MAX_PARAMETERS:
        raise InvalidInputError(f"{what} would have {count:,} parameters; at most {MAX_PARAMETERS:,} are built")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild the model of a checkpoint directory and load its weights; never unpickles.

    Nothing is allocated before the safetensors header has been compared with the model meta.json
    describes (built on the `meta` device); the weights must match meta.json's digest of them
    (when it records one) and be finite.

    Args:
        path: the checkpoint directory (`model.safetensors` + `meta.json`).
        map_location: the device the weights are loaded to.

    Returns:
        `(model, meta)`: the model, ready to use, and meta.json as a `CheckpointMeta`.

    Raises:
        MissingFileError: the directory or one of its files does not exist.
        CheckpointError: a truncated, foreign, non-finite or too new checkpoint, or one that does
            not fit its meta.json.

    Example:
        ```python
        model, meta = prunelora.load_checkpoint("runs/original")
        ```
    """
    meta = read_meta(path)
    return load_model(path, meta, map_location), meta


def load_model(path: str | os.PathLike, meta: CheckpointMeta, map_location: str | torch.device = "cpu") -> nn.Module:
    """The model of the checkpoint directory `path`, whose meta.json `meta` was already read (by
    `read_meta`): `load_checkpoint` without reading meta.json again.

    Args:
        path: the checkpoint directory.
        meta: its meta.json, as `read_meta(path)` returned it.
        map_location: where the model is placed.

    Returns:
        The model in eval mode.

    Raises:
        MissingFileError: the weights file is missing.
        CheckpointError: the weights do not fit the architecture, are not the ones meta.json was
            written with, or are not finite.
    """
    weights = Path(path) / WEIGHTS
    if not weights.is_file():
        raise MissingFileError(f"checkpoint {str(path)!r} has no {WEIGHTS}")
    shapes = read_weight_shapes(weights)
    skeleton = build_model_from_meta(meta, device="meta")
    check_shapes({k: tuple(v.shape) for k, v in skeleton.state_dict().items()}, shapes, str(path))
    del skeleton
    state = read_weights(weights)
    recorded = meta.weights_sha256
    if recorded is not None and recorded != _sha256_file(weights):
        raise CheckpointError(f"{path}: {WEIGHTS} is not the file {META} was written with (its SHA-256 "
                              "differs): an interrupted or mixed save; restore both files together")
    check_finite(state, str(path))
    model = build_model_from_meta(meta)
    load_state_into(model, state, str(path))
    # finite as stored is not finite as loaded: 1e300 in a float64 tensor becomes inf in float32
    check_finite(model.state_dict(), f"{path} (after loading into the model's {_float_dtypes(model)} tensors)")
    return model.to(map_location).eval()


def _float_dtypes(model: nn.Module) -> str:
    return "/".join(sorted({str(t.dtype).removeprefix("torch.") for t in model.state_dict().values()
                            if t.is_floating_point()})) or "float"
