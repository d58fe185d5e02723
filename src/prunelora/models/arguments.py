"""What each model declares it accepts as keyword arguments, checked before anything is built.

A model's arguments reach a constructor: from the command line (`--model-arg`) and from a
checkpoint's meta.json (`model.kwargs`), which may be hostile. So only declared arguments are
accepted, each a scalar of its declared type within bounds:

- a registered model (`resnet20`, `vit-tiny`, ...) declares its builder's own keyword arguments
  (`width`, `patch_size`, `dropout`, `depth`), typed by their annotations;
- `torchvision:<name>` and `timm:<name>` accept the scalar options listed in `TORCHVISION_ARGS` and
  `TIMM_ARGS` (dropout rates, widths, sizes) — never a path, a file, a URL, or an argument that
  selects weights (`pretrained`, `weights`, `weights_backbone`, `checkpoint_path`, ...);
- a user's `factory:` model (trusted code named on the command line) takes any scalar.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prunelora.errors import InvalidInputError

# The magnitude of any number among a model's arguments (widths, depths, patch sizes, rates).
MAX_ARGUMENT = 1024
MAX_TEXT = 64  # characters of a string argument
# The builder's own parameters, given by prunelora from the data, never by a user or a checkpoint.
_DATA_PARAMETERS = ("num_classes", "in_channels", "image_size")
# Words that mark an argument choosing what is read or fetched rather than what is built.
_LOADING_WORDS = ("pretrain", "weight", "checkpoint", "path", "file", "url", "dir", "cache", "hub", "download")


@dataclass(frozen=True)
class Arg:
    """One declared argument: its kind (`float`, `int`, `bool`, `str`), bounds, choices, and
    whether null is accepted."""

    kind: type
    low: float = -MAX_ARGUMENT
    high: float = MAX_ARGUMENT
    choices: tuple[str, ...] = ()
    nullable: bool = False

    def problem(self, value: object) -> str | None:
        """Why `value` is refused (what is accepted), or None when it is accepted."""
        if value is None:
            return None if self.nullable else f"must be {self.describe()}"
        if self.kind is bool:
            ok = isinstance(value, bool)
        elif self.kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high
        elif self.kind is float:
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                  and self.low <= value <= self.high)
        else:
            ok = isinstance(value, str) and (value in self.choices if self.choices else len(value) <= MAX_TEXT)
        return None if ok else f"must be {self.describe()}"

    def describe(self) -> str:
        null = " or null" if self.nullable else ""
        if self.kind is bool:
            return "true or false" + null
        if self.kind is str:
            return ("one of " + ", ".join(repr(c) for c in self.choices) if self.choices
                    else f"a string of at most {MAX_TEXT} characters") + null
        what = "an integer" if self.kind is int else "a finite number"
        return f"{what} in [{self.low:g}, {self.high:g}]{null}"


RATE = Arg(float, 0.0, 1.0)
# torchvision classifiers: the scalar options of their builders (no norm layers, no block classes).
TORCHVISION_ARGS: dict[str, Arg] = {
    "dropout": RATE, "attention_dropout": RATE, "stochastic_depth_prob": RATE,
    "width_mult": Arg(float, 0.01, 16.0), "aux_logits": Arg(bool), "init_weights": Arg(bool, nullable=True),
    "transform_input": Arg(bool), "zero_init_residual": Arg(bool), "groups": Arg(int, 1, MAX_ARGUMENT),
    "width_per_group": Arg(int, 1, MAX_ARGUMENT), "num_layers": Arg(int, 1, 256),
}
# timm classifiers: the common scalar options of `timm.create_model`.
TIMM_ARGS: dict[str, Arg] = {
    "drop_rate": RATE, "drop_path_rate": RATE, "drop_block_rate": RATE, "proj_drop_rate": RATE,
    "attn_drop_rate": RATE, "img_size": Arg(int, 1, MAX_ARGUMENT), "patch_size": Arg(int, 1, MAX_ARGUMENT),
    "embed_dim": Arg(int, 1, 8192), "depth": Arg(int, 1, 256), "num_heads": Arg(int, 1, 256),
    "mlp_ratio": Arg(float, 0.01, 64.0), "output_stride": Arg(int, 8, 32), "class_token": Arg(bool),
    "global_pool": Arg(str, choices=("", "avg", "max", "avgmax", "catavgmax", "token", "map", "fast")),
    "qkv_bias": Arg(bool), "no_embed_class": Arg(bool), "channels": Arg(int, 1, 8192),
}


# Bounds of the registered builders' arguments, by name (others: within ±MAX_ARGUMENT).
_BOUNDS: dict[str, tuple[float, float]] = {"width": (1e-3, MAX_ARGUMENT), "dropout": (0.0, 1.0),
                                           "depth": (1, 256), "patch_size": (1, MAX_ARGUMENT)}


def _from_annotation(annotation: object) -> Arg | None:
    """The `Arg` a builder parameter's annotation declares (None: not a scalar we accept)."""
    if isinstance(annotation, str):  # `from __future__ import annotations`: resolved by the caller
        return None
    origin = typing.get_origin(annotation)
    nullable = False
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(members) < len(typing.get_args(annotation))
        if len(members) != 1:
            return None
        annotation = members[0]
    if annotation in (bool, int, float, str):
        return Arg(annotation, nullable=nullable)
    return None


