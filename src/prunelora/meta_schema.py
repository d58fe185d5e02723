"""The schema of a checkpoint's meta.json: every field's type, range and shape, checked on load.

A checkpoint may come from anyone, and what its meta.json says is built, read or run: the model
and its arguments, the data and where it lies, the recipe a retrain repeats. So `check_meta`
checks the whole file before anything is used, and refuses it with one line naming the field (as
a path, e.g. `dataset.train_subset`), the value (shortened: never an unbounded repr) and what is
accepted. `parse_meta` reads the text, refusing duplicate keys (JSON keeps the last one silently).

Fields may be absent or null where older writers left them so (every older format version stays
readable); keys this version does not know are accepted at the top level and inside `dataset`,
`method`, `cost`, `sparsity` and `original` (a newer writer's additions, kept), never inside
`model`, whose every part reaches a constructor.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from prunelora.data import ForgetSpec
from prunelora.errors import CheckpointError, InvalidInputError
from prunelora.models.arguments import kwargs_problem
from prunelora.models.registry import model_builder
from prunelora.training import TrainConfig
from prunelora.training.distributed import MIXED_PRECISION
from prunelora.training.loop import OPTIMIZERS, SCHEDULES

FORMAT = "prunelora-checkpoint"
FORMAT_VERSION = 1
KINDS = ("original", "retrain", "unlearned")

# What a meta.json may ask to be built (nothing is allocated before the weights are compared).
MODEL_LIMITS = {"num_classes": (2, 100_000), "in_channels": (1, 64), "image_size": (1, 1024)}
MAX_CLASSES = 100_000
SEED_LIMIT = 2**63  # seeds are in [0, 2^63)
MAX_RECORDS = 2**63  # indices into a training set
MAX_TEXT = 4096  # characters of a path or a free text
MAX_NAME = 200  # characters of a name (a metric, a module, a class)
SHOWN = 60  # characters of a refused value shown in a message

# A checkpoint's recipe is bounded like its model: a retrain repeats it.
RECIPE_LIMITS = {"epochs": 10_000, "steps": 10_000_000, "batch_size": 65_536, "lr": 100.0, "weight_decay": 100.0,
                 "grad_clip": 1e6}
# The accuracies a checkpoint measures on parts that are never empty: NaN there is no measurement.
MEASURED = ("UA", "RA", "TA")


_OMIT = object()  # a refusal that names no single value


class _Refused(Exception):
    """A value the schema refuses: where, what, and what is accepted."""

    def __init__(self, path: str, value: Any, accepted: str, missing: bool = False, reason: str | None = None) -> None:
        super().__init__(path)
        self.path, self.value, self.accepted, self.missing, self.reason = path, value, accepted, missing, reason


def shown(value: Any) -> str:
    """A short, printable description of `value` for a message (a long text or a large container
    is never written out whole)."""
    if isinstance(value, str):
        text = repr(value[:SHOWN]) + ("..." if len(value) > SHOWN else "")
    elif isinstance(value, list):
        text = f"a list of {len(value)} items" if len(value) > 8 else repr(value)
    elif isinstance(value, dict):
        text = f"a mapping of {len(value)} keys" if len(value) > 4 else repr(value)
    else:
        text = repr(value)
    return text if len(text) <= 2 * SHOWN else text[:2 * SHOWN] + "..."


Check = Callable[[Any, str], None]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _nullable(check: Check) -> Check:
    def run(value: Any, path: str) -> None:
        if value is not None:
            check(value, path)

    run.accepted = getattr(check, "accepted", "") + " or null"  # type: ignore[attr-defined]
    return run


def _checker(accepted: str, ok: Callable[[Any], bool], nullable: bool = False) -> Check:
    def run(value: Any, path: str) -> None:
        if not ok(value):
            raise _Refused(path, value, accepted)

    run.accepted = accepted  # type: ignore[attr-defined]
    return _nullable(run) if nullable else run


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(low: int, high: int, nullable: bool = False) -> Check:
    """An integer in [low, high] (never a bool)."""
    return _checker(f"an integer in [{low:,}, {high:,}]", lambda v: _is_int(v) and low <= v <= high, nullable)


def number(low: float, high: float, *, low_open: bool = False, high_open: bool = False, nan: bool = False,
           nullable: bool = False) -> Check:
    """A finite number in the interval (NaN too when `nan`; never a bool or a string)."""
    accepted = f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def ok(v: Any) -> bool:
        if not _is_number(v):
            return False
        if isinstance(v, float) and math.isnan(v):
            return nan
        above = v > low if low_open else v >= low
        below = v < high if high_open else v <= high
        return math.isfinite(v) and above and below

    return _checker(accepted + (" or NaN" if nan else ""), ok, nullable)


def text(max_len: int = MAX_TEXT, pattern: str | None = None, choices: tuple[str, ...] = (),
         nullable: bool = False, what: str | None = None) -> Check:
    """A string: one of `choices`, or matching `pattern` (described to the user as `what`), of at
    most `max_len` characters."""
    if choices:
        return _checker("one of " + ", ".join(repr(c) for c in choices), lambda v: v in choices, nullable)
    compiled = re.compile(pattern) if pattern else None
    described = what or (f"matching {pattern}" if pattern else "")
    accepted = f"a string of at most {max_len:,} characters" + (f" {described}" if described else "")
    return _checker(accepted, lambda v: isinstance(v, str) and len(v) <= max_len
                    and (compiled is None or compiled.fullmatch(v) is not None), nullable)


def boolean(nullable: bool = False) -> Check:
    return _checker("true or false", lambda v: isinstance(v, bool), nullable)


def list_of(item: Check, max_len: int, nullable: bool = False) -> Check:
    """A list of at most `max_len` items, each passing `item`."""
    accepted = f"a list of at most {max_len:,} items"

    def run(value: Any, path: str) -> None:
        if not isinstance(value, list) or len(value) > max_len:
            raise _Refused(path, value, accepted)
        for i, entry in enumerate(value):
            item(entry, f"{path}[{i}]")

    run.accepted = accepted  # type: ignore[attr-defined]
    return _nullable(run) if nullable else run


def mapping_of(value_check: Check, max_len: int = 1_000_000, key_pattern: str | None = None,
               nullable: bool = False) -> Check:
    """A mapping of names (at most `MAX_NAME` characters) to values passing `value_check`."""
    accepted = "a mapping of names to " + getattr(value_check, "accepted", "values")
    compiled = re.compile(key_pattern) if key_pattern else None

    def run(value: Any, path: str) -> None:
        if not isinstance(value, dict) or len(value) > max_len:
            raise _Refused(path, value, accepted)
        for key, entry in value.items():
            if not isinstance(key, str) or len(key) > MAX_NAME or (compiled is not None and not compiled.fullmatch(key)):
                raise _Refused(path, key, f"a mapping whose keys are names of at most {MAX_NAME} characters"
                               + (f" matching {key_pattern}" if key_pattern else ""))
            value_check(entry, _join(path, key))

    run.accepted = accepted  # type: ignore[attr-defined]
    return _nullable(run) if nullable else run


def record(fields: Mapping[str, Check], *, required: tuple[str, ...] = (), open_: bool = True,
           nullable: bool = False, then: Callable[[dict, str], None] | None = None) -> Check:
    """A mapping with these `fields` (each optional unless `required`); other keys are accepted
    when `open_` (kept, unread). `then(value, path)` checks what spans several fields."""
    accepted = "a mapping with " + ", ".join(fields)

    def run(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _Refused(path, value, accepted)
        for key in required:
            if key not in value:
                raise _Refused(_join(path, key), None, getattr(fields[key], "accepted", "a value"), missing=True)
        for key, entry in value.items():
            if key in fields:
                fields[key](entry, _join(path, key))
            elif not open_:
                raise _Refused(_join(path, key), entry, "absent: accepted keys are " + ", ".join(fields))
        if then is not None:
            then(value, path)

    run.accepted = accepted  # type: ignore[attr-defined]
    return _nullable(run) if nullable else run


def anything(value: Any, path: str) -> None:
    """Any JSON value (meta.json's size and depth are bounded when it is read)."""


def scalar(value: Any, path: str) -> None:
    """A JSON scalar: null, true/false, a number or a string of at most `MAX_TEXT` characters."""
    if value is None or isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= MAX_TEXT):
        return
    raise _Refused(path, value, "a number, a string, true/false or null")


scalar.accepted = "scalars"  # type: ignore[attr-defined]

# --------------------------------------------------------------------------- the parts of meta.json

SEED = integer(0, SEED_LIMIT - 1)
INDEX = integer(0, MAX_RECORDS - 1)
COUNT = integer(0, MAX_RECORDS - 1)
PRINTABLE, NO_NUL = r"[^\x00-\x1f\x7f]+", r"[^\x00]+"
NO_CONTROL = "without control characters"
RUN_ID = text(128, r"[A-Za-z0-9_.\-]+", what="of letters, digits, '_', '.' and '-'")
SHA256 = text(64, r"[0-9a-f]{64}", what="of 64 hexadecimal digits")
RATE = number(0.0, 1.0)
SIZE = integer(1, 1 << 20)
PAIR = list_of(integer(0, 1 << 20), 4)

_MODULE_FIELDS: dict[str, dict[str, Check]] = {
    "Conv2d": {"in_channels": SIZE, "out_channels": SIZE, "kernel_size": PAIR, "stride": PAIR,
               "padding": lambda v, p: (text(choices=("same", "valid")) if isinstance(v, str) else PAIR)(v, p),
               "dilation": PAIR, "groups": SIZE, "bias": boolean(),
               "padding_mode": text(choices=("zeros", "reflect", "replicate", "circular"))},
    "BatchNorm1d": {"num_features": SIZE, "eps": number(0, 1, low_open=True), "momentum": number(0, 1, nullable=True),
                    "affine": boolean(), "track_running_stats": boolean()},
    "Linear": {"in_features": SIZE, "out_features": SIZE, "bias": boolean()},
    "LayerNorm": {"normalized_shape": list_of(SIZE, 4), "eps": number(0, 1, low_open=True),
                  "elementwise_affine": boolean(), "bias": boolean()},
    "MultiheadAttention": {"embed_dim": SIZE, "num_heads": SIZE, "dropout": RATE, "bias": boolean(),
                           "batch_first": boolean()},
}
_MODULE_FIELDS["BatchNorm2d"] = _MODULE_FIELDS["BatchNorm1d"]
_MODULE_FIELDS["PrunedAttention"] = {**_MODULE_FIELDS["MultiheadAttention"], "head_dim": SIZE}