def _declared_by_signature(builder: Callable) -> dict[str, Arg]:
    """The keyword arguments a registered builder declares, typed by its annotations."""
    try:
        hints = typing.get_type_hints(builder)
    except Exception:  # noqa: BLE001  (an annotation that does not resolve: fall back to the raw ones)
        hints = {}
    declared: dict[str, Arg] = {}
    for name, parameter in inspect.signature(builder).parameters.items():
        if name in _DATA_PARAMETERS or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        arg = _from_annotation(hints.get(name, parameter.annotation))
        if arg is not None:
            low, high = _BOUNDS.get(name, (arg.low, arg.high))
            declared[name] = Arg(arg.kind, low, high, arg.choices, arg.nullable)
    return declared


def declared_arguments(name: str, builder: Callable | None = None) -> dict[str, Arg] | None:
    """The arguments model `name` declares; None for a user's `factory:` model (any scalar).

    Args:
        name: a model name as `create_model` takes it.
        builder: the registered builder of `name` (a registered model).
    """
    if name.startswith("factory:"):
        return None
    if name.startswith("torchvision:"):
        return TORCHVISION_ARGS
    if name.startswith("timm:"):
        return TIMM_ARGS
    return _declared_by_signature(builder) if builder is not None else {}


def loads_something(key: str) -> bool:
    """An argument that chooses weights, a file, a path or a URL (refused for every model)."""
    lowered = key.lower()
    return any(word in lowered for word in _LOADING_WORDS)


def kwargs_problem(name: str, kwargs: Mapping[str, object], builder: Callable | None = None
                   ) -> tuple[str, str] | None:
    """The first argument of `kwargs` model `name` does not accept, and why (what is accepted).

    Args:
        name: the model name.
        kwargs: its keyword arguments.
        builder: the registered builder of `name` (a registered model).

    Returns:
        `(key, reason)`, or None when every argument is accepted.
    """
    declared = declared_arguments(name, builder)
    for key, value in kwargs.items():
        if not isinstance(key, str):
            return str(key)[:40], "is not an argument name"
        if loads_something(key):
            return key, ("would choose weights or a file to read; models are built with random weights "
                         "and loaded from their own checkpoint only")
        if builder is None and not name.startswith(("torchvision:", "timm:", "factory:")):
            continue  # an unknown model: its name is refused when it is built, with the models accepted
        if declared is None:  # a user's factory: any scalar
            if value is None or isinstance(value, bool) or (isinstance(value, str) and len(value) <= MAX_TEXT):
                continue
            if Arg(float).problem(value) is None:
                continue
            return key, (f"must be null, true/false, a string of at most {MAX_TEXT} characters or a finite "
                         f"number in [-{MAX_ARGUMENT}, {MAX_ARGUMENT}]")
        elif key not in declared:
            accepted = ", ".join(sorted(declared)) or "none"
            return key, f"is not an argument {name[:80]} declares (accepted: {accepted})"
        else:
            problem = declared[key].problem(value)
        if problem is not None:
            return key, problem
    return None


def check_model_kwargs(name: str, kwargs: Mapping[str, object], builder: Callable | None = None,
                       label: str = "model argument") -> None:
    """Refuse, with one line, an argument model `name` does not declare or a value out of bounds.

    Raises:
        InvalidInputError: the first refused argument, named with `label`.
    """
    found = kwargs_problem(name, kwargs, builder)
    if found is not None:
        raise InvalidInputError(f"{label} {found[0][:60]} {found[1]}")