def _pruned_module(value: Any, path: str) -> None:
    """One smaller module of a physically pruned model: its type and constructor arguments."""
    if not isinstance(value, dict) or value.get("type") not in _MODULE_FIELDS:
        kind = value.get("type") if isinstance(value, dict) else value
        raise _Refused(path if not isinstance(value, dict) else _join(path, "type"), kind,
                       "a module type among " + ", ".join(_MODULE_FIELDS))
    fields = _MODULE_FIELDS[value["type"]]
    record({"type": anything, **fields}, required=tuple(fields), open_=False)(value, path)


_pruned_module.accepted = "a module's type and constructor arguments"  # type: ignore[attr-defined]

PRUNED = record({"format": integer(1, 1), "modules": mapping_of(_pruned_module, 100_000, r"[A-Za-z0-9_.]+")},
                required=("modules",), open_=False, nullable=True)


def _model_kwargs(value: dict, path: str) -> None:
    kwargs = value.get("kwargs")
    if kwargs is None:
        return
    if not isinstance(kwargs, dict):
        raise _Refused(_join(path, "kwargs"), kwargs, "a mapping of the model's declared arguments")
    name = value["name"]
    found = kwargs_problem(name, kwargs, model_builder(name))
    if found is not None:
        key, reason = found
        named = key[:SHOWN] + ("..." if len(key) > SHOWN else "")
        raise _Refused(_join(path, f"kwargs.{named}"), kwargs.get(key), "", reason=reason)


MODEL = record({"name": text(MAX_TEXT, PRINTABLE, what=NO_CONTROL),
                **{key: integer(low, high) for key, (low, high) in MODEL_LIMITS.items()},
                "kwargs": anything, "pruned": PRUNED},
               required=("name", *MODEL_LIMITS), open_=False, then=_model_kwargs)

DATASET = record({
    "name": text(MAX_TEXT, PRINTABLE, what=NO_CONTROL), "classes": list_of(text(1000), MAX_CLASSES, nullable=True),
    "num_classes": integer(2, MAX_CLASSES), "in_channels": integer(1, 64), "image_size": integer(1, 1024),
    "normalization": record({"mean": list_of(number(-1e6, 1e6), 64), "std": list_of(number(0, 1e6, low_open=True), 64)},
                            nullable=True),
    "train_size": COUNT, "test_size": COUNT, "digest": text(71, r"sha256:[0-9a-f]{64}", nullable=True, what="'sha256:' and 64 hexadecimal digits"),
    "data_dir": text(MAX_TEXT, NO_NUL, nullable=True, what="without NUL"), "val_fraction": number(0.0, 1.0, high_open=True),
    "split_seed": SEED,
    "train_subset": record({"size": integer(1, MAX_RECORDS - 1), "seed": SEED, "of": integer(1, MAX_RECORDS - 1)},
                           required=("size",), open_=False, nullable=True),
    "val_indices": list_of(INDEX, 100_000_000, nullable=True),
    "source": text(MAX_TEXT, nullable=True), "factory": text(MAX_TEXT, nullable=True),
})


def _forget_semantics(value: dict, path: str) -> None:
    try:
        ForgetSpec.from_dict(value)
    except InvalidInputError as exc:
        raise _Refused(path, _OMIT, "", reason=f"is not a valid forget request: {exc}") from None


FORGET = record({"kind": text(choices=("class", "fraction", "indices")),
                 "classes": list_of(integer(0, MAX_CLASSES - 1), MAX_CLASSES),
                 "fraction": number(0.0, 1.0, high_open=True), "indices": list_of(INDEX, 100_000_000),
                 "seed": SEED, "source": text(MAX_TEXT)},
                required=("kind",), open_=False, nullable=True, then=_forget_semantics)


def _recipe_semantics(value: dict, path: str) -> None:
    try:
        TrainConfig.from_dict(value)
    except InvalidInputError as exc:
        raise _Refused(path, _OMIT, "", reason=f"is not a valid training recipe: {exc}") from None


RECIPE = record({
    "epochs": number(0, RECIPE_LIMITS["epochs"], low_open=True), "steps": integer(1, RECIPE_LIMITS["steps"], True),
    "batch_size": integer(1, RECIPE_LIMITS["batch_size"]), "optimizer": text(choices=OPTIMIZERS),
    "lr": number(0, RECIPE_LIMITS["lr"], low_open=True), "momentum": number(0, 1),
    "weight_decay": number(0, RECIPE_LIMITS["weight_decay"]), "schedule": text(choices=SCHEDULES),
    "warmup_fraction": number(0, 1, high_open=True),
    "grad_clip": number(0, RECIPE_LIMITS["grad_clip"], low_open=True, nullable=True),
    "label_smoothing": number(0, 1, high_open=True), "augment": boolean(), "seed": SEED,
    "mixed_precision": text(choices=MIXED_PRECISION),
}, nullable=True, then=_recipe_semantics)


def _metric(value: Any, path: str) -> None:
    """A recorded metric: a number, finite, or NaN where the part measured may be empty (val, FA)."""
    name = path.split(".", 1)[-1]  # the metric's own name (it may hold dots: Probe-FA@layers.1)
    number(-1e18, 1e18, nan=name not in MEASURED, nullable=True)(value, path)


_metric.accepted = "numbers"  # type: ignore[attr-defined]

METRICS = mapping_of(_metric, 100_000, nullable=True)
COST = record({"wall_time_s": number(0, 1e9, low_open=True), "steps": COUNT,
               "peak_memory_mb": number(0, 1e12, nan=True), "trainable_params": COUNT}, nullable=True)
SPARSITY = record({"overall": RATE, "pruned_layers": RATE,
                   "layers": mapping_of(mapping_of(number(0, MAX_RECORDS, nan=True)), 100_000)}, nullable=True)
METHOD = record({"name": text(100, r"[A-Za-z0-9_.:+\-]+", what="of letters, digits and _.:+-"), "config": mapping_of(anything, 10_000),
                 "requested": mapping_of(anything, 10_000)}, required=("name",), nullable=True)
HISTORY = list_of(mapping_of(scalar, 1_000), 10_000_000, nullable=True)
ORIGINAL = record({"path": text(MAX_TEXT, NO_NUL, nullable=True, what="without NUL"), "run_id": RUN_ID},
                  nullable=True)
VERSIONS = mapping_of(text(200, PRINTABLE, what=NO_CONTROL), 1_000, nullable=True)

META_FIELDS: dict[str, Check] = {
    "kind": text(choices=KINDS, nullable=True), "run_id": _nullable(RUN_ID), "model": MODEL,
    "dataset": _nullable(DATASET), "forget": FORGET, "recipe": RECIPE, "seed": _nullable(SEED), "method": METHOD,
    "metrics": METRICS, "cost": COST, "sparsity": SPARSITY, "history": HISTORY, "original": ORIGINAL,
    "created": text(64, PRINTABLE, nullable=True, what=NO_CONTROL), "versions": VERSIONS,
    "weights_sha256": _nullable(SHA256),
}


def _message(source: str, refused: _Refused) -> str:
    if refused.missing:
        return f"{source}: {refused.path} is missing; expected {refused.accepted}"
    if refused.reason is not None:
        value = "" if refused.value is _OMIT else f" {shown(refused.value)}"
        return f"{source}: {refused.path}{value} {refused.reason}"
    return f"{source}: {refused.path} {shown(refused.value)} is not accepted; expected {refused.accepted}"


def check_part(check: Check, value: Any, path: str, source: str) -> None:
    """Run one schema `check` on `value` (found at `path`), as one `CheckpointError` line."""
    try:
        check(value, path)
    except _Refused as refused:
        raise CheckpointError(_message(source, refused)) from None


def check_meta(data: Any, source: str) -> None:
    """Refuse, with one line, a meta.json this code cannot trust.

    Not a prunelora checkpoint, a format version it does not know, or any field of the wrong type,
    out of range or of the wrong shape; a checkpoint of a known kind must name its model and data.

    Args:
        data: meta.json as parsed (`parse_meta`).
        source: the file, for the message.

    Raises:
        CheckpointError: the first field refused: its path, its value (shortened) and what is accepted.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{source} is not a prunelora checkpoint (no format: {FORMAT})")
    written = data.get("format_version")
    if isinstance(written, bool) or not isinstance(written, int) or written < 1:
        raise CheckpointError(f"{source}: format_version {shown(written)} is not a positive integer")
    if written > FORMAT_VERSION:
        raise CheckpointError(f"{source} has format_version {written}, newer than this prunelora reads "
                              f"(up to {FORMAT_VERSION}); upgrade prunelora")
    if not isinstance(data.get("model"), dict):
        raise CheckpointError(f"{source}: model {shown(data.get('model'))} is not accepted; expected {MODEL.accepted}"
                              if "model" in data else f"{source}: model is missing; expected {MODEL.accepted}")
    for key, check in META_FIELDS.items():
        if key in data:
            check_part(check, data[key], key, source)
    kind = data.get("kind")
    if kind in KINDS and data.get("dataset") is None:
        raise CheckpointError(f"{source}: dataset is {'null' if 'dataset' in data else 'missing'}; a checkpoint "
                              f"of kind {kind!r} records the data it was trained on")
    if kind in KINDS and "name" not in data["dataset"]:
        raise CheckpointError(f"{source}: dataset.name is missing; a checkpoint of kind {kind!r} names its data")


def check_model_record(model: Any, source: str) -> None:
    """The `model` part alone (see `check_meta`)."""
    check_part(MODEL, model, "model", source)


def check_reference_metrics(metrics: Any, label: str = "reference") -> None:
    """Refuse metrics to compare with that are not numbers: a string, a bool, ±inf, or NaN where a
    measurement cannot be missing (UA, RA, TA).

    Raises:
        InvalidInputError: the first refused metric, named.
    """
    try:
        mapping_of(_metric, 100_000)(dict(metrics) if isinstance(metrics, Mapping) else metrics, label)
    except _Refused as refused:
        raise InvalidInputError(f"{refused.path} {shown(refused.value)} is not accepted; "
                                f"expected {refused.accepted}") from None


def parse_meta(text_: str, source: str) -> Any:
    """meta.json's text parsed, refusing a key given twice in one mapping and integers too long to
    convert (one `CheckpointError` line); syntax errors are `json.JSONDecodeError`."""
    def unique(pairs: list[tuple[str, Any]]) -> dict:
        out = dict(pairs)
        if len(out) != len(pairs):
            seen: set[str] = set()
            twice = next(key for key, _ in pairs if key in seen or seen.add(key))
            raise CheckpointError(f"{source}: key {shown(twice)} is given twice in one mapping")
        return out

    try:
        return json.loads(text_, object_pairs_hook=unique)
    except json.JSONDecodeError:
        raise
    except CheckpointError:
        raise
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise CheckpointError(f"{source} is not valid JSON ({str(exc)[:SHOWN]})") from None
